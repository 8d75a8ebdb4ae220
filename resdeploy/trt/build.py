"""ONNX -> TensorRT plan: the precision variant, a strongly typed network, profiles, caches.

Precision lives in the ONNX graph (an FP16 graph, or an INT8 Q/DQ graph made by the
quantize stage), and the network is created strongly typed, so TensorRT keeps the
graph's types. No FP16/INT8 builder flags are ever set: TensorRT 11 removed them and
the implicit calibrators, and on 10.x they would let TensorRT pick precisions the
accuracy check never saw. The same code therefore builds on TensorRT 10.x and 11.x;
features that differ are probed with ``getattr``, Polygraphy-style.

Builds are slow (minutes for a ResNet-50 at optimization level 3), so two caches:
plans are kept under ``<cache>/engines/<key>.engine`` with the key of
:func:`resdeploy.trt.compat.cache_key`, and TensorRT's timing cache (per GPU and
TensorRT version) is read before and written after every build.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from resdeploy import artifacts
from resdeploy.artifacts import (
    EngineRecord,
    FileRecord,
    Lineage,
    Manifest,
    load_engine_manifest,
    manifest_path_for,
)
from resdeploy.console import QUIET, Reporter
from resdeploy.errors import ResdeployError
from resdeploy.trt import loader
from resdeploy.trt.compat import BatchProfile, BuildOptions, batch_profile, cache_key, is_engine_file

if TYPE_CHECKING:
    import tensorrt as trt

PRECISIONS = ("fp32", "fp16", "int8")
DEFAULT_PROFILE = BatchProfile(1, 8, 32)

# TensorRT DataType member name -> numpy dtype name.
_TRT_DTYPES = {
    "FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "UINT8": "uint8",
    "INT32": "int32", "INT64": "int64", "BOOL": "bool", "FP8": "float8",
}


@dataclass
class BuildConfig:
    """How to build. Flags of ``resdeploy build`` map one to one onto these fields."""

    precision: str | None = "fp32"  # fp32 | fp16 | int8 (None: the graph's own); made in the graph, never a builder flag
    calib_data: str | None = None  # INT8 only: images / .npy / .npz for the quantize stage's calibration
    batch: BatchProfile | None = None  # None: 1:8:32, or the ONNX's fixed batch
    workspace_mib: int | None = None  # builder memory-pool (workspace) limit; None: TensorRT's default
    opt_level: int = 3  # builder optimization level 0..5 (TensorRT's default is 3)
    hardware_compat: str = "none"  # none | ampere_plus | same_cc
    version_compatible: bool = False  # plan runs on later TensorRT of the same major version
    exclude_lean_runtime: bool = False  # with version_compatible: leave the lean runtime out of the plan
    timing_cache: str | None = None  # file; None: one per GPU and TensorRT version under the cache dir
    output: str | None = None  # engine file; None: <dir of the compiled ONNX>/<stem>.<precision>.engine
    cache_dir: str | None = None  # None: RESDEPLOY_CACHE_DIR or ~/.cache/resdeploy
    use_cache: bool = True  # reuse a cached plan when nothing it depends on changed
    cache_only: bool = False  # runners: keep the engine in the cache only, write nothing beside the ONNX
    force: bool = False  # overwrite an existing output that does not match
    device: str = "cuda"
    verbose: int = 0  # TensorRT log level: 0 warnings, 1 info, 2+ verbose
    input_size: int | None = None  # when MODEL is a zoo name: the export's input size

    def check(self) -> None:
        """Refuse impossible settings before any work is done."""
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ResdeployError(f"unknown precision '{self.precision}'; choose from: {', '.join(PRECISIONS)}")
        if self.calib_data and self.precision not in (None, "int8"):
            raise ResdeployError("--calib-data only applies to --precision int8")
        self.build_options()
        if self.output and not _is_engine_name(Path(self.output)):
            raise ResdeployError(f"-o {self.output}: name the engine file with .engine or .plan")

    def build_options(self) -> BuildOptions:
        return BuildOptions(
            workspace_mib=self.workspace_mib, opt_level=self.opt_level, hardware_compat=self.hardware_compat,
            version_compatible=self.version_compatible, exclude_lean_runtime=self.exclude_lean_runtime,
        )


BUILD_RESULT_SCHEMA = "resdeploy.build/1"


@dataclass
class BuildResult:
    """The engine file, its manifest (``<engine>.json``), and whether it came from the cache."""

    engine_path: Path
    manifest_path: Path
    manifest: Manifest  # the plan's: file record, lineage to the compiled ONNX, engine record
    onnx_path: Path  # the precision variant that was compiled
    cached: bool
    cache_path: Path | None = None

    @property
    def engine(self) -> EngineRecord:
        return self.manifest.require_engine(str(self.manifest_path))

    def to_dict(self) -> dict[str, Any]:
        return {"schema": BUILD_RESULT_SCHEMA, **self.summary()}

    def summary(self) -> dict[str, Any]:
        e = self.engine
        return {
            "engine": str(self.engine_path), "metadata": str(self.manifest_path), "onnx": str(self.onnx_path),
            "precision": self.manifest.precision, "profile": str(batch_profile(e)), "tensorrt": e.tensorrt_version,
            "gpu": f"{e.gpu_name} (sm {e.compute_capability})", "cached": self.cached,
            "build_seconds": e.build_seconds, "options": e.options,
        }


@dataclass(frozen=True)
class OnnxIO:
    """The one input and one output of a ResNet graph, as the ONNX file declares them."""

    input_name: str
    input_shape: tuple[int | str, ...]
    input_dtype: str
    output_name: str
    precision: str  # what the graph itself is: fp32, fp16 or int8 (Q/DQ)

    @property
    def static_batch(self) -> int | None:
        first = self.input_shape[0] if self.input_shape else None
        return first if isinstance(first, int) and first > 0 else None


# --- the public function -------------------------------------------------------------------------

def build(
    source: str | os.PathLike[str], config: BuildConfig | None = None, *, reporter: Reporter | None = None
) -> BuildResult:
    """Compile ``model`` (ONNX file, artifact dir or zoo name) into a TensorRT engine.

    Reuses a cached plan when the ONNX, precision, profile, GPU, TensorRT version and
    build options are unchanged; writes the engine, then its manifest ``<engine>.json``
    (file record measured from the plan, lineage to the compiled ONNX, engine record).
    """
    model = source
    config = config or BuildConfig()
    reporter = reporter or QUIET
    config.check()
    options = config.build_options()
    if is_engine_file(model):
        raise ResdeployError(f"{model} is already an engine; pass the ONNX (or artifact directory) to build from")
    # The user's input first, the machine second: a typo in a path or a name must not hide behind
    # "install TensorRT". Only cheap checks here: nothing is exported or written yet.
    is_path = artifacts.is_model_path(model)
    if is_path:
        source_onnx = _source_onnx(model, config, reporter)  # an existing ONNX or artifact dir: no export
        read_onnx_io(source_onnx)  # a readable graph with one input
    else:
        from resdeploy.exporter import ExportConfig
        from resdeploy.models.zoo import check_model_name

        check_model_name(str(model))
        ExportConfig(input_size=config.input_size).check()
    loader.cuda_index(config.device)
    if config.output:
        artifacts.check_writable_dir(Path(config.output).resolve().parent)
    # Then TensorRT, before any export or calibration, so that a machine without it fails in a second.
    trt_module = loader.require_tensorrt()
    trt_version = str(getattr(trt_module, "__version__", "0"))
    gpu = loader.gpu_info(config.device)

    if not is_path:
        source_onnx = _source_onnx(model, config, reporter)
    if config.precision is None:
        config = dataclasses.replace(config, precision=read_onnx_io(source_onnx).precision)
    precision = str(config.precision)
    onnx_path = _precision_variant(source_onnx, precision, config, reporter)
    io = read_onnx_io(onnx_path)
    profile = _resolve_profile(io, config.batch)
    onnx_sha = artifacts.sha256_file(onnx_path)
    key = cache_key(onnx_sha256=onnx_sha, precision=precision, profile=profile, gpu=gpu,
                    tensorrt_version=trt_version, options=options)

    root = Path(config.cache_dir).expanduser() if config.cache_dir else loader.cache_dir()
    cached_engine = root / "engines" / f"{key}.engine"
    if config.cache_only:
        output = cached_engine
    else:
        output = Path(config.output) if config.output else _default_output(onnx_path, precision)
    existing_key = _existing_key(output)
    if output.exists() and existing_key != key and not config.force:
        raise ResdeployError(f"{output} already exists and was built from other inputs; pass --force to overwrite it")
    # The plan is committed exclusively (artifacts.commit_file) unless --force, the cache's own entry, or
    # the same build already there: a plan that appears at -o while this one builds is not replaced.
    replace = config.force or config.cache_only or existing_key == key

    if config.use_cache and existing_key == key:
        reporter.info(f"[green]✓[/] {escape(str(output))} is up to date (same ONNX, precision, profile, GPU and TensorRT)")
        manifest = load_engine_manifest(output)
        return BuildResult(output, manifest_path_for(output), manifest, onnx_path, cached=True,
                           cache_path=cached_engine)
    if config.use_cache and _valid_cache_entry(cached_engine, key):
        reporter.info(f"[green]✓[/] reusing cached engine {cached_engine.name[:16]}… (unchanged inputs)")
        manifest = _publish(cached_engine.read_bytes(), load_engine_manifest(cached_engine), output, onnx_path,
                            onnx_sha, force=replace)
        return BuildResult(output, manifest_path_for(output), manifest, onnx_path, cached=True,
                           cache_path=cached_engine)

    timing_cache = Path(config.timing_cache) if config.timing_cache else (
        root / "timing" / f"{_slug(trt_version)}-{_slug(gpu.name)}-sm{_slug(gpu.compute_capability)}.cache"
    )
    t0 = time.perf_counter()
    plan = build_plan(onnx_path, io, profile, options, timing_cache=timing_cache, verbose=config.verbose,
                      reporter=reporter)
    seconds = round(time.perf_counter() - t0, 2)
    engine = EngineRecord(
        tensorrt_version=trt_version, gpu_name=gpu.name, compute_capability=gpu.compute_capability,
        profile={"min": profile.min, "opt": profile.opt, "max": profile.max},
        input_name=plan.input_name, input_shape=list(plan.input_chw), input_dtype=plan.input_dtype,
        output_name=plan.output_name, output_dtype=plan.output_dtype, options=dataclasses.asdict(options),
        cache_key=key, build_seconds=seconds, built_at=artifacts.utc_now(),
    )
    # model, preprocessing and classes are shared with the ONNX it was built from (as a variant's are)
    described = _describing_manifest(onnx_path, source_onnx)
    template = Manifest(stage="build", precision=precision, artifact=None, engine=engine,
                        model=described.model if described else None,
                        preprocess=described.preprocess if described else None,
                        classes=described.classes if described else None,
                        settings={"precision": config.precision, "batch": str(config.batch) if config.batch else None,
                                  "device": config.device},
                        sections={"versions": {"resdeploy": _resdeploy_version(), "tensorrt": trt_version}})
    if config.use_cache and output != cached_engine:
        _publish(plan.data, template, cached_engine, onnx_path, onnx_sha, force=True)
    manifest = _publish(plan.data, template, output, onnx_path, onnx_sha, force=replace)
    return BuildResult(output, manifest_path_for(output), manifest, onnx_path, cached=False,
                       cache_path=cached_engine if config.use_cache else None)


# --- the TensorRT part ---------------------------------------------------------------------------

@dataclass
class Plan:
    """A serialized engine and the I/O TensorRT's network ended up with."""

    data: bytes
    input_name: str
    input_chw: tuple[int, ...]
    input_dtype: str
    output_name: str
    output_dtype: str


def network_flags() -> int:
    """``create_network`` flags: strongly typed (10.x); 11.x is always strongly typed."""
    import tensorrt as trt

    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 0 if strongly_typed is None else 1 << int(strongly_typed)


def build_plan(
    onnx_path: Path, io: OnnxIO, profile: BatchProfile, options: BuildOptions, *,
    timing_cache: Path | None, verbose: int = 0, reporter: Reporter = QUIET,
) -> Plan:
    """Parse the ONNX into a strongly typed network and serialize an engine for ``profile``."""
    import tensorrt as trt

    logger = loader.make_logger(verbose, quiet=reporter.quiet)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags())
    parser = trt.OnnxParser(network, logger)
    with reporter.step(f"parse {onnx_path.name} with TensorRT's ONNX parser"):
        # parse_from_file resolves external weight files relative to the model, like ONNX Runtime.
        if not parser.parse_from_file(str(onnx_path)):
            raise ResdeployError(parser_error_message(parser, onnx_path, loader.logged_errors(logger)))
    if network.num_inputs != 1 or network.num_outputs < 1:
        raise ResdeployError(
            f"{onnx_path} has {network.num_inputs} inputs and {network.num_outputs} outputs; "
            "resdeploy builds image classifiers with one input"
        )
    inp, out = network.get_input(0), network.get_output(0)
    shape = loader.dims_tuple(inp.shape)
    chw = shape[1:]
    if len(shape) != 4 or any(d <= 0 for d in chw):
        raise ResdeployError(
            f"input '{inp.name}' of {onnx_path} has shape {list(shape)}; resdeploy needs [batch, C, H, W] with "
            "fixed C, H, W (re-export with a fixed --input-size)"
        )

    config = builder.create_builder_config()
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(
        inp.name, trt.Dims([profile.min, *chw]), trt.Dims([profile.opt, *chw]), trt.Dims([profile.max, *chw])
    )
    config.add_optimization_profile(opt_profile)
    if options.workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    _set_optional(config, "builder_optimization_level", options.opt_level, "builder optimization level")
    if options.hardware_compat != "none":
        level_name = {"ampere_plus": "AMPERE_PLUS", "same_cc": "SAME_COMPUTE_CAPABILITY"}[options.hardware_compat]
        level = getattr(trt.HardwareCompatibilityLevel, level_name, None)
        if level is None:
            raise ResdeployError(f"this TensorRT has no hardware compatibility level {level_name}")
        config.hardware_compatibility_level = level
    if options.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        if options.exclude_lean_runtime:
            config.set_flag(trt.BuilderFlag.EXCLUDE_LEAN_RUNTIME)

    cache = _attach_timing_cache(config, timing_cache, reporter)
    with reporter.step(f"build TensorRT engine, batch {profile} (autotuning; minutes for large models)"):
        serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        errors = loader.logged_errors(logger)
        reason = "; ".join(errors[-3:]) if errors else "no reason logged (run with -vv for TensorRT's log)"
        raise ResdeployError(f"TensorRT could not build an engine from {onnx_path}: {reason}")
    if cache is not None and timing_cache is not None:
        artifacts.commit_file(timing_cache, bytes(cache.serialize()), force=True)  # a cache: the newer one wins
    return Plan(
        data=bytes(serialized), input_name=inp.name, input_chw=chw, input_dtype=dtype_name(inp.dtype),
        output_name=out.name, output_dtype=dtype_name(out.dtype),
    )


def parser_error_message(parser: trt.OnnxParser, onnx_path: Path, logged: list[str] | None = None) -> str:
    """One line naming every node TensorRT's ONNX parser rejected, and why."""
    items: list[str] = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        node, name, op = err.node(), err.node_name(), err.node_operator()
        where = f"node {node}" if node >= 0 else "graph"
        if name:
            where += f" '{name}'"
        if op:
            where += f" ({op})"
        items.append(f"{where}: {err.desc()}")
    if not items:
        items = list(logged or []) or ["no details reported"]
    plural = "s" if len(items) != 1 else ""
    return f"TensorRT's ONNX parser rejected {onnx_path.name} ({len(items)} error{plural}): " + "; ".join(items)


def dtype_name(dtype: trt.DataType) -> str:
    return _TRT_DTYPES.get(dtype.name, dtype.name.lower())


def _set_optional(obj: object, attr: str, value: object, what: str) -> None:
    """Set a builder setting that some TensorRT versions lack, saying so instead of crashing."""
    if not hasattr(obj, attr):
        raise ResdeployError(f"this TensorRT has no {what} setting ({attr})")
    setattr(obj, attr, value)


def _attach_timing_cache(
    config: trt.IBuilderConfig, path: Path | None, reporter: Reporter
) -> trt.ITimingCache | None:
    """Load the timing cache file (or start an empty one) and give it to the builder."""
    if path is None:
        return None
    data = b""
    if path.exists():
        try:
            data = path.read_bytes()
        except OSError as exc:
            reporter.warn(f"cannot read timing cache {path} ({exc}); starting an empty one")
    try:
        cache = config.create_timing_cache(data)
    except Exception as exc:  # a truncated or foreign file: TensorRT raises, we start afresh
        reporter.warn(f"timing cache {path} is not usable ({exc}); starting an empty one")
        cache = config.create_timing_cache(b"")
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        reporter.warn(f"timing cache {path} was made on another GPU or TensorRT; starting an empty one")
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


# --- ONNX side -----------------------------------------------------------------------------------

def read_onnx_io(path: Path) -> OnnxIO:
    """Input/output names, shapes and the graph's own precision (``artifacts.GraphSummary``), without weights."""
    try:
        graph = artifacts.GraphSummary.measure(path)
    except ResdeployError as exc:
        raise ResdeployError(f"cannot read {path} as ONNX: {exc.message}") from None
    if len(graph.inputs) != 1 or not graph.outputs:
        raise ResdeployError(f"{path} has {len(graph.inputs)} inputs; resdeploy builds image classifiers with one input")
    inp = graph.inputs[0]
    shape: tuple[int | str, ...] = tuple(d if isinstance(d, str) else (int(d) if d else "?") for d in inp.shape)
    dtype = inp.dtype if inp.dtype != "unknown" else "float32"
    return OnnxIO(inp.name, shape, dtype, graph.outputs[0].name, graph.precision)


def _source_onnx(model: str | os.PathLike[str], config: BuildConfig, reporter: Reporter) -> Path:
    """The ONNX to start from: a file, an artifact directory, or a zoo name (exported as export does)."""
    from resdeploy.resolve import resolve_artifact

    art = resolve_artifact(model)
    if art.kind != "zoo":
        assert art.path is not None
        return art.path
    from resdeploy.exporter import ExportConfig, default_output_dir, export

    target = default_output_dir(str(model))  # artifacts/<model>/fp32, where the other stages look too
    if (target / "model.onnx").exists() and (target / artifacts.MANIFEST_NAME).exists():
        reporter.info(f"using the existing FP32 export in {escape(str(target))}")
        return target / "model.onnx"
    export_config = ExportConfig(input_size=config.input_size) if config.input_size else ExportConfig()
    with reporter.step(f"export {model} to {target}"):
        result = export(str(model), export_config, output_dir=target, reporter=reporter)
    return Path(result.model_path)


def engine_config(config: Any, reporter: Reporter | None = None) -> Any:
    """A ``RunnerConfig`` for the TensorRT runner whose model is an engine plan.

    Given an engine it is returned as it is; given an ONNX (or artifact dir, or zoo name) the
    plan is built into the cache (``cache_only``) with the profile MIN=1, OPT=MAX=the runner's
    batch, or ``options["profile"]``, and reused while its inputs are unchanged.
    """
    if is_engine_file(config.model):
        return config
    opts = dict(config.options)
    batch = int(config.batch_size or 1)
    profile = BatchProfile.parse(str(opts["profile"])) if opts.get("profile") else BatchProfile(1, batch, batch)
    build_config = BuildConfig(
        precision=config.precision, calib_data=opts.get("calib_data"), batch=profile,
        workspace_mib=opts.get("workspace_mib"), opt_level=int(opts.get("opt_level", 3)),
        device=config.device, verbose=int(opts.get("verbose", 0)), cache_only=True,
    )
    t0 = time.perf_counter()
    result = build(config.model, build_config, reporter=opts.get("reporter") or reporter or QUIET)
    opts["built"] = {"cached": result.cached, "seconds": round(time.perf_counter() - t0, 3),
                     "source": str(config.model)}
    return dataclasses.replace(config, model=str(result.engine_path), options=opts)


def _precision_variant(source: Path, precision: str, config: BuildConfig, reporter: Reporter) -> Path:
    """The ONNX whose graph has the requested precision, made by the quantize stage if needed.

    ``resdeploy build`` puts the variant where ``resdeploy quantize`` would (a sibling
    artifact directory such as ``artifacts/resnet50/int8-trt``, whose manifest names its FP32
    parent, so ``validate`` finds the reference) and reuses one made from the same FP32 ONNX.
    Runners (``cache_only``) keep theirs in the cache instead, keyed by the source ONNX and the
    calibration files, so a benchmark writes nothing beside the user's model.
    """
    io = read_onnx_io(source)
    if io.precision == precision:
        return source
    if io.precision != "fp32":
        raise ResdeployError(
            f"{source} is already a {io.precision} graph; pass --precision {io.precision}, "
            f"or the FP32 ONNX to make a {precision} variant from"
        )
    if precision == "int8" and not config.calib_data:
        raise ResdeployError(
            "--precision int8 needs --calib-data SRC (an image folder, .npy/.npz or 'synthetic') to calibrate "
            "the Q/DQ ranges",
            hint="or pass an INT8 ONNX made by `resdeploy quantize --precision int8 --target trt`",
        )
    from resdeploy.precision import QuantizeConfig, default_output, quantize, resolve_source

    qconfig = QuantizeConfig(precision=precision, target="trt", calib_data=config.calib_data, force=config.force)
    if config.cache_only:
        root = Path(config.cache_dir).expanduser() if config.cache_dir else loader.cache_dir()
        fingerprint = hashlib.sha256(json.dumps({
            "onnx": artifacts.sha256_file(source), "precision": precision,
            "calib": _calib_fingerprint(config.calib_data),
        }, sort_keys=True).encode()).hexdigest()[:24]
        out_dir = root / "variants" / f"{precision}-{fingerprint}"
        qconfig = dataclasses.replace(qconfig, output=str(out_dir), force=True)
        if (out_dir / "model.onnx").exists():
            reporter.info(f"[green]✓[/] reusing the {precision} graph made earlier from the same ONNX and data")
            return out_dir / "model.onnx"
    else:
        src = resolve_source(source, qconfig, reporter)
        out_dir = default_output(src, qconfig)
        existing = artifacts.read_manifest(out_dir / "model.onnx") if (out_dir / "model.onnx").exists() else None
        parent = (existing or {}).get("parent") or {}
        if (existing and not config.force and existing.get("precision") == precision
                and parent.get("sha256") == src.sha256 and (precision != "int8" or existing.get("target") == "trt")):
            reporter.info(f"using the {precision} variant in {escape(str(out_dir))}, made from the same FP32 ONNX "
                          "(--force remakes it)")
            return out_dir / "model.onnx"
    with reporter.step(f"make the {precision} graph (quantize stage, target trt)"):
        result = quantize(str(source), config=qconfig, reporter=reporter)
    return Path(result.model_path)


def _calib_fingerprint(calib: str | None) -> list[Any] | None:
    """Names, sizes and mtimes of the calibration files: cheap, and changes when they do."""
    if not calib:
        return None
    p = Path(calib)
    if not p.exists():
        return [calib]  # synthetic or a name the quantize stage resolves itself
    files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    return [[str(f.relative_to(p) if p.is_dir() else f.name), f.stat().st_size, int(f.stat().st_mtime)] for f in files]


def _resolve_profile(io: OnnxIO, requested: BatchProfile | None) -> BatchProfile:
    static = io.static_batch
    if static is not None:
        if requested is not None and requested != BatchProfile(static, static, static):
            raise ResdeployError(
                f"the ONNX input '{io.input_name}' has a fixed batch of {static}, so --batch {requested} cannot apply",
                hint=f"use --batch {static}, or export with a dynamic batch axis",
            )
        return BatchProfile(static, static, static)
    return requested or DEFAULT_PROFILE


def _describing_manifest(*onnx_paths: Path) -> Manifest | None:
    """The first manifest recording the preprocessing (export/quantize): its model, preprocessing and
    classes go into the plan's manifest, for validate and bench."""
    for path in onnx_paths:
        try:
            manifest = artifacts.load_manifest(path)
        except ResdeployError:
            continue
        if manifest and isinstance(manifest.preprocess, dict):
            return manifest
    return None


# --- files ---------------------------------------------------------------------------------------

def _default_output(source_onnx: Path, precision: str) -> Path:
    return source_onnx.with_name(f"{source_onnx.stem}.{precision}.engine")


def _is_engine_name(path: Path) -> bool:
    return is_engine_file(path)


def _existing_key(engine: Path) -> str | None:
    """The cache key of the plan at ``engine``; None when absent, without a manifest, or changed since."""
    if not engine.exists():
        return None
    try:
        # verify: a plan replaced or damaged after its manifest was written is not reused
        return load_engine_manifest(engine, verify=True).require_engine().cache_key or None
    except ResdeployError:
        return None


def _valid_cache_entry(engine: Path, key: str) -> bool:
    return _existing_key(engine) == key


def _publish(plan: bytes, template: Manifest, engine: Path, onnx_path: Path, onnx_sha: str, *,
             force: bool) -> Manifest:
    """Write the plan (exclusively unless ``force``), then its manifest: a reader that finds the manifest
    finds a whole plan.

    The file record is measured from the plan just written and the lineage points from
    where it is to the ONNX it was compiled from, so a copy in the cache and one beside the
    ONNX each have their own manifest.
    """
    artifacts.commit_file(engine, plan, force=force)
    try:
        parent = artifacts.load_manifest(onnx_path)
    except ResdeployError:
        parent = None  # a foreign ONNX's unreadable manifest.json: the lineage still names the file
    manifest = dataclasses.replace(
        template, artifact=FileRecord.measure(engine),
        parent=Lineage.of(onnx_path, engine.parent, sha256=onnx_sha, precision=str(template.precision),
                          stage=parent.stage if parent else None))
    manifest.write_beside(engine)
    return manifest


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_") or "x"


def _resdeploy_version() -> str:
    from resdeploy import __version__

    return __version__
