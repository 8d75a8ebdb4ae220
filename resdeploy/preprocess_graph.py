"""Preprocessing as ONNX ops, merged in front of a model: the server takes decoded images.

A mismatch between the preprocessing a model was calibrated with and the one a client
applies is the accuracy failure users report most. Moving it into the graph removes the
client's copy: the model's input becomes a batch of decoded 8-bit RGB images, HWC, of
any one size, and the graph does what ``resdeploy.preprocess.preprocess_image`` does,
as ONNX ops in the way of the ONNX model zoo's ``resnet-preproc``:

1. ``Resize`` of the shorter side to ``spec.resize`` (opset 18, ``antialias=1``, half-pixel
   centres: PIL's filter), the longer side as torchvision computes it (``int(size * long / short)``),
   clipped to [0, 255] as PIL's 8-bit result is;
2. ``CenterCropPad`` to ``spec.crop``, preceded by a one-pixel ``Slice`` where Python's
   ``round`` (half to even) would start the crop one pixel later than ``CenterCropPad``'s floor;
3. ``Mul`` by ``spec.scale``, channel order, ``Sub`` mean, ``Div`` std, ``Transpose`` to NCHW (for an NCHW spec).

Everything runs in FP32, whatever the model's precision; an FP16-input model gets a
final ``Cast``. What differs from Python is rounding: PIL resamples 8-bit images with
fixed-point weights and rounds to 8 bits between its two passes, the graph does not, so
the normalised tensors differ by a few 1/255 steps over std (``parity`` measures it).
OpenVINO runs the graph but ignores ``antialias`` (docs/serving.md has the numbers).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from resdeploy.artifacts import Lineage, Manifest, atomic_dir
from resdeploy.errors import ResdeployError
from resdeploy.preprocess import IMAGENET_STD, PreprocessSpec
from resdeploy.resolve import resolve_artifact

RAW_INPUT_NAME = "image"
MIN_OPSET = 18  # Resize's antialias and CenterCropPad
_PREFIX = "preprocess_"
# PIL filters ONNX Resize reproduces -> (mode, cubic coefficient, antialias). Only bilinear: ONNX Resize reproduces it to within 8-bit rounding (max |diff| 0.018 of the normalised
# tensor on real photos). PIL's bicubic clips to 8 bits between its two passes, which one ONNX Resize
# cannot (measured 0.105 on calibration/sample re-saved at other sizes); nearest picks another source
# pixel at float ties (0.4 % of one image's pixels); lanczos/box/hamming have no ONNX mode.
_MODES: dict[str, tuple[str, float | None, int]] = {"bilinear": ("linear", None, 1)}


def check_expressible(spec: PreprocessSpec) -> None:
    """Refuse, in one line, a preprocessing the ONNX graph cannot reproduce."""
    if spec.interpolation not in _MODES:
        raise ResdeployError(
            f"interpolation '{spec.interpolation}' cannot be expressed as ONNX Resize; in-graph preprocessing "
            f"supports {', '.join(_MODES)}", hint="keep the preprocessing in Python for this model")
    if spec.color.upper() not in ("RGB", "BGR"):
        raise ResdeployError(f"colour order '{spec.color}' cannot be expressed in the graph (RGB or BGR)")
    if spec.layout.upper() not in ("NCHW", "NHWC"):
        raise ResdeployError(f"layout '{spec.layout}' cannot be expressed in the graph (NCHW or NHWC)")
    steps = [k for k in spec.extra if k != "preset"]  # "preset" names the recipe; its numbers are in the spec
    if steps:
        raise ResdeployError(f"the preprocessing spec has extra steps ({', '.join(map(str, steps))}) that "
                             "resdeploy cannot express in ONNX")
    if min(spec.crop_hw) <= 0 or int(spec.resize) < 0:
        raise ResdeployError(f"crop {spec.crop} / resize {spec.resize}: cannot build a preprocessing graph")


def preprocess_model(spec: PreprocessSpec, *, opset: int = MIN_OPSET, batch: int | str = "batch",
                     output_dtype: int | None = None, ir_version: int | None = None) -> Any:
    """An ONNX model: uint8 ``image`` [batch, H, W, 3] -> float32 tensor ``preprocess_out`` per ``spec``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    check_expressible(spec)
    if opset < MIN_OPSET:
        raise ResdeployError(f"in-graph preprocessing needs opset >= {MIN_OPSET} (Resize antialias, "
                             f"CenterCropPad); the model has opset {opset}", hint="re-export with --opset 18")
    (crop_h, crop_w), size = spec.crop_hw, int(spec.resize)
    mode, _, antialias = _MODES[spec.interpolation]
    nodes: list[Any] = []
    inits: list[Any] = []

    def const(name: str, value: Any, dtype: Any = np.int64) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), _PREFIX + name))
        return _PREFIX + name

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [_PREFIX + output], name=_PREFIX + output, **attrs))
        return _PREFIX + output

    x = node("Cast", [RAW_INPUT_NAME], "float", to=TensorProto.FLOAT)
    hw = node("Slice", [node("Shape", [RAW_INPUT_NAME], "shape"), const("s1", [1]), const("s3", [3])], "hw")
    if size:
        # torchvision's Resize(size): shorter side = size, longer = floor(size * long / short), exactly in int64.
        short = node("ReduceMin", [hw], "short", keepdims=1)
        new_hw = node("Div", [node("Mul", [hw, const("size", [size])], "hw_x_size"), short], "new_hw")
        attrs: dict[str, Any] = {"mode": mode, "axes": [1, 2], "coordinate_transformation_mode": "half_pixel",
                                 "exclude_outside": 1}
        if antialias:
            attrs["antialias"] = 1
        x = node("Resize", [x, "", "", new_hw], "resized", **attrs)
        x = node("Clip", [x, const("lo", 0.0, np.float32), const("hi", 255.0, np.float32)], "clipped")  # PIL: 8 bits
        cur = new_hw
    else:
        cur = hw
    # resdeploy crops at round((d) / 2) (half to even); CenterCropPad at floor(d / 2). They differ by
    # one when d % 4 == 3: drop that pixel first. d < 0 (padding) needs no shift: both pad at floor.
    d = node("Max", [node("Sub", [cur, const("crop", [crop_h, crop_w])], "excess"), const("zero", [0, 0])], "excess0")
    half = node("Div", [d, const("two", [2, 2])], "half")
    shift = node("Mul", [node("Mod", [d, const("two_m", [2, 2])], "odd"),
                         node("Mod", [half, const("two_h", [2, 2])], "half_odd")], "shift")
    x = node("Slice", [x, shift, const("end", [np.iinfo(np.int64).max] * 2), const("axes", [1, 2])], "shifted")
    x = node("CenterCropPad", [x, const("crop_shape", [crop_h, crop_w])], "cropped", axes=[1, 2])
    x = node("Mul", [x, const("scale", float(spec.scale), np.float32)], "scaled")
    if spec.color.upper() == "BGR":
        x = node("Gather", [x, const("bgr_index", [2, 1, 0])], "bgr", axis=3)
    x = node("Sub", [x, const("mean", np.reshape(spec.mean, (1, 1, 1, 3)), np.float32)], "centred")
    x = node("Div", [x, const("std", np.reshape(spec.std, (1, 1, 1, 3)), np.float32)], "normalised")
    if spec.layout.upper() == "NCHW":
        x = node("Transpose", [x], "nchw", perm=[0, 3, 1, 2])
    if output_dtype is not None and output_dtype != TensorProto.FLOAT:
        x = node("Cast", [x], "cast_out", to=output_dtype)
    nodes[-1].output[0] = _PREFIX + "out"
    shape_out = [batch, 3, crop_h, crop_w] if spec.layout.upper() == "NCHW" else [batch, crop_h, crop_w, 3]
    graph = helper.make_graph(
        nodes, "resdeploy_preprocess",
        [helper.make_tensor_value_info(RAW_INPUT_NAME, TensorProto.UINT8, [batch, "height", "width", 3])],
        [helper.make_tensor_value_info(_PREFIX + "out", output_dtype or TensorProto.FLOAT, shape_out)],
        initializer=inits)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets)
    # The lowest IR version for the opset, not onnx's newest: ONNX Runtime lags behind onnx.
    model.ir_version = ir_version if ir_version is not None else helper.find_min_ir_version_for(opsets)
    onnx.checker.check_model(model)
    return model


def merge_preprocessing(model: Any, spec: PreprocessSpec) -> Any:
    """``model`` (one image input, NCHW/NHWC float) with ``preprocess_model(spec)`` in front of it."""
    import onnx
    from onnx import compose

    init = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init]
    if len(inputs) != 1:
        raise ResdeployError(f"in-graph preprocessing needs a model with one input; this one has {len(inputs)}")
    target = inputs[0]
    t = target.type.tensor_type
    if t.elem_type == onnx.TensorProto.UINT8:
        raise ResdeployError("the model already takes uint8 images: its preprocessing is in the graph")
    if t.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
        raise ResdeployError(f"the model's input '{target.name}' is not float32/float16: not an image model")
    dims = [dd.dim_value if dd.HasField("dim_value") else (dd.dim_param or "batch") for dd in t.shape.dim]
    crop_h, crop_w = spec.crop_hw
    expected = [3, crop_h, crop_w] if spec.layout.upper() == "NCHW" else [crop_h, crop_w, 3]
    if len(dims) != 4 or dims[1:] != expected:
        raise ResdeployError(f"the model's input {dims} does not match the preprocessing's output "
                             f"[batch, {', '.join(map(str, expected))}]")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    pre = preprocess_model(spec, opset=opset, batch=dims[0], output_dtype=t.elem_type, ir_version=model.ir_version)
    names = {n for node in model.graph.node for n in (*node.input, *node.output)} | init
    if RAW_INPUT_NAME in names or any(n.startswith(_PREFIX) for n in names):
        raise ResdeployError(f"the model already uses the names '{RAW_INPUT_NAME}' or '{_PREFIX}*'")
    # merge_models needs identical opset imports; the preprocessing only uses the default domain.
    for o in model.opset_import:
        if o.domain not in ("", "ai.onnx"):
            pre.opset_import.append(o)
    merged = compose.merge_models(pre, model, io_map=[(_PREFIX + "out", target.name)],
                                  doc_string="resdeploy: preprocessing in the graph (uint8 RGB HWC images in)")
    merged.producer_name = model.producer_name or "resdeploy"
    return merged


def is_raw_image_input(dtype: str, shape: Sequence[int | str]) -> bool:
    """A batch of decoded images: uint8, 4-D, 3 channels last (what ``merge_preprocessing`` makes)."""
    return str(dtype) == "uint8" and len(shape) == 4 and shape[-1] == 3


def stack_images(images: Sequence[np.ndarray]) -> np.ndarray:
    """Decoded uint8 HWC images -> one [N, H, W, 3] batch; images of different sizes are refused.

    One tensor holds one size: a batch of mixed sizes would need padding that changes what
    the model sees. Send them as separate requests (or batches), one size each.
    """
    if not images:
        raise ResdeployError("no images to batch")
    first = images[0].shape
    for i, im in enumerate(images):
        if im.dtype != np.uint8 or im.ndim != 3 or im.shape[-1] != 3:
            raise ResdeployError(f"image {i} is {im.dtype} {list(im.shape)}: the model takes uint8 RGB HWC images")
        if im.shape != first:
            raise ResdeployError(f"images in one batch must share one size: image 0 is {first[1]}x{first[0]}, "
                                 f"image {i} is {im.shape[1]}x{im.shape[0]}",
                                 hint="send them in separate requests, one size per batch")
    return np.stack(images, axis=0)


def image_array(img: Any) -> np.ndarray:
    """A PIL image (any mode) -> uint8 RGB HWC, converted as ``resdeploy.preprocess`` converts it."""
    from resdeploy.preprocess import to_rgb

    return np.asarray(to_rgb(img) if img.mode != "RGB" else img, dtype=np.uint8)


# --- an artifact with its preprocessing in the graph --------------------------------------------------
@dataclass
class ParityReport:
    """The in-graph preprocessing against ``preprocess_image`` on the same decoded images."""

    images: int
    sizes: list[list[int]]  # [width, height] of each image
    max_abs_diff: float  # of the normalised tensor, over all images and pixels
    mean_abs_diff: float
    top1_agreement: float | None = None  # the whole model: Python preprocessing + model vs the merged model
    bound: float = 0.0
    passed: bool = True


@dataclass
class EmbedResult:
    path: Path
    source: Path
    parity: ParityReport
    manifest: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "source": str(self.source), "parity": asdict(self.parity),
                "manifest": self.manifest}


# Measured on calibration/sample plus photos re-saved at 7 other sizes (tests/test_preprocess_graph.py):
# max |diff| 0.0175 (one 1/255 step over std 0.225 is 0.017): PIL rounds to 8 bits between its passes.
PARITY_BOUND = 0.03


def parity_bound(spec: PreprocessSpec) -> float:
    """``PARITY_BOUND`` in ``spec``'s units: the same number of 8-bit steps (about 1.7) for any recipe.

    One 8-bit step is ``scale / std`` after normalisation: 0.017 for torchvision's recipe, for
    which the bound was measured, but 1.0 for caffe's (0-255, no std), whose tensors are in pixels.
    """
    step = float(spec.scale) / min(float(v) for v in spec.std)
    return PARITY_BOUND * step / ((1.0 / 255.0) / min(IMAGENET_STD))


def check_images(count: int = 6, seed: int = 0) -> list[Any]:
    """Seeded test images of several sizes and aspect ratios (smooth shapes plus noise, like photos)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    sizes = [(500, 375), (375, 500), (640, 480), (300, 300), (1000, 250), (257, 611), (224, 224), (180, 120)]
    out = []
    for w, h in sizes[:count]:
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([np.sin(xx / rng.uniform(5, 40) + c) * np.cos(yy / rng.uniform(5, 40) - c)
                         for c in range(3)], axis=-1)
        img = np.clip(127.5 + 100 * base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        out.append(Image.fromarray(img, "RGB"))
    return out


def preprocessing_parity(merged_or_pre: Any, spec: PreprocessSpec, images: Sequence[Any]) -> ParityReport:
    """Run the preprocessing subgraph on each image and compare with ``preprocess_image``."""
    import onnxruntime as ort

    from resdeploy.preprocess import preprocess_image

    pre = merged_or_pre if _is_pre_only(merged_or_pre) else extract_preprocessing(merged_or_pre)
    sess = ort.InferenceSession(pre.SerializeToString(), providers=["CPUExecutionProvider"])
    diffs, means, sizes = [], [], []
    for img in images:
        arr = image_array(img)
        got = sess.run(None, {RAW_INPUT_NAME: arr[None]})[0][0].astype(np.float32)
        want = preprocess_image(img, spec)
        d = np.abs(got - want)
        diffs.append(float(d.max()))
        means.append(float(d.mean()))
        sizes.append([int(arr.shape[1]), int(arr.shape[0])])
    worst = max(diffs)
    bound = parity_bound(spec)
    return ParityReport(images=len(diffs), sizes=sizes, max_abs_diff=worst, mean_abs_diff=float(np.mean(means)),
                        bound=bound, passed=worst <= bound)


def _is_pre_only(model: Any) -> bool:
    return bool(model.graph.output) and model.graph.output[0].name == _PREFIX + "out"


def extract_preprocessing(merged: Any) -> Any:
    """The preprocessing part of a merged model, as its own model (for parity checks)."""
    from onnx import utils

    extractor = utils.Extractor(merged)
    return extractor.extract_model([RAW_INPUT_NAME], [_PREFIX + "out"])


def embed_preprocessing(variant: str | os.PathLike[str], output: str | os.PathLike[str] | None = None, *,
                        force: bool = False, images: Sequence[Any] | None = None,
                        spec: PreprocessSpec | None = None) -> EmbedResult:
    """Write a copy of ``variant`` whose graph starts with its manifest's preprocessing.

    ``output`` defaults to ``<variant>-rawimage`` beside it. The preprocessing is checked
    against ``preprocess_image`` on ``images`` (default: ``check_images()``) before anything is
    renamed into place; a difference above ``PARITY_BOUND`` is refused. The new manifest
    keeps the variant's, with ``preprocess_in_graph`` (the spec and the parity) and the parent.
    """
    import onnx

    art = resolve_artifact(variant, zoo=False)  # checks the file against its manifest's record
    if art.kind != "onnx" or art.path is None:
        raise ResdeployError(f"{variant} is not an ONNX model: preprocessing goes into an ONNX graph",
                             hint="pass the artifact directory (or model.onnx) that `resdeploy export`/`quantize` wrote")
    src = art.path
    manifest = art.manifest
    if spec is None:
        if manifest is None or manifest.preprocess is None:
            raise ResdeployError(f"no preprocessing recorded beside {src}",
                                 hint="export it with `resdeploy export`: its manifest records the preprocessing")
        spec = PreprocessSpec.from_dict(manifest.preprocess)
    check_expressible(spec)
    if manifest is not None and manifest.sections.get("preprocess_in_graph"):
        raise ResdeployError(f"{src} already has its preprocessing in the graph")
    model = onnx.load(str(src))
    merged = merge_preprocessing(model, spec)
    parity = preprocessing_parity(merged, spec, images if images is not None else check_images())
    if not parity.passed:
        raise ResdeployError(f"in-graph preprocessing differs from Python's by {parity.max_abs_diff:.3g} "
                             f"(bound {parity.bound:.3g}): not written")
    out = Path(output) if output else src.parent.with_name(src.parent.name + "-rawimage")
    src_sha = art.sha256
    assert src_sha is not None
    with atomic_dir(out, force=force) as tmp:
        path = tmp / "model.onnx"
        onnx.save(merged, str(path))
        # Its own file and graph, measured; the variant it was made from by lineage (its directory,
        # which validate takes as the reference); the model spec, class names and how its weights were made carried over.
        typed = Manifest.for_file(
            path, stage="preprocess-in-graph", precision=manifest.precision if manifest else None,
            model=manifest.model if manifest else None, preprocess=spec.to_dict(),
            classes=manifest.classes if manifest else None,  # the same outputs: the same class names
            parent=Lineage.of(src.parent, out, sha256=src_sha, precision=art.precision,
                              stage=manifest.stage if manifest else None),
        )
        carried = {k: v for k, v in (manifest.sections if manifest else {}).items() if k in _CARRIED_SECTIONS}
        typed.settings = dict(manifest.settings) if manifest else {}
        typed.sections = {**carried,
                          "preprocess_in_graph": {"spec": spec.to_dict(), "input": RAW_INPUT_NAME,
                                                  "layout": "NHWC uint8 RGB", "parity": asdict(parity)}}
        typed.write(tmp)
    return EmbedResult(path=out / "model.onnx", source=src, parity=parity, manifest=typed.to_dict())


# Sections of the variant's manifest that describe how its weights were made, which the copy
# shares; the rest (parity, check, timings, versions, ...) were measured on the variant's own file.
_CARRIED_SECTIONS = ("target", "calibration", "quantization")
