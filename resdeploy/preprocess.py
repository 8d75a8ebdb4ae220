"""The one preprocessing implementation, used by calibration, validation and benchmarks.

Accuracy that silently drops after quantization is most often calibration images
prepared differently from inference images. So the preprocessing a model expects is
recorded in its manifest as a ``PreprocessSpec``, and every stage that turns images
into tensors goes through ``preprocess_image`` with that spec.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from resdeploy.errors import ResdeployError, check_positive_int

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PreprocessSpec:
    """Resize the shorter side to ``resize``, centre-crop ``crop``, scale, normalise, NCHW.

    ``crop`` is an int for a square crop or (H, W) for a non-square model input. ``color``
    GRAY (a 1-channel model) takes one mean and one std; RGB and BGR take three.
    """

    resize: int = 256
    crop: int | tuple[int, int] = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
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
        if isinstance(d.get("crop"), list | tuple):
            h, w = (int(v) for v in d["crop"])
            d["crop"] = h if h == w else (h, w)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def for_input_size(cls, size: int, *, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> PreprocessSpec:  # noqa: ANN001
        """The torchvision evaluation recipe scaled to ``size`` (resize = size / 0.875)."""
        return cls(resize=int(round(size / 0.875)), crop=size, mean=tuple(mean), std=tuple(std))

    @property
    def channels(self) -> int:
        """Channels per sample: 1 for GRAY, else 3."""
        return 1 if self.color.upper() == "GRAY" else 3

    @property
    def crop_hw(self) -> tuple[int, int]:
        """(H, W) of the crop."""
        if isinstance(self.crop, list | tuple):
            return int(self.crop[0]), int(self.crop[1])
        return int(self.crop), int(self.crop)


# The preprocessing conventions models come with (``--preprocess``). Each is what its
# framework's ImageNet models were trained with; calibrating a caffe-style model (Keras
# ResNet50) with the torchvision recipe gives ranges about 50x too small.
PRESETS: dict[str, dict[str, Any]] = {
    # torchvision / timm: RGB, /255, then ImageNet mean/std.
    "torchvision": {"color": "RGB", "scale": 1.0 / 255.0, "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
    # Caffe, and Keras's ResNet50/VGG (`preprocess_input` mode "caffe"): BGR, 0-255, ImageNet mean
    # subtracted per channel (given in BGR order, as the channels are by then), no scaling.
    "caffe": {"color": "BGR", "scale": 1.0, "mean": (103.939, 116.779, 123.68), "std": (1.0, 1.0, 1.0)},
    # TensorFlow / Keras mode "tf" (MobileNet, Inception, ResNetV2): [-1, 1].
    "tf": {"color": "RGB", "scale": 1.0 / 255.0, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)},
}


@dataclass(kw_only=True)
class InputFlags:
    """``--input-size``/``--layout``: the input shape where neither the graph nor a manifest fixes it.

    Declared once and embedded (as a base) in every stage config that takes these flags
    (bench, validate, quantize), so the keyword arguments, the CLI flags and the check agree.
    Keyword-only, so configs with required fields (``BenchConfig.model``) can embed it.
    """

    input_size: int | tuple[int, int] | None = None  # H, or (H, W)
    layout: str | None = None  # NCHW | NHWC

    def check_preprocess(self) -> None:
        """One-line errors for flags that would make empty crops (``check_preprocess_flags``)."""
        check_preprocess_flags(self.input_size)


@dataclass(kw_only=True)
class PreprocessFlags(InputFlags):
    """Preprocessing for a model without a manifest (ignored when one records it): validate and quantize."""

    preprocess: str | None = None  # preset: torchvision | caffe | tf
    resize: int | None = None
    mean: tuple[float, ...] | None = None  # one value per channel, or one for all
    std: tuple[float, ...] | None = None

    def check_preprocess(self) -> None:
        check_preprocess_flags(self.input_size, self.resize, self.mean, self.std)

    def preprocess_flags(self) -> dict[str, Any]:
        """The flags as ``resolve.preprocess_from`` takes them."""
        return {"input_size": self.input_size, "layout": self.layout, "preset": self.preprocess,
                "resize": self.resize, "mean": self.mean, "std": self.std}


def check_preprocess_flags(input_size: int | tuple[int, ...] | None, resize: int | None = None,
                           mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None) -> None:
    """One-line errors for preprocessing flags that would make NaN/inf tensors or empty crops."""
    import math

    for v in (input_size if isinstance(input_size, tuple) else (input_size,)):
        check_positive_int(v, "--input-size")
    if resize is not None and resize < 0:
        raise ResdeployError(f"--resize must be a positive integer (or 0: no resize), got {resize}")
    for flag, values in (("--mean", mean), ("--std", std)):
        if values is not None and (len(values) not in (1, 3) or not all(math.isfinite(v) for v in values)):
            raise ResdeployError(f"{flag} takes three finite numbers (R,G,B), or one for every channel, "
                                 f"got {','.join(map(str, values))}")
    if std is not None and any(v <= 0 for v in std):
        raise ResdeployError(f"--std values must be positive, got {','.join(map(str, std))}")


def spec_for(size: tuple[int, int], *, preset: str = "torchvision", layout: str = "NCHW", resize: int | None = None,
             mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
             channels: int = 3) -> PreprocessSpec:
    """A spec for a model without a manifest: the preset's recipe at ``size`` (H, W), flags on top.

    Resize defaults to the torchvision evaluation ratio (shorter side = crop / 0.875). A
    1-channel model (``channels=1``) gets grayscale images (ITU-R 601 luma, as PIL's and
    torchvision's ``Grayscale``) and the preset's mean and std averaged over the colours,
    as timm adapts ImageNet statistics to one input channel; ``--mean``/``--std`` then
    take one value. One value given for an RGB model applies to every channel.
    """
    if preset not in PRESETS:
        raise ResdeployError(f"unknown --preprocess '{preset}'; choose from: {', '.join(PRESETS)}")
    if channels not in (1, 3):
        raise ResdeployError(f"images become 1-channel (grayscale) or 3-channel tensors, not {channels}-channel")
    p = PRESETS[preset]
    h, w = int(size[0]), int(size[1])

    def per_channel(given: Sequence[float] | None, default: Sequence[float], flag: str) -> tuple[float, ...]:
        if given is None:
            values = [float(v) for v in default]
            return (sum(values) / len(values),) if channels == 1 else tuple(values)
        if channels == 1 and len(given) != 1:
            raise ResdeployError(f"the model takes 1 channel (grayscale images): {flag} takes one value, "
                                 f"got {','.join(map(str, given))}")
        return tuple(float(v) for v in given) * (3 if channels == 3 and len(given) == 1 else 1)

    return PreprocessSpec(
        resize=int(round(min(h, w) / 0.875)) if resize is None else int(resize),
        crop=h if h == w else (h, w), color="GRAY" if channels == 1 else str(p["color"]), scale=float(p["scale"]),
        mean=per_channel(mean, p["mean"], "--mean"), std=per_channel(std, p["std"], "--std"),
        layout=layout.upper(), extra={} if preset == "torchvision" else {"preset": preset},
    )


# --------------------------------------------------------------------------------------------
# The implementation. Everything below is used by calibration (data.py), validation and bench.
# --------------------------------------------------------------------------------------------

_INTERPOLATIONS = {"nearest": 0, "bilinear": 2, "bicubic": 3, "lanczos": 1, "box": 4, "hamming": 5}


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open an image file as 8-bit RGB, as torchvision's ``ImageFolder`` does, with two fixes.

    Published accuracies and most training pipelines read images with torchvision's
    default loader (``Image.open(f).convert("RGB")``), so that is the baseline here:

    * **EXIF orientation is not applied** (torchvision does not apply it either): a model
      is validated on the pixels it was trained on, in the order they are stored.
    * Grayscale, palette without transparency, CMYK, YCbCr and 1-bit images convert
      exactly as ``convert("RGB")`` converts them.

    Two cases where ``convert("RGB")`` destroys the image are fixed (see ``to_rgb``):
    16-bit grayscale is scaled to 8 bits (plain conversion clips almost every pixel to
    white) and transparent pixels are composited over white (their stored colour is
    undefined). Raises ``OSError`` (truncated, corrupt, unidentifiable, too large to be
    safe) or ``ValueError``/``SyntaxError`` for bad files; callers skip those.
    """
    try:
        with Image.open(path) as opened:
            opened.load()
            return to_rgb(opened)
    except Image.DecompressionBombError as exc:  # not an OSError: would escape callers that skip bad files
        raise OSError(f"over PIL's decompression-bomb limit (PIL.Image.MAX_IMAGE_PIXELS): {exc}") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (see ``load_image`` for why not plain ``convert``)."""
    mode = img.mode
    if mode == "RGB":
        return img.copy()
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit (or 32-bit integer) grayscale: scale the full range down to 8 bits.
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr8 = np.clip(np.rint(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        peak = 1.0 if arr.max(initial=0) <= 1.0 else 255.0
        arr8 = np.clip(np.rint(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
        if mode == "RGB":
            return img
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Composite over white: what an image viewer shows for transparent pixels.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    # L, 1, CMYK, YCbCr, LAB, HSV: PIL's own conversions are correct for these.
    return img.convert("RGB")


# Above this many pixels the resized image is not materialised: only the centre-crop window
# is resampled (PIL's ``box``). A 2x20000 strip resized to 256 would otherwise be a
# 2560000x256 image (2 GB); 16 M pixels is an aspect ratio of about 250:1 at 256.
_MAX_RESIZED_PIXELS = 16_000_000


def _resized_size(w: int, h: int, size: int) -> tuple[int, int]:
    """torchvision's ``Resize(size)`` output size: shorter side ``size``, longer ``int(size * long / short)``."""
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    return (new_short, new_long) if w <= h else (new_long, new_short)


def _resize_shorter(img: Image.Image, size: int, resample: int, *, crop: int | tuple[int, int] | None = None,
                    max_pixels: int = _MAX_RESIZED_PIXELS) -> Image.Image:
    """Resize so the shorter side is ``size``, the longer side as torchvision computes it.

    With ``crop`` and a result above ``max_pixels``, only the region that the centre crop
    keeps is resampled (same filter positions, so the same pixels to within rounding);
    ``_centre_crop`` then takes all of it.
    """
    w, h = img.size
    new_w, new_h = _resized_size(w, h, size)
    if (new_w, new_h) == (w, h):
        return img
    if crop is None or new_w * new_h <= max_pixels:
        return img.resize((new_w, new_h), resample=resample)
    crop = (crop, crop) if isinstance(crop, int) else crop

    def window(old: int, new: int, keep: int) -> tuple[float, float, int]:
        if new <= keep:
            return 0.0, float(old), new
        start = int(round((new - keep) / 2.0))  # _centre_crop's offset, in resized pixels
        return start * old / new, (start + keep) * old / new, keep

    x0, x1, out_w = window(w, new_w, crop[1])
    y0, y1, out_h = window(h, new_h, crop[0])
    return img.resize((out_w, out_h), resample=resample, box=(x0, y0, x1, y1))


def _centre_crop(img: Image.Image, size: int | tuple[int, int]) -> Image.Image:
    """Centre crop (``size`` or (H, W)) with torchvision's rounding; pads with black when the image is smaller."""
    ch, cw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    w, h = img.size
    if w < cw or h < ch:
        padded = Image.new(img.mode, (max(w, cw), max(h, ch)))
        padded.paste(img, ((max(w, cw) - w) // 2, (max(h, ch) - h) // 2))
        img, (w, h) = padded, padded.size
    top = int(round((h - ch) / 2.0))
    left = int(round((w - cw) / 2.0))
    return img.crop((left, top, left + cw, top + ch))


def preprocess_image(img: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """One RGB image -> one float32 tensor (CHW, or HWC for an NHWC spec), exactly per ``spec``.

    Order: resize shorter side to ``spec.resize`` (skipped when 0), centre-crop to
    ``spec.crop``, multiply by ``spec.scale``, subtract ``mean``, divide by ``std``. A GRAY
    spec converts to 8-bit luma after the crop (one channel), as torchvision's
    ``Grayscale`` after ``CenterCrop`` does.
    """
    if spec.interpolation not in _INTERPOLATIONS:
        raise ResdeployError(
            f"unknown interpolation '{spec.interpolation}'; choose from: {', '.join(_INTERPOLATIONS)}"
        )
    if img.mode != "RGB":
        img = to_rgb(img)
    if spec.resize:
        img = _resize_shorter(img, int(spec.resize), _INTERPOLATIONS[spec.interpolation], crop=spec.crop_hw)
    img = _centre_crop(img, spec.crop_hw)
    color = spec.color.upper()
    if color == "GRAY":
        img = img.convert("L")
    arr: np.ndarray = np.asarray(img, dtype=np.float32) * np.float32(spec.scale)
    if color == "GRAY":
        arr = arr[:, :, None]
    elif color == "BGR":
        arr = arr[:, :, ::-1]
    elif color != "RGB":
        raise ResdeployError(f"unsupported colour order '{spec.color}' in the preprocessing spec (RGB, BGR or GRAY)")
    if len(spec.mean) != arr.shape[-1] or len(spec.std) != arr.shape[-1]:
        raise ResdeployError(f"the preprocessing spec's mean {tuple(spec.mean)} and std {tuple(spec.std)} need "
                             f"{arr.shape[-1]} value(s) each for its {color} tensors")
    arr = (arr - np.asarray(spec.mean, dtype=np.float32)) / np.asarray(spec.std, dtype=np.float32)
    if spec.layout.upper() == "NCHW":
        arr = arr.transpose(2, 0, 1)
    elif spec.layout.upper() != "NHWC":
        raise ResdeployError(f"unsupported layout '{spec.layout}' in the preprocessing spec (NCHW or NHWC)")
    return np.ascontiguousarray(arr, dtype=np.float32)


def preprocess_file(path: str | os.PathLike[str], spec: PreprocessSpec) -> np.ndarray:
    """``load_image`` then ``preprocess_image``: a file path to one input tensor."""
    return preprocess_image(load_image(path), spec)


def preprocess_batch(images: Sequence[Image.Image | str | os.PathLike[str]], spec: PreprocessSpec) -> np.ndarray:
    """Images or file paths -> one float32 batch (N, C, H, W), ready for a runner."""
    if not images:
        raise ResdeployError("no images to preprocess")
    tensors = [preprocess_image(im, spec) if isinstance(im, Image.Image) else preprocess_file(im, spec)
               for im in images]
    return np.stack(tensors, axis=0)


def input_shape(spec: PreprocessSpec) -> tuple[int, int, int]:
    """The per-sample tensor shape that ``preprocess_image`` produces for ``spec``."""
    h, w = spec.crop_hw
    c = spec.channels
    return (c, h, w) if spec.layout.upper() == "NCHW" else (h, w, c)
