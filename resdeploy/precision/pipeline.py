"""The quantize stage: an FP16 graph, or an INT8 Q/DQ graph, made from an exported FP32 model.

``quantize`` is the one entry point (the ``resdeploy quantize`` command is a thin layer
over it). It writes ``<out>/model.onnx``, ``<out>/manifest.json`` (parent model and its
sha256, precision, target, calibration method/samples/source/seed, the parent's
preprocessing) and, for INT8, ``<out>/calibration_ranges.json`` keyed by the FP32
model's sha256 so the same INT8 model can be rebuilt later without the data.

Everything is built in a temporary directory and renamed into place at the end: a
failed calibration never leaves a half-written variant that a later stage could trust.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.markup import escape

from resdeploy.artifacts import (
    MANIFEST_NAME,
    Lineage,
    Manifest,
    atomic_dir,
    check_external_data,
    check_writable_dir,
    int8_variant_parts,
    load_onnx,
    package_versions,
)
from resdeploy.console import Reporter
from resdeploy.errors import ResdeployError
from resdeploy.onnx_io import as_input_dtype, read_graph_input, static_sample_shape
from resdeploy.precision.budget import Budget
from resdeploy.precision.isa import CPU_PROFILES, host_warning, isa_record
from resdeploy.precision.quickcheck import check_warning
from resdeploy.precision.ranges import METHODS, RANGES_NAME, CalibrationRanges
from resdeploy.preprocess import PreprocessFlags, PreprocessSpec
from resdeploy.resolve import Artifact, preprocess_from, resolve_artifact

if TYPE_CHECKING:
    from resdeploy.data import Dataset

PRECISIONS = ("fp16", "int8")
QUANTIZE_RESULT_SCHEMA = "resdeploy.quantize/1"
_VERSIONS = ("onnx", "onnxruntime", "onnxconverter-common", "numpy", "torch")
_CHECK_SAMPLES = 16  # samples in the quick FP32-vs-variant check recorded in the manifest


@dataclass
class QuantizeConfig(PreprocessFlags):
    """How to make a precision variant. Defaults: INT8 for ONNX Runtime on x86, the target's measured estimator,
    cross-layer equalization and bias correction, 128 samples."""

    precision: str = "int8"  # fp16 | int8
    target: str = "cpu"  # int8 only: cpu (ONNX Runtime x86) | trt (TensorRT Q/DQ placement)
    calib_data: str | None = None  # image folder, .npy/.npz, or "synthetic"
    calib_samples: int = 128
    seed: int = 0
    method: str | None = None  # avgminmax | minmax | entropy | percentile; None: int8.DEFAULT_METHOD[target]
    percentile: float = 99.999
    exclude: list[str] = field(default_factory=list)  # node names or globs kept in higher precision
    ranges: str | None = None  # reuse saved calibration ranges instead of calibrating
    fp16_io: bool = False  # FP16 graph inputs/outputs (default keeps them FP32)
    activation_type: str | None = None  # int8: uint8 | int8; default per target (measured)
    per_channel: bool = True
    # int8: cross-layer equalization of Conv -> Relu -> Conv pairs before calibrating (equalize.py) and
    # empirical bias correction after placing Q/DQ (bias_correction.py); on by default, measured in docs/precision.md.
    equalize: bool = True
    bias_correction: bool = True
    # int8 --target cpu: which CPUs the graph must be exact on (precision/isa.py). "portable":
    # 7-bit weights, exact on every x86 and ARM64 CPU; "vnni": full 8-bit weights, for VNNI/AMX/ARM64 only.
    cpu: str = "portable"
    reduce_range: bool = False  # kept for old scripts: 7-bit weights, which --cpu portable already uses
    output: str | None = None  # output directory; default: sibling of the FP32 artifact dir
    force: bool = False
    # Preprocessing for a bare ONNX file with no manifest (ignored when a manifest exists): the
    # PreprocessFlags fields; size and layout default to what the graph fixes (resdeploy/onnx_io.py).
    calib_batch_size: int = 8
    budget: Budget | None = None  # int8: gates on held-out data met by keeping layers in FP32 (budget.py)

    def variant_name(self) -> str:
        """The default output folder's name (``int8-cpu``, ``int8-cpu-vnni``): one per kind of graph."""
        if self.precision == "fp16":
            return "fp16"
        return "-".join(["int8", *int8_variant_parts(self.target, self.cpu, self.activation_type)])

    def check(self) -> None:
        if self.precision not in PRECISIONS:
            raise ResdeployError(f"unknown precision '{self.precision}'; choose from: {', '.join(PRECISIONS)}")
        if self.target not in ("cpu", "trt"):
            raise ResdeployError(f"unknown target '{self.target}'; choose from: cpu, trt")
        if self.method is not None and self.method not in METHODS:
            raise ResdeployError(f"unknown calibration method '{self.method}'; choose from: {', '.join(METHODS)}")
        if not 0.0 < self.percentile <= 100.0:
            raise ResdeployError(f"--percentile must be in (0, 100], got {self.percentile}")
        if self.calib_samples <= 0:
            raise ResdeployError(f"--calib-samples must be positive, got {self.calib_samples}")
        if self.calib_batch_size <= 0:
            raise ResdeployError(f"the calibration batch size must be positive, got {self.calib_batch_size}")
        if self.activation_type is not None:
            if self.precision != "int8":
                raise ResdeployError("--activations applies to --precision int8 only")
            if self.activation_type not in ("uint8", "int8"):
                raise ResdeployError(f"--activations takes uint8 or int8, got '{self.activation_type}'")
            if self.target == "trt" and self.activation_type != "int8":
                raise ResdeployError("TensorRT takes signed INT8 activations only; drop --activations or use int8")
        if self.precision != "int8" and not (self.equalize and self.bias_correction):
            raise ResdeployError("--no-equalize and --no-bias-correction apply to --precision int8 only")
        if self.cpu not in CPU_PROFILES:
            raise ResdeployError(f"unknown --cpu '{self.cpu}'; choose from: {', '.join(CPU_PROFILES)}")
        if self.cpu != "portable" and (self.precision != "int8" or self.target != "cpu"):
            raise ResdeployError("--cpu applies to --precision int8 --target cpu only")
        if self.reduce_range and self.cpu == "vnni":
            raise ResdeployError("--reduce-range (7-bit weights) contradicts --cpu vnni (full 8-bit weights); "
                                 "drop one of them")
        if self.reduce_range:
            if self.precision != "int8":
                raise ResdeployError("--reduce-range applies to --precision int8 only")
            if self.target == "trt":
                raise ResdeployError("--reduce-range (7-bit weights) is for x86 CPUs without VNNI; "
                                     "TensorRT takes full INT8 weights: drop it or use --target cpu")
        if self.precision == "int8":
            if self.fp16_io:
                raise ResdeployError("--fp16-io applies to --precision fp16 only")
            if self.calib_data and self.ranges:
                raise ResdeployError("pass either --calib-data (calibrate now) or --ranges (reuse saved ranges), not both")
            if not self.calib_data and not self.ranges:
                raise ResdeployError("INT8 needs calibration data: pass --calib-data SRC (an image folder, .npy/.npz "
                                     "or 'synthetic'), or --ranges FILE saved by an earlier run",
                                     hint="a small licence-clean sample set ships in calibration/sample")
        elif self.ranges:
            raise ResdeployError("--ranges applies to --precision int8 only")
        if self.budget is not None:
            if self.precision != "int8":
                raise ResdeployError("an accuracy budget (--val-data with --max-top1-drop, ...) applies to "
                                     "--precision int8 only")
            self.budget.check()


@dataclass
class QuantizeResult:
    """Where the variant went and what its manifest says."""

    model_path: Path
    manifest: dict[str, Any]
    ranges_path: Path | None
    output_dir: Path
    parent_path: Path

    def to_dict(self) -> dict[str, Any]:
        return {"schema": QUANTIZE_RESULT_SCHEMA, "model_path": str(self.model_path), "output_dir": str(self.output_dir),
                "ranges_path": str(self.ranges_path) if self.ranges_path else None,
                "parent_path": str(self.parent_path), "manifest": self.manifest}


@dataclass
class SourceModel:
    """The FP32 ONNX model a variant is made from, with what its manifest says (if any)."""

    path: Path
    manifest: dict[str, Any] | None
    sha256: str
    preprocess: PreprocessSpec
    artifact_dir: Path | None  # the directory holding its manifest, when there is one


# ------------------------------------------------------------------------------------------
def _check_onnx(path: Path) -> Any:
    """Kept for callers of earlier releases: ``artifacts.load_onnx``."""
    return load_onnx(path)


def resolve_source(model: str | os.PathLike[str], cfg: QuantizeConfig, reporter: Reporter) -> SourceModel:
    """An FP32 ONNX file or artifact dir as it is; a zoo model name is exported first."""
    art = resolve_artifact(model)
    if art.kind == "zoo":
        art = resolve_artifact(_export_zoo_model(art.ref, cfg, reporter))
    if art.kind != "onnx":
        raise ResdeployError(f"{art.path} is not an ONNX model; make variants from the FP32 export")
    return _source_of(art, cfg, reporter)


def _source_of(art: Artifact, cfg: QuantizeConfig, reporter: Reporter) -> SourceModel:
    assert art.path is not None
    p = art.path
    check_external_data(p, load_onnx(p))
    kind = art.precision
    if kind != "fp32":
        raise ResdeployError(f"{p} is already an {kind} model; make variants from the FP32 export")
    manifest = art.manifest.to_dict() if art.manifest else None
    if manifest and str(manifest.get("precision", "fp32")).lower() not in ("fp32", "float32"):
        raise ResdeployError(f"{p} is a {manifest.get('precision')} variant; make variants from the FP32 export")
    if manifest and manifest.get("preprocess_in_graph"):  # its preprocessing must stay FP32 and uncalibrated
        raise ResdeployError(f"{p} has its preprocessing in the graph",
                             hint="quantize the variant it was made from, then `resdeploy package VARIANT "
                                  "--preprocess-in-graph`")
    # FP16 conversion reads no images: without calibration data it needs no preprocessing.
    recorded = bool(manifest and isinstance(manifest.get("preprocess"), dict))
    spec = preprocess_from(manifest, **cfg.preprocess_flags(), what=str(p), reporter=reporter,
                           graph=None if recorded else art.input(), model_path=p,
                           required=cfg.precision == "int8" or bool(cfg.calib_data))
    art_dir = p.parent if manifest is not None else None
    sha = art.sha256
    assert sha is not None
    return SourceModel(p, manifest, sha, spec, art_dir)


def _export_zoo_model(name: str, cfg: QuantizeConfig, reporter: Reporter) -> Path:
    from resdeploy.models.zoo import check_model_name

    check_model_name(name)  # one-line error for a typo, before anything is written
    from resdeploy.exporter import default_output_dir, export

    # the directory export and build use for this name (artifacts/<slug>/fp32), not a second guess at it
    fp32_dir = Path(cfg.output).parent / "fp32" if cfg.output else default_output_dir(name)
    if (fp32_dir / "model.onnx").exists() and (fp32_dir / MANIFEST_NAME).exists():
        reporter.info(f"using the existing FP32 export in {escape(str(fp32_dir))}")
        return fp32_dir / "model.onnx"
    with reporter.step(f"exporting {name} to {fp32_dir}"):
        result = export(name, output_dir=fp32_dir)
    return Path(result.model_path)


def default_output(src: SourceModel, cfg: QuantizeConfig) -> Path:
    """Sibling of the FP32 artifact dir (artifacts/x/fp32 -> artifacts/x/int8-cpu); else beside the file."""
    if cfg.output:
        return Path(cfg.output)
    if src.artifact_dir is not None:
        return src.artifact_dir.parent / cfg.variant_name()
    return src.path.parent / f"{src.path.stem}-{cfg.variant_name()}"


# ------------------------------------------------------------------------------------------
def quantize(source: str | os.PathLike[str], config: QuantizeConfig | None = None, *,
             reporter: Reporter | None = None, **kwargs: Any) -> QuantizeResult:
    """Make an FP16 or INT8 (Q/DQ) variant of an FP32 ONNX model (or of a zoo model, exported first).

    Settings come as ``config`` or, as in earlier releases, as ``QuantizeConfig`` fields by keyword.
    """
    model = source
    cfg = config or QuantizeConfig(**kwargs)
    if config is not None and kwargs:
        raise TypeError("pass either config= or keyword settings, not both")
    cfg.check()
    rep = reporter or Reporter(quiet=True)
    src = resolve_source(model, cfg, rep)
    out = default_output(src, cfg)
    if out.resolve() == src.path.parent.resolve():
        raise ResdeployError(f"the output directory {out} is the FP32 model's own directory; choose another")
    if out.exists() and not cfg.force:
        raise ResdeployError(f"{out} already exists; pass --force to overwrite it")
    # The rest of the user's input, before seconds of graph work: a typo must fail at once.
    check_writable_dir(out.parent)
    listed: Dataset | None = None  # the calibration folder, listed once (ImageNet's train set: ~30 s a listing)
    if cfg.calib_data:
        from resdeploy.data import check_source, open_data

        if check_source(cfg.calib_data).is_dir():
            # Lists the files only: an empty folder, or images for a 1-channel model, fail before the graph work.
            listed = open_data(cfg.calib_data, src.preprocess, samples=cfg.calib_samples, seed=cfg.seed,
                               reporter=rep, tensor_shape=_input_shape(src))
    saved: CalibrationRanges | None = None
    if cfg.precision == "int8" and cfg.ranges:
        saved = CalibrationRanges.load(cfg.ranges)
        saved.check_model(src.sha256, cfg.ranges)

    with tempfile.TemporaryDirectory(prefix="resdeploy-quantize-") as tmp_name:
        tmp = Path(tmp_name)
        work_model = tmp / "model.onnx"
        check_inputs: np.ndarray | None = None
        ranges: CalibrationRanges | None = None
        info: dict[str, Any]
        if cfg.precision == "fp16":
            info, check_inputs = _make_fp16(src, cfg, work_model, rep, listed)
        else:
            info, ranges, check_inputs = _make_int8(src, cfg, tmp, work_model, rep, saved, listed)
            if cfg.budget is not None:
                from resdeploy.precision.budget import apply_budget

                info["accuracy_budget"] = apply_budget(cfg.budget, src=src, calib_data=cfg.calib_data, seed=cfg.seed,
                                                       work_dir=tmp, int8_path=work_model, info=info, reporter=rep)
        check = _self_check(src.path, work_model, src, check_inputs, cfg.seed, rep)
        _warn_on_check(check, info, rep, cfg)

        with atomic_dir(out, force=cfg.force) as staging:
            shutil.copyfile(work_model, staging / "model.onnx")
            ranges_path = None
            if ranges is not None:
                ranges.save(staging / RANGES_NAME, force=True)  # inside this run's staging dir
                ranges_path = out / RANGES_NAME
            typed = _manifest(src, cfg, out, staging / "model.onnx", info, check, ranges)
            typed.write(staging)
    rep.info(f"[green]✓[/] wrote {escape(str(out / 'model.onnx'))}")
    result = QuantizeResult(out / "model.onnx", typed.to_dict(), ranges_path, out, src.path)
    budget = info.get("accuracy_budget")
    if budget and not budget["met"]:
        from resdeploy.errors import GateFailure

        drop = budget["top1_drop_points"]  # None on unlabelled data: the agreement/cosine gates measured it
        failure = GateFailure(f"accuracy budget not met after {budget['full_validations']} validations; wrote the "
                              f"closest variant ({len(budget['kept_fp32'])} layer group(s) in FP32"
                              f"{'' if drop is None else f', top-1 drop {drop} points'}) to {out}",
                              hint="raise --max-trials or the budget")
        failure.result = result  # type: ignore[attr-defined]
        raise failure
    return result


def _make_fp16(src: SourceModel, cfg: QuantizeConfig, dst: Path, rep: Reporter,
               listed: Dataset | None = None) -> tuple[dict[str, Any], np.ndarray | None]:
    from resdeploy.precision.fp16 import convert_fp16, fp16_node_share
    from resdeploy.precision.int8 import match_nodes

    excluded = match_nodes(src.path, cfg.exclude) if cfg.exclude else []
    with rep.step("converting to FP16"):
        converted = convert_fp16(src.path, dst, fp16_io=cfg.fp16_io, exclude_nodes=excluded)
    info = {"io": "fp16" if cfg.fp16_io else "fp32", "excluded": excluded,
            "fp16_node_share": round(fp16_node_share(converted), 4)}
    inputs = None
    if cfg.calib_data:  # optional: real samples make the recorded check meaningful
        inputs = _load_samples(src, cfg, min(cfg.calib_samples, _CHECK_SAMPLES), rep, listed)
    return info, inputs


def _load_samples(src: SourceModel, cfg: QuantizeConfig, count: int, rep: Reporter,
                  listed: Dataset | None = None) -> np.ndarray:
    """``count`` seeded samples of --calib-data; ``listed``: the same source opened for ``cfg.calib_samples``."""
    from resdeploy.data import open_data

    assert cfg.calib_data is not None
    if listed is not None and count == cfg.calib_samples:
        ds = listed
    else:  # the listing's warnings (empty classes, unsupported files) were said when it was listed
        ds = open_data(cfg.calib_data, src.preprocess, samples=count, seed=cfg.seed,
                       reporter=rep if listed is None else Reporter(quiet=True), tensor_shape=_input_shape(src))
    inputs, _ = ds.load(rep, description="calibration data")
    inputs = as_input_dtype(inputs, read_graph_input(src.path))  # uint8 pixels for a graph that normalises them
    # synthetic:N asks for N samples itself (and already warns that noise makes poor ranges).
    if len(inputs) < count and ds.kind != "synthetic":
        rep.warn(f"only {len(inputs)} usable calibration samples in {cfg.calib_data} "
                 f"(asked for {count}); ranges from few samples are unreliable")
    return inputs


def _input_shape(src: SourceModel) -> tuple[int, ...]:
    """Per-sample input shape: the graph input's where static (1 or 4 channels too), else from the spec.

    Whether the data can fill it is the data's question (``data.open_data``: images become
    3-channel RGB, arrays must have this shape).
    """
    from resdeploy.preprocess import input_shape

    return static_sample_shape(src.path) or input_shape(src.preprocess)


def _make_int8(src: SourceModel, cfg: QuantizeConfig, tmp: Path, dst: Path, rep: Reporter,
               saved: CalibrationRanges | None = None, listed: Dataset | None = None,
               ) -> tuple[dict[str, Any], CalibrationRanges, np.ndarray | None]:
    from resdeploy.precision import int8

    pre = tmp / "preprocessed.onnx"
    with rep.step("pre-processing the FP32 graph (shape inference, fusions)"):
        int8.pre_process(src.path, pre)
    equalized: dict[str, Any] = {"applied": False}
    if cfg.equalize:  # before calibrating: ranges, Q/DQ and the budget's FP32 reference all see these weights
        from resdeploy.precision.equalize import equalize_file

        with rep.step("equalizing Conv -> Relu -> Conv weight ranges"):
            equalized = equalize_file(pre, pre).to_dict()
    # Checked before calibrating: a typo should not cost a calibration run first.
    excluded = int8.match_nodes(pre, cfg.exclude) if cfg.exclude else []
    inputs: np.ndarray | None = None
    if cfg.ranges:
        if saved is None:
            saved = CalibrationRanges.load(cfg.ranges)
            saved.check_model(src.sha256, cfg.ranges)
        ranges = saved
        if ranges.equalized != cfg.equalize:
            raise ResdeployError(f"the ranges in {cfg.ranges} were computed {'with' if ranges.equalized else 'without'} "
                                 "cross-layer equalization, this run is "
                                 f"{'with' if cfg.equalize else 'without'} it",
                                 hint="drop --no-equalize" if ranges.equalized else "add --no-equalize")
        rep.info(escape(f"using saved ranges from {cfg.ranges} ({ranges.method}, {ranges.samples} samples of "
                        f"{ranges.source})"))
    else:
        inputs = _load_samples(src, cfg, cfg.calib_samples, rep, listed)
        _, fixed_batch = int8.model_input(pre)
        if fixed_batch and len(inputs) % fixed_batch and len(inputs) >= fixed_batch:
            keep = len(inputs) // fixed_batch * fixed_batch  # what calibration can feed; recorded honestly
            rep.warn(f"the model takes batches of {fixed_batch}: calibrating on {keep} of {len(inputs)} samples")
            inputs = inputs[:keep]
        method = cfg.method or int8.DEFAULT_METHOD[cfg.target]
        values = int8.calibrate(pre, inputs, method=method, percentile=cfg.percentile,
                                batch_size=cfg.calib_batch_size, reporter=rep)
        ranges = CalibrationRanges(model_sha256=src.sha256, method=method, samples=int(inputs.shape[0]),
                                   source=str(cfg.calib_data), seed=cfg.seed,
                                   percentile=cfg.percentile if method == "percentile" else None,
                                   ranges=values, equalized=cfg.equalize)
    act = cfg.activation_type or int8.DEFAULT_ACTIVATION[cfg.target]
    seven_bit = cfg.target == "cpu" and (cfg.cpu == "portable" or cfg.reduce_range)
    with rep.step(f"placing Q/DQ nodes (target {cfg.target}, {act} activations)"):
        model = int8.quantize_qdq(pre, dst, ranges, target=cfg.target, activation_type=act,
                                  per_channel=cfg.per_channel, exclude_nodes=excluded, reduce_range=seven_bit)
    corrected: dict[str, Any] = {"applied": False}
    if cfg.bias_correction:
        import onnx

        from resdeploy.precision.bias_correction import apply_corrections, correct_biases

        key = (f"{cfg.target}:{act}:{'w7' if seven_bit else 'w8'}:{'per-channel' if cfg.per_channel else 'per-tensor'}"
               f":exclude={','.join(sorted(excluded))}")
        if inputs is not None:
            with rep.step("correcting biases against FP32"):
                res = correct_biases(model, onnx.load(os.fspath(pre)), inputs, batch_size=cfg.calib_batch_size,
                                     reporter=rep)
            corrected = res.to_dict()
            ranges.bias_corrections = {key: res.corrections}
            onnx.save(model, os.fspath(dst))
        elif key in ranges.bias_corrections:
            saved_bc = ranges.bias_corrections[key]
            corrected = {"applied": True, "layers": apply_corrections(model, saved_bc), "from_saved_ranges": True}
            onnx.save(model, os.fspath(dst))
        else:
            corrected["reason"] = "the saved ranges hold no bias corrections for this Q/DQ form"
            rep.warn("bias correction needs calibration images, and the saved ranges hold none for this target and "
                     "settings: biases left uncorrected (recalibrate with --calib-data to correct them)")
    info = {
        "format": "QDQ",
        "activations": f"{act} {'symmetric' if act == 'int8' else 'asymmetric'} per-tensor",
        "weights": f"int8{' (7-bit range [-64, 64])' if seven_bit else ''} symmetric "
                   f"{'per-channel' if cfg.per_channel else 'per-tensor'}",
        "reduce_range": seven_bit,
        **(isa_record(model, cfg.cpu if not seven_bit else "portable") if cfg.target == "cpu" else {}),
        "excluded": excluded,
        "equalization": equalized,
        "bias_correction": corrected,
        "quantized_ops": int8.quantized_ops(model),
        "residual_adds": {"count": len(adds := int8.add_input_quantization(model)),
                          "both_inputs_quantized": sum(all(q) for _, q in adds)},
    }
    if inputs is not None and len(inputs) > _CHECK_SAMPLES:
        inputs = inputs[:_CHECK_SAMPLES]
    return info, ranges, inputs


def _warn_on_check(check: dict[str, Any], info: dict[str, Any], rep: Reporter, cfg: QuantizeConfig) -> None:
    """Warn on a poor quick check, and when it ran on a CPU the variant was not made for.

    A ``--target trt`` graph's check runs in ONNX Runtime too: on an AVX2-only CPU its poor
    agreement is the CPU's int16 saturation, which --method or --exclude cannot fix.
    """
    host = (host_warning({"precision": "int8", "target": cfg.target, "quantization": info})
            if cfg.precision == "int8" else None)
    warning = check_warning(check, host)
    if warning:
        rep.warn(warning)
    elif host:
        rep.warn(host)


def _self_check(fp32: Path, variant: Path, src: SourceModel, inputs: np.ndarray | None, seed: int,
                rep: Reporter) -> dict[str, Any]:
    """Run FP32 and the variant on a few samples under ONNX Runtime: it loads, it runs, how close it is.

    Not an accuracy gate (that is ``resdeploy validate`` on held-out data); it catches a
    variant that does not run on the CPU provider before anyone relies on it.
    """
    from resdeploy.compare import compare_runners
    from resdeploy.runners import RunnerConfig

    source = "calibration data"
    if inputs is None or len(inputs) == 0:
        inputs = np.random.default_rng(seed).standard_normal((4, *_input_shape(src))).astype(np.float32)
        source = "synthetic"
    batches = [inputs[i:i + 8] for i in range(0, len(inputs), 8)]
    def unrunnable(exc: ResdeployError) -> ResdeployError:
        # The message would name a temporary file that is gone by the time it is read.
        reason = exc.message.replace(str(variant), "the graph")
        return ResdeployError(f"the new variant does not run in ONNX Runtime, so nothing was written: {reason}",
                              hint="try another --opset for the FP32 export, or --exclude the node named in the message")

    with rep.step(f"checking the variant against FP32 on {len(inputs)} {source} samples"):
        run = compare_runners(RunnerConfig(engine="ort", model=str(fp32)),
                              RunnerConfig(engine="ort", model=str(variant)), batches, candidate_error=unrunnable)
    m = run.metrics()
    return {"samples": m.samples, "data": source, "top1_agreement": m.top1_agreement,
            "cosine_min": m.cosine_min, "max_abs_error": m.max_abs_error}


def _manifest(src: SourceModel, cfg: QuantizeConfig, out: Path, model_file: Path, info: dict[str, Any],
              check: dict[str, Any], ranges: CalibrationRanges | None) -> Manifest:
    """The variant's manifest: its own file and graph, measured; the FP32 parent by lineage only.

    The model spec, preprocessing and class names are carried over (they describe the
    model and its inputs, which the variant shares); nothing that describes a file is.
    """
    parent = src.manifest or {}
    calibration = None
    if ranges is not None:
        calibration = {"method": ranges.method, "percentile": ranges.percentile, "samples": ranges.samples,
                       "source": ranges.source, "seed": ranges.seed, "ranges_file": RANGES_NAME,
                       "reused_ranges": bool(cfg.ranges),
                       "method_chosen": "by name" if cfg.method or cfg.ranges else f"default for --target {cfg.target}"}
    manifest = Manifest.for_file(
        model_file, stage="quantize", precision=cfg.precision,
        model=parent.get("model") if isinstance(parent.get("model"), dict) else None,
        preprocess=src.preprocess.to_dict(),
        classes=[str(c) for c in parent["classes"]] if isinstance(parent.get("classes"), list) else None,
        parent=Lineage.of(src.path, out, sha256=src.sha256, precision="fp32", stage=parent.get("stage")),
    )
    manifest.settings = {"precision": cfg.precision, "target": cfg.target if cfg.precision == "int8" else None,
                         "method": (ranges.method if ranges is not None else cfg.method) if cfg.precision == "int8" else None, "exclude": list(cfg.exclude),
                         "fp16_io": cfg.fp16_io, "per_channel": cfg.per_channel, "reduce_range": cfg.reduce_range,
                         "cpu": cfg.cpu if cfg.precision == "int8" and cfg.target == "cpu" else None,
                         "activation_type": cfg.activation_type, "seed": cfg.seed,
                         "equalize": cfg.equalize if cfg.precision == "int8" else None,
                         "bias_correction": cfg.bias_correction if cfg.precision == "int8" else None}
    manifest.sections = {
        "target": cfg.target if cfg.precision == "int8" else None,
        "calibration": calibration,
        "quantization": info,
        "check": check,
        "versions": package_versions(_VERSIONS),
    }
    return manifest


def parent_model_path(candidate: str | os.PathLike[str], manifest: dict[str, Any]) -> Path | None:
    """The FP32 model a variant was made from, resolved relative to the variant's directory."""
    parent = manifest.get("parent")
    if not isinstance(parent, dict):
        return None
    base = Path(candidate)
    return Lineage.from_dict(parent).resolve(base if base.is_dir() else base.parent)


__all__ = ["PRECISIONS", "Budget", "QuantizeConfig", "QuantizeResult", "parent_model_path", "preprocess_from", "quantize"]
