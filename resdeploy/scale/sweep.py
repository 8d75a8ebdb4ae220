"""``resdeploy sweep SPEC``: models x precisions x targets, export -> quantize -> validate -> bench.

The spec is a TOML file (read with ``tomllib``)::

    output = "sweep-out"                  # cache and results; relative paths are from the spec's folder
    models = ["resnet18", { name = "resnet50", weights = "w/resnet50.pth" }, { onnx = "m.onnx", input_size = 224 }]
    precisions = ["fp32", "fp16", "int8"]
    targets = ["cpu"]                     # INT8 targets: cpu, trt (fp32/fp16 run once each)

    [calibration]                         # INT8 only
    data = "calibration/sample"
    samples = 64

    [validation]                          # optional; gates as in `resdeploy validate`
    data = "val/"
    samples = 500
    max_top1_drop = 1.0

    [bench]                               # optional; as in `resdeploy bench`
    engines = ["ort"]
    batches = [1, 8]
    scenario = "sweep"

Every stage is one library call (``resdeploy.export``/``quantize``/``validate``/``bench``)
whose output is cached by content (``resdeploy.scale.cache``): a rerun skips what was
already done and says so. A combination that fails is recorded with its one-line reason
and the others go on. In one process by default; with ``ray_address`` (``--ray``) every
stage is a Ray task that waits for the stage it needs (quantize for its export,
validate and bench for their model), and benchmarks run one after another so that two
never share the CPUs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from resdeploy.console import QUIET, Reporter
from resdeploy.errors import ResdeployError

SWEEP_SCHEMA = "resdeploy.sweep/1"
PRECISIONS = ("fp32", "fp16", "int8")
TARGETS = ("cpu", "trt")
_TOP_KEYS = {"output", "models", "precisions", "targets", "calibration", "validation", "bench"}
_MODEL_KEYS = {"name", "onnx", "weights", "input_size", "num_classes", "label"}
_CALIB_KEYS = {"data", "samples", "method", "reduce_range", "cpu"}
_GATES = ("max_top1_drop", "min_top1_ratio", "min_agreement", "max_abs_error", "min_cosine")
_VALIDATE_KEYS = {"data", "samples", "seed", "batch_size", "labels", "threads", *_GATES}
_BENCH_KEYS = {"engines", "batches", "scenario", "threads", "iterations", "duration", "warmup", "qps", "slo_ms"}


# --- the spec --------------------------------------------------------------------------------------
@dataclass
class ModelEntry:
    """One model of the sweep: a name the exporter knows, or an ONNX file (then no export)."""

    name: str | None = None
    onnx: str | None = None
    weights: str | None = None
    input_size: int | None = None
    num_classes: int | None = None
    label: str | None = None

    @property
    def display(self) -> str:
        return self.label or self.name or Path(str(self.onnx)).stem


@dataclass
class SweepSpec:
    """A parsed, checked spec; paths are absolute (workers may run elsewhere)."""

    path: str
    output: str
    models: list[ModelEntry]
    precisions: list[str]
    targets: list[str] = field(default_factory=lambda: ["cpu"])
    calibration: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] | None = None
    bench: dict[str, Any] | None = None

    def combinations(self) -> list[tuple[ModelEntry, str, str | None]]:
        """(model, precision, target): INT8 once per target, fp32/fp16 once (their target is None)."""
        out: list[tuple[ModelEntry, str, str | None]] = []
        for m in self.models:
            for p in self.precisions:
                for t in (self.targets if p == "int8" else [None]):
                    out.append((m, p, t))
        return out


def _refuse_unknown(where: str, table: dict[str, Any], known: set[str], spec: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ResdeployError(f"{spec}: unknown key '{unknown[0]}' in {where}; known keys: {', '.join(sorted(known))}")


def _path(base: Path, value: Any, what: str, spec: str, *, must_exist: bool = True) -> str:
    if not isinstance(value, str) or not value:
        raise ResdeployError(f"{spec}: {what} must be a path (a string), got {value!r}")
    if value == "synthetic" or value.startswith("synthetic:"):
        return value
    p = (base / value).resolve()
    if must_exist and not p.exists():
        raise ResdeployError(f"{spec}: {what} not found: {value}")
    return str(p)


def load_spec(path: str | os.PathLike[str], output: str | os.PathLike[str] | None = None) -> SweepSpec:
    """Read and check a sweep spec; every mistake is one line naming the key (exit 2)."""
    from resdeploy.models.zoo import check_model_name

    try:
        import tomllib
    except ImportError:  # Python 3.10: the same parser as the 'tomli' package
        import tomli as tomllib  # type: ignore[no-redef]

    p = Path(path)
    spec = str(path)
    if not p.is_file():
        raise ResdeployError(f"no such sweep spec: {spec}")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ResdeployError(f"cannot read {spec}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ResdeployError(f"{spec} is not valid TOML: {exc}") from None
    base = p.resolve().parent
    _refuse_unknown("the spec", raw, _TOP_KEYS, spec)
    models_raw = raw.get("models")
    if isinstance(models_raw, str | dict):  # models = "resnet18": one model, not a list of them
        raise ResdeployError(f"{spec}: 'models' is a list, got {models_raw!r}",
                             hint=f"models = [{models_raw!r}]".replace("'", '"') if isinstance(models_raw, str)
                             else 'models = [{ name = "resnet20", input_size = 32 }]')
    if not isinstance(models_raw, list) or not models_raw:
        raise ResdeployError(f"{spec}: empty sweep: 'models' lists no model",
                             hint='e.g. models = ["resnet18"]')
    models: list[ModelEntry] = []
    for i, m in enumerate(models_raw):
        if isinstance(m, str):
            m = {"name": m}
        if not isinstance(m, dict):
            raise ResdeployError(f"{spec}: models[{i}] must be a name or a table, got {m!r}")
        _refuse_unknown(f"models[{i}]", m, _MODEL_KEYS, spec)
        if ("name" in m) == ("onnx" in m):
            raise ResdeployError(f"{spec}: models[{i}] needs exactly one of 'name' (zoo, torchvision:, timm:) or 'onnx'")
        entry = ModelEntry(**m)
        if entry.name is not None:
            check_model_name(entry.name)
        else:
            entry.onnx = _path(base, entry.onnx, f"models[{i}].onnx", spec)
        if entry.weights is not None:
            entry.weights = _path(base, entry.weights, f"models[{i}].weights", spec)
        for key in ("input_size", "num_classes"):
            v = getattr(entry, key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
                raise ResdeployError(f"{spec}: models[{i}].{key} must be a positive integer, got {v!r}")
        models.append(entry)
    labels = [m.display for m in models]
    if len(set(labels)) != len(labels):
        raise ResdeployError(f"{spec}: two models have the same name; give one a label = \"...\"")
    precisions = raw.get("precisions", ["fp32"])
    if isinstance(precisions, str):
        raise ResdeployError(f"{spec}: 'precisions' is a list, got {precisions!r}",
                             hint=f'precisions = ["{precisions}"]')
    if not isinstance(precisions, list) or not precisions:
        raise ResdeployError(f"{spec}: empty sweep: 'precisions' lists none; choose from {', '.join(PRECISIONS)}")
    for prec in precisions:
        if prec not in PRECISIONS:
            raise ResdeployError(f"{spec}: unknown precision '{prec}'; choose from {', '.join(PRECISIONS)}")
    targets = raw.get("targets", ["cpu"])
    if not isinstance(targets, list) or not targets or any(t not in TARGETS for t in targets):
        raise ResdeployError(f"{spec}: targets must list some of {', '.join(TARGETS)}, got {targets!r}")
    calibration = dict(raw.get("calibration") or {})
    _refuse_unknown("[calibration]", calibration, _CALIB_KEYS, spec)
    if "int8" in precisions:
        if "data" not in calibration:
            raise ResdeployError(f"{spec}: int8 needs [calibration] data = \"...\" (an image folder, .npy/.npz or 'synthetic')")
        calibration["data"] = _path(base, calibration["data"], "[calibration] data", spec)
    validation = raw.get("validation")
    if validation is not None:
        validation = dict(validation)
        _refuse_unknown("[validation]", validation, _VALIDATE_KEYS, spec)
        if "data" not in validation:
            raise ResdeployError(f"{spec}: [validation] needs data = \"...\"")
        validation["data"] = _path(base, validation["data"], "[validation] data", spec)
        if validation.get("labels"):
            validation["labels"] = _path(base, validation["labels"], "[validation] labels", spec)
        _validate_config(validation, ".", ".").check()
    bench = raw.get("bench")
    if bench is not None:
        bench = dict(bench)
        _refuse_unknown("[bench]", bench, _BENCH_KEYS, spec)
        _bench_config(bench, "model.onnx").validate()
    out = Path(output) if output is not None else base / str(raw.get("output", "sweep-out"))
    return SweepSpec(path=str(p.resolve()), output=str(out.resolve()), models=models, precisions=list(precisions),
                     targets=list(targets), calibration=calibration, validation=validation, bench=bench)


def _validate_config(v: dict[str, Any], candidate: str, reference: str) -> Any:
    from resdeploy.validation import ValidateConfig

    return ValidateConfig(data=v["data"], reference=reference, samples=v.get("samples"), seed=v.get("seed", 0),
                          batch_size=v.get("batch_size", 32), labels=v.get("labels"), threads=v.get("threads"),
                          **{g: v.get(g) for g in _GATES})  # type: ignore[arg-type]


def _bench_config(b: dict[str, Any], model: str) -> Any:
    from resdeploy.benchmark import BenchConfig

    return BenchConfig(model=model, engines=list(b.get("engines", ["ort"])), batches=b.get("batches"),
                       scenario=b.get("scenario", "sweep"), threads=b.get("threads"),
                       iterations=b.get("iterations", 20), duration=float(b.get("duration", 5.0)),
                       warmup_iterations=b.get("warmup", 5), qps=b.get("qps"), slo_ms=b.get("slo_ms"))


# --- stages: each a pure function of its inputs -> an outcome, cached by content ----------------------
@dataclass
class Outcome:
    """What one stage gave: a model path or a result, whether it came from the cache, or why it failed."""

    stage: str
    ok: bool
    path: str | None = None
    result: dict[str, Any] | None = None
    cached: bool = False
    seconds: float = 0.0
    error: str | None = None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _guarded(stage: str, fn: Any, *args: Any) -> Outcome:
    """Run a stage; any error becomes the combination's one-line reason instead of stopping the sweep."""
    t0 = time.perf_counter()
    try:
        out: Outcome = fn(*args)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # the sweep records it and goes on with the other combinations
        return Outcome(stage, False, error=f"{stage}: {_one_line(exc)}", seconds=round(time.perf_counter() - t0, 3))
    out.seconds = round(time.perf_counter() - t0, 3)
    return out


def _export(entry: ModelEntry, cache_root: str) -> Outcome:
    from resdeploy.artifacts import sha256_file
    from resdeploy.scale.cache import Cache, cache_key

    if entry.onnx is not None:  # an ONNX file is its own FP32 artifact: nothing to export
        return Outcome("export", True, path=entry.onnx, cached=True)
    inputs = {"model": entry.name, "weights": sha256_file(entry.weights) if entry.weights else None,
              "input_size": entry.input_size, "num_classes": entry.num_classes}

    def build(tmp: Path) -> None:
        from resdeploy.exporter import ExportConfig, export

        export(entry.name, tmp, ExportConfig(input_size=entry.input_size), weights=entry.weights,
               num_classes=entry.num_classes)

    d, hit = Cache(cache_root).get_dir("export", cache_key("export", inputs), inputs, build)
    return Outcome("export", True, path=str(d / "model.onnx"), cached=hit)


def _quantize(fp32: Outcome, entry: ModelEntry, precision: str, target: str | None, calibration: dict[str, Any],
              cache_root: str) -> Outcome:
    from resdeploy.artifacts import sha256_file
    from resdeploy.scale.cache import Cache, cache_key, data_fingerprint

    if not fp32.ok:
        return Outcome("quantize", False, error=fp32.error)
    assert fp32.path is not None
    if precision == "fp32":
        return Outcome("quantize", True, path=fp32.path, cached=True)
    calib = calibration if precision == "int8" else {}
    inputs = {"parent": sha256_file(fp32.path), "precision": precision, "target": target,
              "calib": data_fingerprint(calib.get("data")), "calib_samples": calib.get("samples", 128),
              "method": calib.get("method", "minmax"), "reduce_range": calib.get("reduce_range", False),
              # INT8 --target cpu: portable (7-bit weights, the default) or vnni; part of the key, as
              # what the default makes changed (artifacts cached before it were full 8-bit)
              "cpu": calib.get("cpu", "portable") if precision == "int8" and (target or "cpu") == "cpu" else None,
              "input_size": entry.input_size}

    def build(tmp: Path) -> None:
        from resdeploy.precision import QuantizeConfig, quantize

        cfg = QuantizeConfig(precision=precision, target=target or "cpu", calib_data=calib.get("data"),
                             calib_samples=calib.get("samples", 128), method=calib.get("method", "minmax"),
                             reduce_range=bool(calib.get("reduce_range", False)), output=str(tmp),
                             cpu=str(inputs["cpu"] or "portable"),
                             input_size=entry.input_size if entry.onnx else None)
        quantize(fp32.path, config=cfg)  # type: ignore[arg-type]

    d, hit = Cache(cache_root).get_dir("quantize", cache_key("quantize", inputs), inputs, build)
    return Outcome("quantize", True, path=str(d / "model.onnx"), cached=hit)


def _validate(model: Outcome, fp32: Outcome, entry: ModelEntry, validation: dict[str, Any], cache_root: str) -> Outcome:
    from resdeploy.artifacts import sha256_file, to_json
    from resdeploy.scale.cache import Cache, cache_key, data_fingerprint

    if not model.ok:
        return Outcome("validate", False, error=model.error)
    assert model.path is not None and fp32.path is not None
    settings = {k: v for k, v in validation.items() if k not in ("data", "threads")}
    inputs = {"candidate": sha256_file(model.path), "reference": sha256_file(fp32.path),
              "data": data_fingerprint(validation["data"]), "settings": settings, "input_size": entry.input_size}
    cache, key = Cache(cache_root), cache_key("validate", inputs)
    hit = cache.get_json("validate", key)
    if hit is not None:
        return Outcome("validate", True, path=str(cache.json_entry("validate", key)), result=hit, cached=True)
    from resdeploy.validation import validate

    cfg = _validate_config(validation, model.path, fp32.path)
    if entry.onnx is not None and entry.input_size:
        cfg.input_size = entry.input_size
    import json

    result = json.loads(to_json(validate(model.path, config=cfg).to_dict()))
    path = cache.put_json("validate", key, result)
    return Outcome("validate", True, path=str(path), result=result)


def _bench(model: Outcome, entry: ModelEntry, bench: dict[str, Any], cache_root: str, after: Any = None) -> Outcome:
    from resdeploy.artifacts import sha256_file, to_json
    from resdeploy.machine import fingerprint, short_label
    from resdeploy.scale.cache import Cache, cache_key

    del after  # only orders benchmarks one after another (on Ray)
    if not model.ok:
        return Outcome("bench", False, error=model.error)
    assert model.path is not None
    # Timings belong to a machine: the same model on another machine is another entry.
    inputs = {"model": sha256_file(model.path), "settings": bench, "machine": short_label(fingerprint())}
    cache, key = Cache(cache_root), cache_key("bench", inputs)
    hit = cache.get_json("bench", key)
    if hit is not None:
        return Outcome("bench", True, path=str(cache.json_entry("bench", key)), result=hit, cached=True)
    import json

    from resdeploy.benchmark import bench as run_bench

    cfg = _bench_config(bench, model.path)
    if entry.onnx is not None and entry.input_size:
        cfg.input_size = entry.input_size
    result = json.loads(to_json(run_bench(cfg).to_dict()))
    path = cache.put_json("bench", key, result)
    return Outcome("bench", True, path=str(path), result=result)


def stage_export(entry: ModelEntry, cache_root: str) -> Outcome:
    return _guarded("export", _export, entry, cache_root)


def stage_quantize(fp32: Outcome, entry: ModelEntry, precision: str, target: str | None,
                   calibration: dict[str, Any], cache_root: str) -> Outcome:
    return _guarded("quantize", _quantize, fp32, entry, precision, target, calibration, cache_root)


def stage_validate(model: Outcome, fp32: Outcome, entry: ModelEntry, validation: dict[str, Any] | None,
                   cache_root: str) -> Outcome | None:
    return None if validation is None else _guarded("validate", _validate, model, fp32, entry, validation, cache_root)


def stage_bench(model: Outcome, entry: ModelEntry, bench: dict[str, Any] | None, cache_root: str,
                after: Any = None) -> Outcome | None:
    return None if bench is None else _guarded("bench", _bench, model, entry, bench, cache_root, after)


# --- results ----------------------------------------------------------------------------------------
@dataclass
class ComboResult:
    """One combination: its stages' outcomes and the numbers the report shows."""

    model: str
    precision: str
    target: str | None
    ok: bool
    error: str | None
    stages: list[Outcome]
    model_path: str | None = None
    top1: float | None = None
    reference_top1: float | None = None
    agreement: float | None = None
    gates_passed: bool | None = None
    p50_ms: float | None = None
    throughput: float | None = None
    bench_path: str | None = None

    @property
    def cached(self) -> bool:
        return bool(self.stages) and all(s.cached for s in self.stages)


def _combo(entry: ModelEntry, precision: str, target: str | None, outcomes: list[Outcome | None]) -> ComboResult:
    stages = [o for o in outcomes if o is not None]
    failed = next((o for o in stages if not o.ok), None)
    c = ComboResult(entry.display, precision, target, failed is None, failed.error if failed else None, stages)
    by = {o.stage: o for o in stages}
    if "quantize" in by and by["quantize"].ok:
        c.model_path = by["quantize"].path
    v = by.get("validate")
    if v is not None and v.ok and v.result:
        acc = v.result.get("accuracy")
        if acc:
            c.top1, c.reference_top1 = acc["candidate"]["top1"], acc["reference"]["top1"]
        c.agreement = (v.result.get("parity") or {}).get("top1_agreement")
        c.gates_passed = bool(v.result.get("passed"))
    b = by.get("bench")
    if b is not None and b.ok and b.result:
        runs = b.result.get("runs") or []
        if runs:
            best = max(runs, key=lambda r: r.get("throughput", 0))
            c.p50_ms, c.throughput = (best.get("stats") or {}).get("p50_ms"), best.get("throughput")
        c.bench_path = b.path
    return c


@dataclass
class SweepResult:
    spec: str
    output: str
    combos: list[ComboResult]
    seconds: float
    ray: bool
    report: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["schema"] = SWEEP_SCHEMA
        for c, dc in zip(self.combos, d["combos"], strict=True):
            dc["cached"] = c.cached
            for stage in dc["stages"]:
                stage.pop("result", None)  # the full results are in the cache, at each stage's path
        return d

    @property
    def failed(self) -> list[ComboResult]:
        return [c for c in self.combos if not c.ok]


# --- running ----------------------------------------------------------------------------------------
def _run_local(spec: SweepSpec, cache_root: str, reporter: Reporter) -> Iterator[ComboResult]:
    exports: dict[str, Outcome] = {}
    for entry, precision, target in spec.combinations():
        fp32 = exports.get(entry.display)
        if fp32 is None:
            fp32 = exports[entry.display] = stage_export(entry, cache_root)
        q = stage_quantize(fp32, entry, precision, target, spec.calibration, cache_root)
        v = stage_validate(q, fp32, entry, spec.validation, cache_root)
        b = stage_bench(q, entry, spec.bench, cache_root)
        yield _combo(entry, precision, target, [fp32, q, v, b])


def _run_ray(spec: SweepSpec, cache_root: str, reporter: Reporter) -> Iterator[ComboResult]:
    """Stages as Ray tasks: Ray starts each as soon as the outcome it takes as argument is ready."""
    import ray

    export_t = ray.remote(num_cpus=1)(stage_export)
    quantize_t = ray.remote(num_cpus=1)(stage_quantize)
    validate_t = ray.remote(num_cpus=1)(stage_validate)
    bench_t = ray.remote(num_cpus=1)(stage_bench)
    exports: dict[str, Any] = {}
    pending: dict[Any, tuple[ModelEntry, str, str | None, list[Any]]] = {}
    last_bench: Any = None
    for entry, precision, target in spec.combinations():
        if entry.display not in exports:
            exports[entry.display] = export_t.remote(entry, cache_root)
        fp32 = exports[entry.display]
        q = quantize_t.remote(fp32, entry, precision, target, spec.calibration, cache_root)
        v = validate_t.remote(q, fp32, entry, spec.validation, cache_root)
        b = bench_t.remote(q, entry, spec.bench, cache_root, last_bench)  # benchmarks one at a time
        last_bench = b
        done = _both.remote(v, b)
        pending[done] = (entry, precision, target, [fp32, q, v, b])
    waiting = list(pending)
    while waiting:
        ready, waiting = ray.wait(waiting, num_returns=1)
        for ref in ready:
            entry, precision, target, refs = pending[ref]
            yield _combo(entry, precision, target, ray.get(refs))


def _both_impl(*_: Any) -> bool:
    return True


class _LazyRemote:
    """``ray.remote`` applied on first use: importing this module must not import Ray."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.remote_fn: Any = None

    def remote(self, *args: Any) -> Any:
        if self.remote_fn is None:
            import ray

            self.remote_fn = ray.remote(num_cpus=0)(self.fn)
        return self.remote_fn.remote(*args)


_both = _LazyRemote(_both_impl)


def sweep(spec: SweepSpec | str | os.PathLike[str], *, ray_address: str | None = None, use_ray: bool = False,
          reporter: Reporter = QUIET, write_report: bool = True) -> SweepResult:
    """Run every combination of ``spec``; returns a ``SweepResult`` (also written to OUTPUT/sweep.json).

    ``use_ray``: run the stages as Ray tasks on the cluster at ``ray_address`` (None: a
    local Ray started for this call). A failed combination does not raise: it is in the
    result with its reason. Bad specs raise ``ResdeployError`` before any work.
    """
    from resdeploy.artifacts import atomic_write_json, check_writable_dir

    if not isinstance(spec, SweepSpec):
        spec = load_spec(spec)
    out = Path(spec.output)
    out.mkdir(parents=True, exist_ok=True)
    check_writable_dir(out)
    cache_root = str(out / "cache")
    combos = spec.combinations()
    reporter.info(f"sweep: {len(spec.models)} model(s) x {len(spec.precisions)} precision(s) -> "
                  f"{len(combos)} combination(s){' on Ray' if use_ray else ''}; cache {cache_root}")
    t0 = time.perf_counter()
    results: list[ComboResult] = []

    def run(gen: Iterator[ComboResult]) -> None:
        for c in reporter.track(gen, total=len(combos), description="sweep"):
            results.append(c)
            where = f"{c.model} {c.precision}{'/' + c.target if c.target else ''}"
            cached = [s.stage for s in c.stages if s.cached and s.ok]
            if not c.ok:
                reporter.warn(f"{where} failed: {c.error}")
            elif c.cached:
                reporter.info(f"  {where}: all stages from the cache")
            else:
                reporter.info(f"  {where}: done" + (f" (from the cache: {', '.join(cached)})" if cached else ""))

    if use_ray:
        from resdeploy.scale.cluster import ray_session

        with ray_session(ray_address):
            run(_run_ray(spec, cache_root, reporter))
    else:
        run(_run_local(spec, cache_root, reporter))
    key = {(m.display, p, t): i for i, (m, p, t) in enumerate(combos)}
    results.sort(key=lambda c: key[(c.model, c.precision, c.target)])
    result = SweepResult(spec=spec.path, output=str(out), combos=results, seconds=0.0, ray=use_ray)
    benches = [c.bench_path for c in results if c.bench_path]
    if write_report and benches:
        from resdeploy.reporting import ReportConfig, report

        try:
            result.report = str(report(benches, ReportConfig(output=str(out / "report.md"), title="resdeploy sweep",
                                                             force=True)).output)
        except ResdeployError as exc:
            reporter.warn(f"no report: {exc}")
    result.seconds = round(time.perf_counter() - t0, 3)
    # OUTPUT is the sweep's own folder (its cache): each run rewrites its results there, atomically
    atomic_write_json(out / "sweep.json", result.to_dict(), force=True)
    return result


__all__ = ["ComboResult", "ModelEntry", "Outcome", "SweepResult", "SweepSpec", "load_spec", "sweep"]
