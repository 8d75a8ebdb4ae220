"""The one preprocessing implementation, used by calibration, validation and benchmarks.

Accuracy that silently drops after quantization is most often calibration images
prepared differently from inference images. So the preprocessing a model expects is
recorded in its manifest as a ``PreprocessSpec``, and every stage that turns images
into tensors goes through ``preprocess_image`` with that spec.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PreprocessSpec:
    """Resize the shorter side to ``resize``, centre-crop ``crop``, scale, normalise, NCHW."""

    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    scale: float = 1.0 / 255.0  # applied to 8-bit pixel values before mean/std
    interpolation: str = "bilinear"
    color: str = "RGB"
    layout: str = "NCHW"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessSpec:
        d = dict(d)
        for key in ("mean", "std"):
            if key in d:
                d[key] = tuple(float(v) for v in d[key])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def for_input_size(cls, size: int, *, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> PreprocessSpec:  # noqa: ANN001
        """The torchvision evaluation recipe scaled to ``size`` (resize = size / 0.875)."""
        return cls(resize=int(round(size / 0.875)), crop=size, mean=tuple(mean), std=tuple(std))
