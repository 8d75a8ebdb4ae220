"""Keras/TensorFlow -> ONNX: ``resdeploy export keras:PATH`` (the optional ``[keras]`` extra).

The articles this project grew from build their ResNets in ``tf.keras``, so a ``.keras``
(or legacy ``.h5``) file or a TensorFlow SavedModel directory becomes the same kind of
FP32 artifact as a PyTorch export: ``model.onnx`` + ``manifest.json`` (schema 2), which
``quantize``, ``validate`` and ``bench`` take like any other. The steps:

1. refuse what cannot work before anything heavy is imported or written (no such path, not
   a Keras file or SavedModel, an output that exists);
2. load the model with Keras (TensorFlow backend) or ``tf.saved_model.load``; one image
   input (NHWC as Keras builds them, or NCHW) and one ``[batch, classes]`` output, else one line;
3. convert through ``tf2onnx`` with the input named ``input``, the output ``logits`` and a
   dynamic batch axis ``batch`` (or a fixed batch);
4. parity: ONNX Runtime against Keras itself on the same seeded image-like inputs at batch 1
   and ``parity_batch``, with ``compare.parity_metrics`` and the export's tolerances (the
   comparison code PyTorch exports use);
5. the manifest records NHWC, the input size and the model's preprocessing (a
   ``--preprocess`` preset: ``caffe`` by default, which is what ``keras.applications``'
   ResNet50/101/152 expect).

TensorFlow is imported here only, on first use: ``import resdeploy`` never pays for it.
Nothing in resdeploy imports this module except ``exporter.export`` (a leaf).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from resdeploy import artifacts
from resdeploy.compare import ParityTolerances
from resdeploy.console import QUIET, Reporter
from resdeploy.errors import MissingDependencyError, ResdeployError

PREFIX = "keras:"
INSTALL = "pip install 'resdeploy[keras]'"
DEFAULT_PRESET = "caffe"  # keras.applications ResNet50/101/152: BGR, 0-255, ImageNet mean subtracted
MIN_OPSET, MAX_OPSET = 13, 18  # 13: per-channel Q/DQ; 18: the newest opset tf2onnx 1.17 emits
INPUT_NAME, OUTPUT_NAME, BATCH_AXIS = "input", "logits", "batch"
FILE_SUFFIXES = (".keras", ".h5", ".hdf5")
_PARITY_STREAM = 3  # numpy seed stream of the parity images (PyTorch exports use 2)


@dataclass
class KerasExportConfig:
    """How to convert; ``exporter.ExportConfig`` maps onto this (``export`` checks those flags)."""

    opset: int = 18
    batch: int | None = None  # None: dynamic
    input_size: int | None = None  # needed only when the model leaves height/width dynamic
    preprocess: str = DEFAULT_PRESET
    parity_batch: int = 4
    seed: int = 0
    force: bool = False
    tolerances: ParityTolerances | None = None

    def check(self) -> None:
        """Refuse settings tf2onnx or the presets cannot honour, before TensorFlow is imported."""
        from resdeploy.preprocess import PRESETS

        if not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise ResdeployError(f"keras export takes --opset {MIN_OPSET}..{MAX_OPSET} (tf2onnx emits up to "
                                 f"{MAX_OPSET}), got {self.opset}")
        if self.preprocess not in PRESETS:
            raise ResdeployError(f"unknown --preprocess '{self.preprocess}'; choose from: {', '.join(PRESETS)}")


@dataclass
class KerasExport:
    """What ``convert`` wrote: the ONNX file inside the (renamed) artifact directory, its manifest and parity."""

    model_path: Path
    manifest: dict[str, Any]
    parity: dict[str, Any]


def is_keras_source(source: Any) -> bool:
    """``keras:PATH``: what ``export`` hands to this module."""
    return isinstance(source, str) and source.startswith(PREFIX)


def source_path(source: str) -> Path:
    """The path of ``keras:PATH``; one line when it names nothing Keras can load."""
    text = source[len(PREFIX):] if source.startswith(PREFIX) else source
    if not text:
        raise ResdeployError("keras: needs a path: keras:model.keras or keras:saved_model_dir")
    p = Path(text).expanduser()
    if not p.exists():
        raise ResdeployError(f"no such Keras model: {p}")
    if p.is_dir():
        if not (p / "saved_model.pb").is_file():
            raise ResdeployError(f"{p} is a directory without saved_model.pb: not a TensorFlow SavedModel",
                                 hint="pass a .keras file or a SavedModel directory (model.export(dir))")
        return p
    if p.suffix.lower() not in FILE_SUFFIXES:
        raise ResdeployError(f"{p} is not a Keras model file ({', '.join(FILE_SUFFIXES)}) or a SavedModel directory")
    if p.suffix.lower() == ".keras" and not zipfile.is_zipfile(p):
        raise ResdeployError(f"{p} is not a Keras model (a .keras file is a zip archive; this one is not)",
                             hint="save it with model.save('model.keras')")
    return p


def model_slug(source: str) -> str:
    """The model's name in output paths and the manifest: the file's (or directory's) stem."""
    text = source[len(PREFIX):] if source.startswith(PREFIX) else source
    p = Path(text.rstrip("/\\") or "model")
    stem = p.stem if p.suffix.lower() in FILE_SUFFIXES else p.name
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.").lower() or "keras-model"


def default_output_dir(source: str) -> Path:
    """``artifacts/<model>/fp32``, as for a PyTorch export."""
    return Path("artifacts") / model_slug(source) / "fp32"


# --- TensorFlow, quietly ------------------------------------------------------------------------------
def _import_tensorflow() -> tuple[Any, Any]:
    """tensorflow and tf2onnx, or one line naming the extra. The Keras backend must be TensorFlow."""
    import sys

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ start-up chatter on stderr
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "tensorflow"  # tf2onnx converts TensorFlow graphs only
    try:
        with _quiet():
            import tensorflow as tf
            import tf2onnx
    except ImportError as exc:
        missing = getattr(exc, "name", None) or "tensorflow"
        raise MissingDependencyError(f"'{missing}' (needed by export keras:)", INSTALL) from None
    keras = sys.modules.get("keras")
    backend = keras.backend.backend() if keras is not None and hasattr(keras, "backend") else "tensorflow"
    if backend != "tensorflow":
        raise ResdeployError(f"Keras runs on the '{backend}' backend here; tf2onnx converts TensorFlow models only",
                             hint="unset KERAS_BACKEND (or set it to tensorflow)")
    for name in ("tensorflow", "tf2onnx", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return tf, tf2onnx


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """TensorFlow and tf2onnx print to stdout and warn freely; stdout must stay clean for --json."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _first_line(exc: BaseException) -> str:
    """The line that says what went wrong; TensorFlow's "in user code:" traces end with it instead."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    return (lines[-1] if lines[0].startswith("in user code") else lines[0])[:300]


# --- loading: a Keras file or a SavedModel, as one image input -> logits function ---------------------------
@dataclass
class _Loaded:
    """The model as a batch -> logits function, with what its signature says about the input."""

    kind: str  # "keras" | "savedmodel"
    dims: tuple[int | None, ...]  # the input's dims, batch first, None where dynamic
    input_name: str  # the model's own input name
    name: str  # Keras's model.name, or the SavedModel signature used
    call: Callable[[Any], Any]  # tf tensor -> tf tensor [batch, classes]
    owner: Any = None  # what holds the variables ``call`` uses (a SavedModel's signature alone does not)


def _load(tf: Any, path: Path) -> _Loaded:
    if path.is_dir():
        return _load_savedmodel(tf, path)
    import keras

    try:
        with _quiet():
            model = keras.saving.load_model(str(path), compile=False)
    except Exception as exc:  # ValueError, OSError, zipfile errors, deserialisation errors...
        raise ResdeployError(f"{path} does not load as a Keras model: {_first_line(exc)}",
                             hint="a model saved with custom layers needs them registered "
                                  "(keras.saving.register_keras_serializable)") from None
    inputs, outputs = list(getattr(model, "inputs", None) or []), list(getattr(model, "outputs", None) or [])
    if len(inputs) != 1:
        raise ResdeployError(f"{path} has {len(inputs)} inputs; resdeploy exports single-input image classifiers")
    if len(outputs) != 1:
        raise ResdeployError(f"{path} has {len(outputs)} outputs; resdeploy exports classifiers with one "
                             "[batch, classes] output")
    dims = tuple(None if d is None else int(d) for d in inputs[0].shape)
    _check_output(tuple(outputs[0].shape), path)
    return _Loaded("keras", dims, str(getattr(inputs[0], "name", "input")), str(model.name),
                   lambda x: model(x, training=False), owner=model)


def _load_savedmodel(tf: Any, path: Path) -> _Loaded:
    try:
        with _quiet():
            loaded = tf.saved_model.load(str(path))
    except Exception as exc:
        raise ResdeployError(f"{path} does not load as a TensorFlow SavedModel: {_first_line(exc)}") from None
    signatures = dict(getattr(loaded, "signatures", {}) or {})
    key = "serving_default" if "serving_default" in signatures else next(iter(signatures), None)
    if key is None:
        raise ResdeployError(f"{path} has no serving signature",
                             hint="export it with model.export(dir) (Keras 3) or tf.saved_model.save with signatures")
    fn = signatures[key]
    _, kwargs = fn.structured_input_signature
    if len(kwargs) != 1:
        raise ResdeployError(f"{path} (signature {key}) has {len(kwargs)} inputs; resdeploy exports "
                             "single-input image classifiers")
    (name, spec), = kwargs.items()
    outs = fn.structured_outputs
    outs = list(outs.values()) if isinstance(outs, dict) else list(outs if isinstance(outs, list | tuple) else [outs])
    if len(outs) != 1:
        raise ResdeployError(f"{path} (signature {key}) has {len(outs)} outputs; resdeploy exports classifiers "
                             "with one [batch, classes] output")
    _check_output(tuple(outs[0].shape), path)

    def call(x: Any) -> Any:
        result = fn(**{name: x})
        return next(iter(result.values())) if isinstance(result, dict) else result

    return _Loaded("savedmodel", tuple(None if d is None else int(d) for d in spec.shape), str(name), key, call,
                   owner=loaded)


def _check_output(shape: tuple[Any, ...], path: Path) -> None:
    if len(shape) != 2:
        raise ResdeployError(f"{path} outputs shape {shape}; resdeploy exports classifiers with one "
                             "[batch, classes] output")


def _input_geometry(dims: tuple[int | None, ...], input_size: int | None, path: Path) -> tuple[str, int, int]:
    """(layout, H, W) of the model's image input, with --input-size where the model leaves H, W dynamic."""
    from resdeploy.onnx_io import layout_of

    if len(dims) != 4:
        raise ResdeployError(f"{path} takes input of shape {dims}; resdeploy exports image classifiers "
                             "([batch, H, W, 3])")
    layout = layout_of(dims) or "NHWC"  # channels-last unless the dims say otherwise: Keras's default
    c, h, w = (dims[3], dims[1], dims[2]) if layout == "NHWC" else (dims[1], dims[2], dims[3])
    if c not in (None, 3):
        raise ResdeployError(f"{path} takes {c}-channel images (input {dims}); resdeploy feeds 3-channel images")
    if h and w:
        if input_size is not None and (h, w) != (input_size, input_size):
            raise ResdeployError(f"--input-size {input_size} does not match {path}, whose input {dims} fixes "
                                 f"{h}x{w}", hint="drop --input-size: the model's size is used")
        return layout, h, w
    if input_size is None:
        raise ResdeployError(f"{path} leaves its input's height and width dynamic ({dims})",
                             hint="pass --input-size (the size it was trained at)")
    return layout, input_size, input_size


# --- conversion ---------------------------------------------------------------------------------------
def _convert(tf: Any, tf2onnx: Any, loaded: _Loaded, shape: tuple[int | None, ...], opset: int, path: Path) -> Any:
    """The ONNX ModelProto: ``input`` (dynamic or fixed batch) -> ``logits``."""
    signature = [tf.TensorSpec(shape, tf.float32, name=INPUT_NAME)]
    fn = tf.function(loaded.call, input_signature=signature)
    try:
        with _quiet():
            proto, _ = tf2onnx.convert.from_function(fn, input_signature=signature, opset=opset)
    except Exception as exc:
        raise ResdeployError(f"tf2onnx could not convert {path}: {_first_line(exc)}",
                             hint="try another --opset, or run with --debug for the traceback") from exc
    _rename(proto, shape[0] is None)
    return proto


def _rename(proto: Any, dynamic: bool) -> None:
    """The output becomes ``logits`` and the dynamic batch axis ``batch`` (tf2onnx writes Identity:0, unk__N)."""
    graph = proto.graph
    old = graph.output[0].name
    if old != OUTPUT_NAME:
        for node in graph.node:
            node.output[:] = [OUTPUT_NAME if o == old else o for o in node.output]
            node.input[:] = [OUTPUT_NAME if i == old else i for i in node.input]
        graph.output[0].name = OUTPUT_NAME
    if dynamic:
        for value in (graph.input[0], graph.output[0]):
            dim = value.type.tensor_type.shape.dim[0]
            dim.ClearField("dim_value")
            dim.dim_param = BATCH_AXIS


def _check_graph(onnx_path: Path, shape: tuple[int | None, ...]) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(onnx_path), full_check=True)
    except Exception as exc:
        raise ResdeployError(f"tf2onnx wrote a graph that is not valid ONNX: {_first_line(exc)}") from exc
    summary = artifacts.GraphSummary.measure(onnx_path)
    want = [BATCH_AXIS if d is None else d for d in shape]
    got = [(t.name, list(t.shape)) for t in summary.inputs]
    if got != [(INPUT_NAME, want)] or [o.name for o in summary.outputs] != [OUTPUT_NAME] \
            or len(summary.outputs[0].shape) != 2:
        raise ResdeployError(f"unexpected ONNX signature {got} -> {[o.to_dict() for o in summary.outputs]}; "
                             f"expected {INPUT_NAME} {want} -> {OUTPUT_NAME} [batch, classes]")


# --- parity ---------------------------------------------------------------------------------------------
def parity_inputs(n: int, spec: Any, seed: int) -> np.ndarray:
    """Seeded image-like 8-bit images put through the model's own preprocessing (``preprocess_image``).

    The multi-scale noise of the PyTorch parity inputs (``models.weights.synthetic_images``),
    mapped to pixels, so a caffe model sees 0-255 BGR minus the mean and a tf model [-1, 1]:
    inputs in the range the model was trained on, not white noise near zero.
    """
    from PIL import Image

    from resdeploy.models.weights import synthetic_images
    from resdeploy.preprocess import preprocess_image

    h, w = spec.crop_hw
    z = synthetic_images(n, max(h, w), seed, _PARITY_STREAM).numpy()[:, :, :h, :w]
    pixels = np.clip(np.rint(128.0 + 48.0 * z), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    exact = replace(spec, resize=0)  # the images already have the crop's size
    return np.stack([preprocess_image(Image.fromarray(p, mode="RGB"), exact) for p in pixels])


def check_parity(tf: Any, loaded: _Loaded, onnx_path: Path, spec: Any, *, batches: list[int], seed: int,
                 tolerances: ParityTolerances) -> dict[str, Any]:
    """Keras (or the SavedModel) against ONNX Runtime on the same inputs, per batch size, gated."""
    from resdeploy.compare import compare_runners, per_batch_parity
    from resdeploy.runners import RunnerConfig

    total = sum(batches)
    images = parity_inputs(total, spec, seed)
    starts = np.cumsum([0, *batches])
    split = [images[int(a):int(b)] for a, b in zip(starts[:-1], starts[1:], strict=True)]

    def keras_side(x: np.ndarray) -> np.ndarray:
        with _quiet():
            return np.asarray(loaded.call(tf.constant(x)), dtype=np.float32)

    run = compare_runners(keras_side, RunnerConfig(engine="ort", model=str(onnx_path), device="cpu"), split)
    per_batch, failures = per_batch_parity(run, batches, tolerances)
    return {
        "passed": not failures,
        "failures": failures,
        "reference": "Keras (TensorFlow, CPU, training=False)" if loaded.kind == "keras"
                     else f"TensorFlow SavedModel signature {loaded.name} (CPU)",
        "candidate": "ONNX Runtime CPUExecutionProvider",
        "batches": per_batch,
        "overall": run.metrics().to_dict(),
        "distinct_top1": int(len(np.unique(np.argmax(run.reference, axis=1)))),
        "tolerances": asdict(tolerances),
        "inputs": {
            "kind": "synthetic", "count": total, "size": list(spec.crop_hw), "seed": [int(seed), _PARITY_STREAM],
            "generator": "resdeploy.keras_export.parity_inputs (multi-scale noise as 8-bit images, then the "
                         "model's preprocessing)",
            "split": batches,
        },
    }


# --- the whole export -------------------------------------------------------------------------------------
def _source_record(path: Path) -> dict[str, Any]:
    """Where the weights came from: the file's sha256, or for a SavedModel each file's."""
    if path.is_file():
        return {"path": str(path.resolve()), "sha256": artifacts.sha256_file(path)}
    files = sorted(p for p in path.rglob("*") if p.is_file())
    digest = artifacts.sha256_bytes("".join(f"{p.relative_to(path)}:{artifacts.sha256_file(p)}\n"
                                            for p in files).encode())
    return {"path": str(path.resolve()), "sha256": digest, "files": len(files),
            "sha256_of": "'relative/path:sha256' lines of every file, sorted"}


def convert(source: str, out: Path, cfg: KerasExportConfig, *, reporter: Reporter | None = None) -> KerasExport:
    """Convert ``keras:PATH`` into the artifact directory ``out`` (built aside, renamed into place).

    Raises ``ResdeployError`` (exit 2) with nothing written for bad input or a missing
    extra. A parity failure still writes the artifact (``parity.passed`` false); the
    caller (``exporter.export``) turns that into ``GateFailure``.
    """
    from resdeploy.preprocess import spec_for

    cfg.check()
    rep = reporter or QUIET
    tolerances = cfg.tolerances or ParityTolerances()
    path = source_path(source)
    if out.exists() and not cfg.force:
        raise ResdeployError(f"{out} already exists; pass --force to overwrite it")
    if out.exists() and not out.is_dir():
        raise ResdeployError(f"{out} exists and is not a directory")
    artifacts.check_writable_dir(out.parent)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    with rep.step("load keras model"):
        tf, tf2onnx = _import_tensorflow()
        loaded = _load(tf, path)
        layout, h, w = _input_geometry(loaded.dims, cfg.input_size, path)
    timings["load keras model"] = round(time.perf_counter() - t0, 3)
    spec = spec_for((h, w), preset=cfg.preprocess, layout=layout)
    shape = (cfg.batch, h, w, 3) if layout == "NHWC" else (cfg.batch, 3, h, w)
    rep.info(f"[bold]{model_slug(source)}[/] ({loaded.kind} {path.name}), input {h}x{w} {layout}, opset {cfg.opset}, "
             f"tf2onnx, batch {cfg.batch or 'dynamic'}, {cfg.preprocess} preprocessing")
    weights = _source_record(path)
    with artifacts.atomic_dir(out, force=cfg.force) as tmp:
        onnx_path = tmp / "model.onnx"
        t0 = time.perf_counter()
        with rep.step("convert (tf2onnx)"):
            import onnx

            proto = _convert(tf, tf2onnx, loaded, shape, cfg.opset, path)
            onnx.save(proto, str(onnx_path))
            _check_graph(onnx_path, shape)
        timings["convert (tf2onnx)"] = round(time.perf_counter() - t0, 3)
        batches = [cfg.batch] if cfg.batch else [1, cfg.parity_batch]
        t0 = time.perf_counter()
        with rep.step(f"parity (batch {', '.join(map(str, batches))})"):
            parity = check_parity(tf, loaded, onnx_path, spec, batches=batches, seed=cfg.seed, tolerances=tolerances)
        timings["parity"] = round(time.perf_counter() - t0, 3)
        manifest = _manifest(source, path, loaded, onnx_path, spec, cfg, layout, (h, w), weights, parity, timings)
        manifest.write(tmp)
        body = manifest.to_dict()
    return KerasExport(model_path=out / "model.onnx", manifest=body, parity=parity)


def _manifest(source: str, path: Path, loaded: _Loaded, onnx_path: Path, spec: Any, cfg: KerasExportConfig,
              layout: str, hw: tuple[int, int], weights: dict[str, Any], parity: dict[str, Any],
              timings: dict[str, float]) -> artifacts.Manifest:
    versions = artifacts.package_versions(["tensorflow-cpu", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime"])
    manifest = artifacts.Manifest.for_file(
        onnx_path, stage="export", precision="fp32",
        model={"name": model_slug(source), "source": "keras", "format": loaded.kind, "keras_name": loaded.name,
               "weights": weights, "family": "keras"},
        preprocess=spec.to_dict(),
    )
    assert manifest.graph is not None
    h, w = hw
    manifest.settings = {
        "input_size": h if h == w else [h, w],
        "layout": layout,
        "preprocess": cfg.preprocess,
        "opset": cfg.opset,
        "batch": cfg.batch or "dynamic",
        "parity_batch": cfg.parity_batch,
        "seed": cfg.seed,
        "exporter": "tf2onnx",
        "num_classes": manifest.graph.outputs[0].shape[-1],
    }
    manifest.sections = {
        "dynamic_axes": {} if cfg.batch else {INPUT_NAME: {"0": BATCH_AXIS}, OUTPUT_NAME: {"0": BATCH_AXIS}},
        "exporter": {"name": "tf2onnx", "kind": "tf2onnx", "version": versions.get("tf2onnx"),
                     "tensorflow": versions.get("tensorflow-cpu") or versions.get("tensorflow"),
                     "optimized": True},
        "keras": {"path": str(path.resolve()), "format": loaded.kind, "input_name": loaded.input_name,
                  "input_dims": ["?" if d is None else d for d in loaded.dims], "model_name": loaded.name},
        "versions": versions,
        "parity": parity,
        "timings": dict(timings),
    }
    return manifest
