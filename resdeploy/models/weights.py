"""Where a model's weights come from: a checkpoint file, or a seeded random init made useful.

Checkpoints: ``.pth``/``.pt`` (a plain state dict, or a training checkpoint holding one
under ``state_dict``/``model``/``model_state_dict``; ``module.`` and ``_orig_mod.``
prefixes from DDP and ``torch.compile`` are stripped, and so is a wrapper module's attribute
name, as in a PyTorch Lightning ``.ckpt``, where what remains names the model's keys exactly)
and ``.safetensors``. Pickles are
read with ``weights_only=True``: a checkpoint can never run code on this machine.

Random init: a freshly initialised ResNet gives near-zero, near-identical logits for
every input, so an export that is subtly wrong still "matches" PyTorch. ``calibrate_random_init``
makes a random model behave like a trained one in the ways a parity check needs
(normalised activations, logits with a spread of a few units, top-1 that changes with
the input), deterministically from the seed, so the PyTorch reference can be rebuilt
bit-for-bit later (``model_from_manifest``).
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from resdeploy.artifacts import sha256_file
from resdeploy.errors import ResdeployError

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
# pytorch/examples' ImageNet script, the classic trainer of torchvision's ResNets, writes
# checkpoint.pth.tar and model_best.pth.tar: torch.save files despite the .tar.
CHECKPOINT_DOUBLE_SUFFIXES = (".pth.tar",)
SAFETENSORS_SUFFIXES = (".safetensors",)
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")
_PREFIXES = ("module.", "_orig_mod.")

# Seed streams: each use of randomness derives its own generator from (seed, stream),
# so adding a new use never shifts the numbers an existing one draws.
STREAM_BN_CALIBRATION = 1
STREAM_PARITY_INPUTS = 2

LOGIT_STD_TARGET = 4.0
CALIBRATION_IMAGES = 16


# --- checkpoints -------------------------------------------------------------------------------
def check_weights_path(path: str | Path) -> Path:
    """The checks on a weights path that need no reading, so commands can make them first."""
    p = Path(path)
    if not p.exists():
        raise ResdeployError(f"weights file not found: {p}")
    if not p.is_file():
        raise ResdeployError(f"weights path is not a file: {p}")
    if p.suffix.lower() not in SAFETENSORS_SUFFIXES + CHECKPOINT_SUFFIXES \
            and not p.name.lower().endswith(CHECKPOINT_DOUBLE_SUFFIXES):
        raise ResdeployError(
            f"cannot read weights {p}: unknown file type '{p.suffix}'",
            hint="use a .pth/.pt state dict (or model_best.pth.tar) or a .safetensors file",
        )
    return p


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat name -> tensor dict, or fail with one line."""
    p = check_weights_path(path)
    if p.suffix.lower() in SAFETENSORS_SUFFIXES:
        raw: Any = _read_safetensors(p)
    else:
        raw = _read_pickle_checkpoint(p)
    return _flatten_checkpoint(raw, p)


def _read_safetensors(p: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(p), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as exc:
        raise ResdeployError(f"cannot read {p} as safetensors: {_first_line(exc)}") from None


def _read_pickle_checkpoint(p: Path) -> Any:
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found:
            raise ResdeployError(
                f"refusing to load {p}: it holds pickled Python objects ({found.group(1)}), not only tensors",
                hint="re-save the weights with torch.save(model.state_dict(), path) or as .safetensors",
            ) from None
        raise ResdeployError(f"cannot read {p} as a PyTorch checkpoint: the file is damaged or not a torch.save file") from None
    except Exception as exc:  # a damaged file fails anywhere in the unpickler (KeyError, EOFError, ...)
        why = _first_line(exc) if isinstance(exc, (RuntimeError, OSError)) else "the file is damaged or not a torch.save file"
        raise ResdeployError(f"cannot read {p} as a PyTorch checkpoint: {why}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _flatten_checkpoint(raw: Any, p: Path) -> dict[str, torch.Tensor]:
    if not isinstance(raw, Mapping):
        raise ResdeployError(f"{p} does not hold a state dict (found {type(raw).__name__})")
    for key in _WRAPPER_KEYS:
        inner = raw.get(key)
        if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            raw = inner
            break
    state = {str(k): v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise ResdeployError(
            f"{p} holds no tensors",
            hint="expected a state dict, or a checkpoint dict with 'state_dict' or 'model'",
        )
    if "n_averaged" in state and all(k.startswith("module.") for k in state if k != "n_averaged"):
        del state["n_averaged"]  # torch.optim.swa_utils.AveragedModel (SWA/EMA): a counter, not a weight
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        for prefix in _PREFIXES:
            while k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def weights_record(path: str | Path) -> dict[str, Any]:
    """How a manifest names a weights file: absolute path, sha256 and size."""
    p = Path(path).resolve()
    return {"path": str(p), "sha256": sha256_file(p), "bytes": p.stat().st_size}


def head_classes(state: Mapping[str, torch.Tensor], head: str = "fc") -> int | None:
    """Number of classes of a checkpoint's classifier, to size the model before loading."""
    w = state.get(f"{head}.weight")
    if w is None and (prefix := _wrapper_prefix(state)) is not None:
        w = state.get(f"{prefix}{head}.weight")  # a Lightning checkpoint's "model.fc.weight"
    return int(w.shape[0]) if isinstance(w, torch.Tensor) and w.ndim == 2 else None


def _wrapper_prefix(state: Mapping[str, torch.Tensor]) -> str | None:
    """``"model."`` when every key starts with that one attribute name, as a wrapper module writes them.

    PyTorch Lightning saves ``LightningModule.state_dict()``, whose keys carry the attribute the
    network is kept under (``model.conv1.weight``, ``net.conv1.weight``); so does any module
    holding the network as ``self.backbone``.
    """
    heads = {k.split(".", 1)[0] for k in state if "." in k}
    if len(heads) != 1 or any("." not in k for k in state):
        return None
    return f"{heads.pop()}."


def load_state_dict_strict(model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str, model_name: str) -> None:
    """Load weights, or fail naming the missing, unexpected and wrongly shaped keys.

    ``num_batches_tracked`` is ignored both ways: old torchvision checkpoints predate it
    and it never changes an eval-mode output.
    """
    expected = model.state_dict()

    def relevant(k: str) -> bool:
        return not k.endswith("num_batches_tracked")

    prefix = _wrapper_prefix(state)
    if prefix is not None and not any(k in expected for k in state):
        stripped = {k[len(prefix):]: v for k, v in state.items()}
        if {k for k in stripped if relevant(k)} == {k for k in expected if relevant(k)}:
            state = stripped  # every name fits once the wrapper's attribute is taken off; shapes are checked below
    missing = [k for k in expected if relevant(k) and k not in state]
    unexpected = [k for k in state if relevant(k) and k not in expected]
    shaped = [
        f"{k}: file {list(state[k].shape)} vs model {list(expected[k].shape)}"
        for k in expected
        if relevant(k) and k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or shaped:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrongly shaped", shaped)):
            if keys:
                shown = ", ".join(keys[:4]) + (f", +{len(keys) - 4} more" if len(keys) > 4 else "")
                parts.append(f"{len(keys)} {label} ({shown})")
        modules = {k.split(".", 1)[0] for k in missing + unexpected}
        hint = "check the model name and --num-classes"
        if len(modules) == 1 and missing and unexpected and not shaped:
            # Only one part is built otherwise, as a fine-tuned head (fc = Sequential(Dropout, Linear)) is.
            hint = (f"the file's '{modules.pop()}' is built differently from {model_name}'s: export the module "
                    "you trained, `resdeploy export package.module:factory --weights FILE`")
        raise ResdeployError(
            f"weights {source} do not fit {model_name}: " + "; ".join(parts),
            hint=hint,
        )
    filtered = {k: v for k, v in state.items() if relevant(k)}
    model.load_state_dict(filtered, strict=False)


# --- synthetic inputs ----------------------------------------------------------------------------
def synthetic_images(n: int, size: int, seed: int, stream: int) -> torch.Tensor:
    """Seeded image-like tensors (N, 3, size, size), already normalised (mean 0, std 1 per channel).

    White noise averages out under global pooling and gives every image the same
    features; these images mix noise at several scales (blobs, texture, pixel noise)
    plus a per-image colour cast, so features and predictions differ from image to image,
    as with real photos. numpy's PCG64 with a (seed, stream) seed sequence is stable
    across numpy versions and machines.
    """
    rng = np.random.default_rng([int(seed), int(stream)])
    img = np.zeros((n, 3, size, size), dtype=np.float32)
    for cells, weight in ((2, 1.0), (4, 0.8), (8, 0.6), (16, 0.4)):
        cells = max(1, min(cells, size))
        low = torch.from_numpy(rng.standard_normal((n, 3, cells, cells), dtype=np.float32))
        img += weight * torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False).numpy()
    img += 0.3 * rng.standard_normal((n, 3, size, size), dtype=np.float32)
    # Each image on its own to mean 0, std 1 per channel (as photos are after normalisation,
    # roughly), plus a small colour cast: contrast that varies wildly from image to image would
    # make one direction of the features dominate every prediction.
    img = (img - img.mean(axis=(2, 3), keepdims=True)) / (img.std(axis=(2, 3), keepdims=True) + 1e-6)
    img += 0.25 * rng.standard_normal((n, 3, 1, 1), dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))


def describe_synthetic_images(n: int, size: int, seed: int, stream: int) -> dict[str, Any]:
    return {
        "kind": "synthetic",
        "generator": "resdeploy.models.weights.synthetic_images (numpy PCG64, multi-scale noise, normalised)",
        "count": n,
        "size": size,
        "seed": [int(seed), int(stream)],
    }


# --- making a random init behave like a trained model ---------------------------------------------
def classifier_of(model: nn.Module) -> nn.Linear | None:
    """The final linear layer: ``fc`` for ResNets, else the last ``nn.Linear`` module."""
    fc = getattr(model, "fc", None)
    if isinstance(fc, nn.Linear):
        return fc
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


@torch.no_grad()
def calibrate_random_init(model: nn.Module, input_size: int, seed: int) -> dict[str, Any]:
    """Give a randomly initialised model realistic activations and logits, deterministically.

    1. BatchNorm running statistics are re-estimated on seeded synthetic images
       (cumulative average over the batches), so every layer's activations are
       normalised in eval mode as in a trained network, instead of growing or
       vanishing with depth.
    2. The classifier is re-parametrised to centre its input features (their mean
       measured on the same images) and scaled as a whole so the logits have a standard
       deviation of ``LOGIT_STD_TARGET``. A trained ResNet-50's ImageNet logits have a
       std of a few units; a fresh one's are far smaller and dominated by one
       input-independent direction, so every image gets the same top-1 class.

    Returns the record that the manifest stores under ``model.init``.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    images = synthetic_images(CALIBRATION_IMAGES, input_size, seed, STREAM_BN_CALIBRATION)
    batch = 8
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average over the calibration batches
    model.train()
    for i in range(0, len(images), batch):
        model(images[i : i + batch])
    for bn, mom in zip(bns, momenta, strict=True):
        bn.momentum = mom
    model.eval()

    record: dict[str, Any] = {
        "procedure": "random-init calibration",
        "description": (
            "seeded random init (Kaiming normal convs), then BatchNorm running stats re-estimated on "
            f"{CALIBRATION_IMAGES} seeded synthetic images, then the classifier centres its input "
            f"features and is scaled to a logit std of {LOGIT_STD_TARGET}"
        ),
        "batchnorm_layers": len(bns),
        "images": describe_synthetic_images(CALIBRATION_IMAGES, input_size, seed, STREAM_BN_CALIBRATION),
    }
    fc = classifier_of(model)
    if fc is None:
        record["classifier"] = "none found: logits left as initialised"
        return record

    feats: list[torch.Tensor] = []
    handle = fc.register_forward_hook(lambda _m, inp, _out: feats.append(inp[0].detach().reshape(inp[0].shape[0], -1)))
    try:
        for i in range(0, len(images), batch):
            model(images[i : i + batch])
    finally:
        handle.remove()
    f = torch.cat(feats).double()
    mu = f.mean(0)
    w = fc.weight.double()
    b = -(w @ mu)
    logits = f @ w.T + b
    scale = LOGIT_STD_TARGET / max(float(logits.std()), 1e-12)
    fc.weight.copy_((w * scale).to(fc.weight.dtype))
    if fc.bias is None:
        raise ResdeployError("the classifier has no bias; cannot calibrate a random init")  # pragma: no cover
    fc.bias.copy_((b * scale).to(fc.bias.dtype))
    out = (f @ (w * scale).T + b * scale)
    top1 = out.argmax(1)
    record["classifier"] = {
        "logit_std_target": LOGIT_STD_TARGET,
        "logit_std": round(float(out.std()), 4),
        "distinct_top1": int(top1.unique().numel()),
        "of_images": int(f.shape[0]),
    }
    return record
