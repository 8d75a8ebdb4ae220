"""PyTorch -> ONNX: export, check the graph, prove parity with PyTorch, write the manifest.

``export("resnet50", "out/r50")`` writes ``out/r50/model.onnx`` and ``out/r50/manifest.json``.
The steps, each timed:

1. build the FP32 model (``ModelSpec.build_with_record``: weights file, or a calibrated
   seeded random init whose logits have a realistic spread; see ``models.weights``);
2. export with ``torch.onnx.export`` (the ``dynamo=True`` exporter by default; the
   TorchScript exporter for opsets below 18, which the dynamo exporter cannot emit),
   input ``input`` [batch, 3, H, W] float32, output ``logits``, batch axis ``batch``;
3. check the file: ``onnx.checker``, shape inference, the opset it really holds, no
   training-only operators, the input/output names and shapes promised above;
4. parity: ONNX Runtime (CPU, through the ``ort`` runner) against the PyTorch model on
   the same seeded image-like inputs at batch 1 and at ``parity_batch``, with
   ``compare.parity_metrics`` gated by ``compare.ParityTolerances``;
5. the manifest, then the whole directory is renamed into place (``artifacts.atomic_dir``).

A parity failure still writes the artifact (``manifest["parity"]["passed"] = false``) so
it can be inspected, and then raises ``GateFailure`` (exit code 1): CI sees a red job,
and the person debugging it has the graph and the numbers in hand.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape

from resdeploy import artifacts
from resdeploy.compare import ParityTolerances
from resdeploy.console import QUIET, Reporter
from resdeploy.errors import GateFailure, ResdeployError

MIN_OPSET = 13  # per-channel Q/DQ and TensorRT's ONNX parser need >= 13
MAX_OPSET = 24  # the newest opset this ONNX Runtime runs and the exporters emit
DYNAMO_MIN_OPSET = 18  # the dynamo exporter emits opset 18+ (older targets are left unconverted)
DEFAULT_OPSET = 18
EXPORTERS = ("auto", "dynamo", "torchscript")
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
BATCH_AXIS = "batch"
EXTERNAL_DATA_THRESHOLD = 1_800_000_000  # bytes of weights above which protobuf's 2 GB limit is near
_TRAINING_OPS = {"Dropout", "TrainingMode", "BatchNormalizationTraining", "Gradient"}

# The FP32-vs-FP32 gate of an export, relative to the logit scale. FP32 rounding differences
# between PyTorch and ONNX Runtime (BatchNorm folded, other conv kernels) grow with depth and
# with the logits' magnitude: measured max relative errors (to max |logit|) were 3e-6 (resnet18),
# 1.3e-5 (resnet50), 2e-4 (resnext101_32x8d) and 3.7e-4 (resnet152, max abs 7e-3), while 0.1 %
# noise on ONE convolution's weights gives 2e-3 and 1 % gives 2e-2. So 1e-3 relative separates
# them; the absolute bound is a backstop sized for logits of a few tens.
EXPORT_TOLERANCES = ParityTolerances()  # the defaults are these measured bounds
EXPORT_RESULT_SCHEMA = "resdeploy.export/1"


@dataclass
class ExportConfig:
    """How to export. ``exporter='auto'`` is dynamo for opset >= 18, TorchScript below."""

    input_size: int | None = None
    opset: int = DEFAULT_OPSET
    batch: str | int = "dynamic"
    tolerances: ParityTolerances = field(default_factory=lambda: EXPORT_TOLERANCES)
    parity_batch: int = 4
    force: bool = False
    seed: int = 0
    exporter: str = "auto"
    # keras:PATH only: the preprocessing preset the model was trained with (None: caffe, as
    # keras.applications ResNets); a PyTorch model's preprocessing comes from its zoo entry
    preprocess: str | None = None

    def validate(self) -> None:
        """Kept for callers of earlier releases: ``check``."""
        self.check()

    def check(self) -> None:
        """Refuse impossible settings before any work is done."""
        if self.input_size is not None and (isinstance(self.input_size, bool) or int(self.input_size) <= 0):
            raise ResdeployError(f"--input-size must be a positive integer, got {self.input_size}")
        if not isinstance(self.opset, int) or not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise ResdeployError(
                f"unsupported opset {self.opset}; choose {MIN_OPSET}..{MAX_OPSET}",
                hint=f"{DEFAULT_OPSET} is the default; quantization and TensorRT need >= 13",
            )
        if self.exporter not in EXPORTERS:
            raise ResdeployError(f"unknown exporter '{self.exporter}'; choose from: {', '.join(EXPORTERS)}")
        if self.exporter == "dynamo" and self.opset < DYNAMO_MIN_OPSET:
            raise ResdeployError(
                f"the dynamo exporter emits opset {DYNAMO_MIN_OPSET} or newer, not {self.opset}",
                hint="use --exporter torchscript (or auto) for older opsets",
            )
        self.batch_size()  # validates
        if isinstance(self.parity_batch, bool) or not isinstance(self.parity_batch, int) or self.parity_batch < 2:
            raise ResdeployError(f"the parity batch must be an integer >= 2, got {self.parity_batch}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ResdeployError(f"--seed must be a non-negative integer, got {self.seed}")

    def batch_size(self) -> int | None:
        """None for a dynamic batch axis, else the fixed batch size."""
        b = self.batch
        if isinstance(b, str):
            if b.strip().lower() == "dynamic":
                return None
            try:
                b = int(b)
            except ValueError:
                raise ResdeployError(f"--batch takes 'dynamic' or a positive integer, got '{self.batch}'") from None
        if isinstance(b, bool) or not isinstance(b, int) or b <= 0:
            raise ResdeployError(f"--batch takes 'dynamic' or a positive integer, got '{self.batch}'")
        return b

    def resolved_exporter(self) -> str:
        if self.exporter != "auto":
            return self.exporter
        return "dynamo" if self.opset >= DYNAMO_MIN_OPSET else "torchscript"


@dataclass
class ExportResult:
    """Where the ONNX file is, its manifest, and the parity verdict."""

    model_path: Path
    manifest: dict[str, Any]
    parity: dict[str, Any]
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return {"schema": EXPORT_RESULT_SCHEMA, "model_path": str(self.model_path), "passed": self.passed,
                "manifest": self.manifest}


def default_output_dir(model_name: str) -> Path:
    """``artifacts/<model>/fp32``: the place later stages look for the FP32 artifact."""
    from resdeploy import keras_export
    from resdeploy.models.zoo import ModelSpec

    if keras_export.is_keras_source(model_name):
        return keras_export.default_output_dir(model_name)

    return Path("artifacts") / ModelSpec(model_name).slug / "fp32"


def export(
    source: str | Any,
    config: ExportConfig | str | os.PathLike[str] | None = None,
    legacy_config: ExportConfig | None = None,
    *,
    reporter: Reporter | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    weights: str | os.PathLike[str] | None = None,
    num_classes: int | None = None,
) -> ExportResult:
    """Export a model to a verified FP32 ONNX artifact directory (``model.onnx`` + ``manifest.json``).

    ``source`` is a zoo name (``resnet50``), ``torchvision:NAME``, ``timm:NAME``,
    ``package.module:factory``, a ``ModelSpec``, or ``keras:PATH`` (a ``.keras`` file or a
    SavedModel directory, converted with tf2onnx: the ``[keras]`` extra, ``resdeploy.keras_export``).
    The output directory is ``output_dir`` (default ``artifacts/<model>/fp32``); the calling convention of earlier releases,
    ``export(model, output_dir, config)``, still works. Raises ``ResdeployError`` (exit 2)
    for bad input before writing anything, and ``GateFailure`` (exit 1) after writing the
    artifact when parity fails.
    """
    if isinstance(config, (str, os.PathLike)) or (config is None and legacy_config is not None):
        output_dir, config = config or output_dir, legacy_config  # export(model, "out/dir"|None, config)
    elif legacy_config is not None:
        raise TypeError("export(source, config): pass the output directory as output_dir=")
    model = source
    from resdeploy.models.zoo import ModelSpec

    cfg = config or ExportConfig()
    cfg.check()
    rep = reporter or QUIET
    from resdeploy import keras_export

    if keras_export.is_keras_source(model):
        return _export_keras(model, cfg, rep, output_dir=output_dir, weights=weights, num_classes=num_classes)
    if cfg.preprocess is not None:
        raise ResdeployError("--preprocess applies to keras:PATH models; a PyTorch model's preprocessing comes "
                             "from the zoo (torchvision's ImageNet or CIFAR recipe)")
    trained = None
    if weights is not None:  # a `resdeploy train` output: its weights, input size and class names
        from resdeploy.training import export_config_for, trained_weights

        weights, trained = trained_weights(weights)
        cfg = export_config_for(cfg, model, trained)
    spec = _resolve_spec(model, cfg, weights=weights, num_classes=num_classes)
    out = Path(output_dir) if output_dir is not None else default_output_dir(spec.name)
    if out.exists() and not cfg.force:
        raise ResdeployError(f"{out} already exists; pass --force to overwrite it")
    _check_output_dir(out)
    size = spec.resolved_input_size
    fixed_batch = cfg.batch_size()
    exporter = cfg.resolved_exporter()
    assert isinstance(spec, ModelSpec)

    if isinstance(spec.weights, (str, os.PathLike)):
        from resdeploy.models.weights import check_weights_path

        check_weights_path(spec.weights)  # before the first progress line: an error stays one line
    if spec.weights is None:
        rep.warn(f"no --weights: {spec.name} is randomly initialised (seed {spec.seed}); "
                 "its predictions are meaningless, its speed and export parity are real")
    rep.info(f"[bold]{escape(spec.name)}[/] ({escape(_weights_label(spec))}), input {size}x{size}, opset {cfg.opset}, "
             f"{exporter} exporter, batch {fixed_batch or 'dynamic'}")
    with rep.step("build model"):
        torch_model, init = spec.build_with_record()
        weights_desc = spec.weights_description()

    with artifacts.atomic_dir(out, force=cfg.force) as tmp:
        onnx_path = tmp / "model.onnx"
        with rep.step("export onnx"):
            external = export_onnx(torch_model, onnx_path, input_size=size, opset=cfg.opset,
                                   batch=fixed_batch, exporter=exporter)
        with rep.step("check graph"):
            check_graph(onnx_path, opset=cfg.opset, input_size=size, batch=fixed_batch)
        batches = [fixed_batch] if fixed_batch else [1, cfg.parity_batch]
        parity_step = f"parity (batch {', '.join(map(str, batches))})"
        with rep.step(parity_step):
            parity = check_parity(torch_model, onnx_path, input_size=size, batches=batches,
                                  seed=spec.seed, tolerances=cfg.tolerances)
        # only this export's steps: a reporter (QUIET above all) may be shared across calls
        steps = ("build model", "export onnx", "check graph", parity_step)
        timings = {k: rep.timings[k] for k in steps if k in rep.timings}
        typed = _manifest(spec, init, weights_desc, onnx_path, external, parity, cfg, exporter, fixed_batch, timings)
        if trained is not None:  # a `resdeploy train` model: its class names, and how it was trained
            from resdeploy.training import export_facts

            typed.classes = list(trained["classes"])
            typed.sections["training"] = export_facts(trained)
        typed.write(tmp)
        manifest = typed.to_dict()

    model_path = out / "model.onnx"
    return _verdict(ExportResult(model_path=model_path, manifest=manifest, parity=parity,
                                 passed=bool(parity["passed"])), spec.name, out)


def _verdict(result: ExportResult, name: str, out: Path) -> ExportResult:
    """A parity failure is exit 1 with the artifact kept (CI goes red, whoever debugs it has the graph)."""
    if not result.passed:
        failure = GateFailure(
            f"ONNX parity failed for {name}: {'; '.join(result.parity['failures'])}",
            hint=f"the artifact is kept for inspection in {out} (manifest parity.passed=false)",
        )
        failure.result = result  # type: ignore[attr-defined]  # the CLI prints it before exiting 1
        raise failure
    return result


def _export_keras(source: str, cfg: ExportConfig, rep: Reporter, *, output_dir: Any, weights: Any,
                  num_classes: int | None) -> ExportResult:
    """``keras:PATH``: the same artifact, verdict and exit codes, made by ``keras_export.convert``."""
    from resdeploy import keras_export

    if weights is not None or num_classes is not None:
        raise ResdeployError("--weights and --num-classes do not apply to keras:PATH: the Keras model holds "
                             "its weights and its classifier")
    if cfg.exporter != "auto":
        raise ResdeployError(f"--exporter {cfg.exporter} is a PyTorch exporter; keras:PATH converts with tf2onnx")
    out = Path(output_dir) if output_dir is not None else keras_export.default_output_dir(source)
    kcfg = keras_export.KerasExportConfig(
        opset=cfg.opset, batch=cfg.batch_size(), input_size=cfg.input_size,
        preprocess=cfg.preprocess or keras_export.DEFAULT_PRESET, parity_batch=cfg.parity_batch, seed=cfg.seed,
        force=cfg.force, tolerances=cfg.tolerances)
    done = keras_export.convert(source, out, kcfg, reporter=rep)
    return _verdict(ExportResult(model_path=done.model_path, manifest=done.manifest, parity=done.parity,
                                 passed=bool(done.parity["passed"])), done.manifest["model"]["name"], out)


def _check_output_dir(out: Path) -> None:
    """Fail before any work when the output directory cannot be created (read-only, /proc, a file)."""
    if out.exists() and not out.is_dir():
        raise ResdeployError(f"{out} exists and is not a directory")
    artifacts.check_writable_dir(out.parent)


def _resolve_spec(model: Any, cfg: ExportConfig, *, weights: Any, num_classes: int | None) -> Any:
    from resdeploy.models.zoo import ModelSpec

    if isinstance(model, ModelSpec):
        d = model.to_dict()
    elif isinstance(model, str):
        d = {"name": model, "seed": cfg.seed}
    else:
        raise ResdeployError(f"export takes a model name or a ModelSpec, not {type(model).__name__}")
    if weights is not None:
        d["weights"] = str(weights)
    if num_classes is not None:
        d["num_classes"] = num_classes
    if cfg.input_size is not None:
        d["input_size"] = cfg.input_size
    spec = ModelSpec.from_dict(d)
    if spec.weights is not None:
        spec.weights = str(Path(spec.weights).resolve())
    spec.input_size = spec.resolved_input_size  # pin it: the random init's calibration depends on it
    return spec


def _weights_label(spec: Any) -> str:
    return f"weights {Path(spec.weights).name}" if spec.weights else f"random init, seed {spec.seed}"


# --- the export itself ------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporters print progress to stdout and warn freely; stdout must stay clean for --json."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    buf = io.StringIO()
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with contextlib.redirect_stdout(buf), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lvl in zip(loggers, levels, strict=True):
            lg.setLevel(lvl)


def _caused_by_interrupt(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def export_onnx(model: Any, path: Path, *, input_size: int, opset: int, batch: int | None, exporter: str) -> bool:
    """Write ``model`` to ``path`` as ONNX; returns whether weights went to external data (> ~2 GB)."""
    import torch

    example = torch.zeros(batch or 2, 3, input_size, input_size)
    n_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    external = n_bytes > EXTERNAL_DATA_THRESHOLD
    model.eval()
    try:
        with _quiet_exporter(), torch.no_grad():
            if exporter == "dynamo":
                dyn = None if batch else ({0: torch.export.Dim(BATCH_AXIS, min=1)},)
                program = torch.onnx.export(
                    model, (example,), None, dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                    opset_version=opset, dynamic_shapes=dyn, optimize=True, verbose=False,
                )
                if program is None:  # pragma: no cover - torch returns the program when f is None
                    raise ResdeployError("torch.onnx.export returned nothing")
                program.save(str(path), external_data=external)
            else:
                axes = None if batch else {INPUT_NAME: {0: BATCH_AXIS}, OUTPUT_NAME: {0: BATCH_AXIS}}
                torch.onnx.export(
                    model, (example,), str(path), dynamo=False, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                    opset_version=opset, dynamic_axes=axes, do_constant_folding=True, export_params=True,
                    training=torch.onnx.TrainingMode.EVAL,
                )
                if batch and not external:
                    _pin_output_batch(path, batch)
    except ResdeployError:
        raise
    except Exception as exc:
        if _caused_by_interrupt(exc):  # torch.export wraps a Ctrl-C in its own error: still an abort
            raise KeyboardInterrupt from exc
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()  # torch.export colours its messages
        first = (text.splitlines() or [type(exc).__name__])[0][:300]
        raise ResdeployError(
            f"torch.onnx.export ({exporter}) failed: {first}",
            hint="try --exporter torchscript, or run with --debug for the traceback",
        ) from exc
    return external


def _pin_output_batch(path: Path, batch: int) -> None:
    """The TorchScript exporter leaves a fixed-batch model's output batch symbolic; state it."""
    import onnx

    proto = onnx.load(str(path))
    for out in proto.graph.output:
        dims = out.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:
            dims[0].dim_value = batch
    onnx.save(proto, str(path))


def check_graph(path: Path, *, opset: int, input_size: int, batch: int | None) -> dict[str, Any]:
    """Check the file and describe it: checker, shape inference, real opset, ops, inputs/outputs."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=False)
        inferred = path.with_name(path.name + ".inferred")
        onnx.shape_inference.infer_shapes_path(str(path), str(inferred), check_type=True, strict_mode=True)
        inferred.unlink(missing_ok=True)
    except Exception as exc:  # onnx raises ValidationError / InferenceError / RuntimeError
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ResdeployError(f"the exported graph is not valid ONNX: {first}") from exc
    proto = onnx.load(str(path), load_external_data=False)
    real_opset = artifacts.default_opset(proto)
    if real_opset != opset:
        raise ResdeployError(f"asked for opset {opset} but the exporter wrote opset {real_opset}",
                             hint="try --exporter torchscript")
    ops = Counter(n.op_type for n in proto.graph.node)
    training = sorted(set(ops) & _TRAINING_OPS)
    bn_training = sum(
        1 for n in proto.graph.node
        if n.op_type == "BatchNormalization" and any(a.name == "training_mode" and a.i == 1 for a in n.attribute)
    )
    if bn_training:
        training.append(f"BatchNormalization(training_mode=1) x{bn_training}")
    if training:
        raise ResdeployError(f"the exported graph holds training-only operators: {', '.join(training)}")
    summary = artifacts.GraphSummary.of_proto(proto)
    inputs = [t.to_dict() for t in summary.inputs]
    outputs = [t.to_dict() for t in summary.outputs]
    want_batch: int | str = batch if batch else BATCH_AXIS
    if [i["name"] for i in inputs] != [INPUT_NAME] or inputs[0]["shape"] != [want_batch, 3, input_size, input_size]:
        raise ResdeployError(f"unexpected ONNX inputs {inputs}; expected {INPUT_NAME} [{want_batch}, 3, {input_size}, {input_size}]")
    if [o["name"] for o in outputs] != [OUTPUT_NAME] or len(outputs[0]["shape"]) != 2 \
            or outputs[0]["shape"][0] != want_batch:
        raise ResdeployError(f"unexpected ONNX outputs {outputs}; expected {OUTPUT_NAME} [{want_batch}, classes]")
    return {
        "opset": real_opset,
        "ir_version": int(proto.ir_version),
        "inputs": inputs,
        "outputs": outputs,
        "ops": dict(sorted(ops.items())),
        "nodes": int(sum(ops.values())),
        "batchnorm_folded": ops.get("BatchNormalization", 0) == 0,
        "initializers": len(proto.graph.initializer),
    }


# --- parity -------------------------------------------------------------------------------------------
def check_parity(
    torch_model: Any,
    onnx_path: Path,
    *,
    input_size: int,
    batches: list[int],
    seed: int,
    tolerances: ParityTolerances,
) -> dict[str, Any]:
    """Run PyTorch and ONNX Runtime on the same seeded inputs at each batch size and gate the metrics.

    The inputs are image-like synthetic tensors (``models.weights.synthetic_images``),
    not white noise: together with the calibrated random init they give logits with a
    spread of a few units and top-1 classes that change from image to image, so a
    wrong weight or operator shows up in every metric instead of hiding in near-zero logits.
    """
    import torch

    from resdeploy.compare import compare_runners, per_batch_parity
    from resdeploy.models.weights import STREAM_PARITY_INPUTS, describe_synthetic_images, synthetic_images
    from resdeploy.runners import RunnerConfig

    total = sum(batches)
    images = synthetic_images(total, input_size, seed, STREAM_PARITY_INPUTS)
    starts = np.cumsum([0, *batches])
    split = [images[int(a):int(b)].numpy() for a, b in zip(starts[:-1], starts[1:], strict=True)]

    def pytorch(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch_model(torch.from_numpy(x)).float().numpy()

    run = compare_runners(pytorch, RunnerConfig(engine="ort", model=str(onnx_path), device="cpu"), split)
    per_batch, failures = per_batch_parity(run, batches, tolerances)
    ref_all = run.reference
    overall = run.metrics()
    return {
        "passed": not failures,
        "failures": failures,
        "reference": "PyTorch FP32 (CPU, eval mode)",
        "candidate": "ONNX Runtime CPUExecutionProvider",
        "batches": per_batch,
        "overall": overall.to_dict(),
        "distinct_top1": int(len(np.unique(np.argmax(ref_all, axis=1)))),
        "tolerances": asdict(tolerances),
        "inputs": {
            **describe_synthetic_images(total, input_size, seed, STREAM_PARITY_INPUTS),
            "split": batches,
            "why": "image-like multi-scale noise, so logits spread and top-1 varies (white noise hides mismatches)",
        },
    }


# --- the manifest ---------------------------------------------------------------------------------------
def _node_modules(onnx_path: Path) -> dict[str, str]:
    import onnx

    from resdeploy.graph_modules import node_module_map

    return node_module_map(onnx.load(os.fspath(onnx_path), load_external_data=False))


def _manifest(
    spec: Any, init: dict[str, Any], weights_desc: Any, onnx_path: Path, external: bool,
    parity: dict[str, Any], cfg: ExportConfig, exporter: str, fixed_batch: int | None, timings: dict[str, float],
) -> artifacts.Manifest:
    """The export's manifest: file record and graph summary measured from the file just written."""
    ext_files = sorted(p for p in onnx_path.parent.iterdir() if p.name.startswith("model.onnx.") and p.is_file()) \
        if external else []
    versions = artifacts.package_versions(["torch", "onnx", "onnxruntime", "onnxscript"])
    manifest = artifacts.Manifest.for_file(
        onnx_path, stage="export", precision="fp32", external=ext_files,
        model={"name": spec.name, "source": spec.source, "spec": spec.to_dict(), "weights": weights_desc,
               "init": init, "family": spec.family},
        preprocess=spec.preprocess().to_dict(),
        # ONNX node -> PyTorch module, for per-layer reports and --exclude by module (`resdeploy layers`)
        node_modules=_node_modules(onnx_path),
    )
    assert manifest.graph is not None
    manifest.settings = {
        "input_size": spec.resolved_input_size,
        "opset": cfg.opset,
        "batch": fixed_batch or "dynamic",
        "parity_batch": cfg.parity_batch,
        "seed": spec.seed,
        "exporter": cfg.exporter,
        "num_classes": manifest.graph.outputs[0].shape[-1],
    }
    manifest.sections = {
        "dynamic_axes": {} if fixed_batch else {INPUT_NAME: {"0": BATCH_AXIS}, OUTPUT_NAME: {"0": BATCH_AXIS}},
        "exporter": {
            "name": "torch.onnx.export",
            "version": versions.get("torch"),
            "dynamo": exporter == "dynamo",
            "kind": exporter,
            "optimized": exporter == "dynamo",
        },
        "versions": versions,
        "parity": parity,
        "timings": dict(timings),
    }
    return manifest
