"""Parameter counts and FLOPs, computed from the model itself (never typed in).

The model is built on PyTorch's ``meta`` device, so listing the whole zoo allocates no
weights and takes well under a second per model, even for wide_resnet101_2.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and
matrix products; BatchNorm, ReLU, pooling and additions are left out, as is usual).
One multiply-add is 2 FLOPs. Papers and torchvision's docs quote multiply-adds under
the name "FLOPs" (ResNet-50: 4.1 G); resdeploy reports both columns, named for what they are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from resdeploy.models.zoo import ModelSpec


@dataclass(frozen=True)
class ModelStats:
    """Size and cost of one model at one input size."""

    name: str
    family: str
    params: int
    input_size: int
    num_classes: int
    gflops: float
    gmacs: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_size: int, batch: int = 1) -> int:
    """FLOPs (2 per multiply-add) of one forward pass on ``batch`` images of ``input_size``."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.empty(batch, 3, input_size, input_size, device=device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return int(counter.get_total_flops())


def model_stats(name: str, input_size: int | None = None, num_classes: int | None = None) -> ModelStats:
    """Parameters and FLOPs of a zoo (or external) model, built without allocating weights."""
    spec = ModelSpec(name, num_classes=num_classes, input_size=input_size)
    size = spec.resolved_input_size
    with torch.device("meta"):
        model = spec._construct(num_classes).eval()
    head = next((m for m in reversed(list(model.modules())) if isinstance(m, nn.Linear)), None)
    flops = count_flops(model, size)
    return ModelStats(
        name=name,
        family=spec.family,
        params=count_parameters(model),
        input_size=size,
        num_classes=int(head.out_features) if head is not None else 0,
        gflops=round(flops / 1e9, 4),
        gmacs=round(flops / 2e9, 4),
    )
