"""``bench``: every engine measured the same way, side by side, into one versioned result.

The method (the same for torch, ort, openvino and trt):

1. one runner per (engine, batch size), loaded and timed apart (``setup_seconds``);
2. several random input buffers (normal noise, not zeros: zeros can take faster
   paths in some kernels), staged where the engine reads them, rotated per iteration;
3. warm-up until both ``warmup_iterations`` and ``warmup_seconds`` are met;
4. a sanity inference (right batch, finite outputs) so a broken graph never gets timed;
5. the scenario's loop (see ``scenarios``), timed with CUDA events on a GPU and
   ``perf_counter`` on a CPU; statistics from ``stats.LatencyStats``;
6. peak host RSS and peak GPU memory of each runner (load included) recorded with every run.

All runners are constructed before any is loaded, so a bad engine/precision pair
fails in a second rather than after the first engine's minutes of measurement.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from resdeploy.artifacts import utc_now
from resdeploy.console import QUIET, Reporter
from resdeploy.errors import ResdeployError, check_positive_int
from resdeploy.preprocess import PreprocessFlags
from resdeploy.preprocess_graph import is_raw_image_input
from resdeploy.resolve import resolve_artifact
from resdeploy.runners import RUNNERS, Runner, RunnerConfig, create_runner
from resdeploy.scenarios import SCENARIOS, LoopLimits, closed_loop, make_timer, server_loop, warm_up
from resdeploy.stats import LatencyStats

RESULT_SCHEMA = "resdeploy.bench/1"
DEFAULT_BATCHES = {"sweep": [1, 8], "single-stream": [1], "offline": [1, 8], "server": [1]}
# The CLI flag of each runner option, for messages. Which engines read an option is each
# runner's Options dataclass: an option none of the chosen engines reads would be silently
# ignored (`--engine ort --compile` timing plain ort), so it is refused.
OPTION_FLAGS = {"compile": "--compile", "channels_last": "--channels-last", "cuda_graph": "--cuda-graph",
                "ep": "--ep"}


def option_readers(key: str, device: str = "cpu") -> set[str]:
    """The engines whose runner (on ``device``) reads option ``key``."""
    from resdeploy.runners import runner_class

    readers = set()
    for name in RUNNERS:
        try:
            if key in runner_class(name, device).Options.names():
                readers.add(name)
        except ResdeployError:
            continue
    return readers


@dataclass
class BenchConfig(PreprocessFlags):
    """What to measure and how long. Iterations and duration are both minimums (as in trtexec)."""

    model: str
    engines: list[str] = field(default_factory=lambda: ["ort"])
    device: str = "cpu"
    precision: str | None = None
    batches: list[int] | None = None  # None: the scenario's default (sweep: 1 and 8)
    threads: int | None = None
    cpus: list[int] | None = None  # pin to these CPUs (emulates a smaller CPU; labelled emulation)
    # Defaults sized for 2-core CPUs: fast configurations get >= 100 samples from the 5 s
    # (a real p99), slow ones (ResNet-50 batch 8 on 2 cores, ~0.3-0.5 s each) stop after
    # 20 iterations, well under a minute per engine and batch.
    warmup_iterations: int = 5
    warmup_seconds: float = 0.0
    iterations: int = 20
    duration: float = 5.0
    scenario: str = "sweep"
    qps: float | None = None
    slo_ms: float | None = None
    transfers: bool = True  # GPU: include host->device input and device->host output copies
    options: dict[str, Any] = field(default_factory=dict)  # runner options: compile, cuda_graph, ep...
    # input_size, layout (PreprocessFlags): where the model's spatial axes are dynamic and no manifest tells;
    # preprocess, resize, mean, std: how --data's images become tensors for a model without a manifest
    buffers: int = 4
    seed: int = 0
    keep_latencies: bool = True
    data: str | None = None  # time real inputs (image folder or .npy/.npz) instead of random ones
    percentiles: list[float] = field(default_factory=list)  # extra latency percentiles, e.g. [99.9]

    def resolved_batches(self) -> list[int]:
        return list(self.batches) if self.batches else list(DEFAULT_BATCHES.get(self.scenario, [1]))

    def validate(self) -> None:
        """Kept for callers of earlier releases: ``check``."""
        self.check()

    def check(self) -> None:
        """Every bad flag as one line, before anything is loaded."""
        if any(not 0.0 < q < 100.0 for q in self.percentiles):
            raise ResdeployError(f"--percentile takes values between 0 and 100 (exclusive), got {self.percentiles}")
        if not self.engines:
            raise ResdeployError("no engine given; choose from: " + ", ".join(RUNNERS))
        for e in self.engines:
            if e not in RUNNERS:
                raise ResdeployError(f"unknown engine '{e}'; choose from: {', '.join(RUNNERS)}")
        if len(set(self.engines)) != len(self.engines):
            raise ResdeployError(f"an engine is listed twice: {','.join(self.engines)}")
        for key, flag in OPTION_FLAGS.items():
            if self.options.get(key) is None:
                continue
            # what an engine reads on CUDA is a superset of what it reads on the CPU (ort's cuda_graph)
            readers = option_readers(key, "cuda")
            if not readers & set(self.engines):
                raise ResdeployError(f"{flag} is read by {', '.join(sorted(readers))} only, not by "
                                     f"{', '.join(self.engines)}")
        if self.options.get("cuda_graph") and not self.device.startswith("cuda"):
            raise ResdeployError("--cuda-graph replays a CUDA graph: it needs --device cuda")
        if self.scenario not in SCENARIOS:
            raise ResdeployError(f"unknown scenario '{self.scenario}'; choose from: {', '.join(SCENARIOS)}")
        # NaN passes every `<= 0` check below and an infinite duration never ends: a server
        # run at --qps nan spun forever. The CLI refuses them too; library callers get this.
        for flag, value in (("--qps", self.qps), ("--slo-ms", self.slo_ms), ("--duration", self.duration),
                            ("--warmup-seconds", self.warmup_seconds)):
            if value is not None and not math.isfinite(value):
                raise ResdeployError(f"{flag} must be a finite number, got {value}")
        batches = self.resolved_batches()
        if any((not isinstance(b, int)) or b <= 0 for b in batches):
            raise ResdeployError(f"batch sizes must be positive integers, got {batches}")
        if len(set(batches)) != len(batches):
            raise ResdeployError(f"a batch size is listed twice: {','.join(map(str, batches))}")
        if self.scenario == "single-stream" and batches != [1]:
            raise ResdeployError("the single-stream scenario runs batch 1 (as MLPerf's does)",
                                 hint="drop --batch, or use --scenario offline for larger batches")
        if self.scenario == "server":
            if self.qps is None or self.qps <= 0:
                raise ResdeployError("the server scenario needs --qps (queries per second, > 0)")
        elif self.qps is not None or self.slo_ms is not None:
            raise ResdeployError("--qps and --slo-ms apply to --scenario server only")
        if self.slo_ms is not None and self.slo_ms <= 0:
            raise ResdeployError("--slo-ms must be > 0")
        check_positive_int(self.threads, "--threads")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ResdeployError(f"--seed must be a non-negative integer, got {self.seed!r}")
        if self.warmup_iterations < 0 or self.warmup_seconds < 0:
            raise ResdeployError("warm-up iterations and seconds must be >= 0")
        if self.iterations < 0 or self.duration < 0:
            raise ResdeployError("--iterations and --duration must be >= 0")
        LoopLimits(self.iterations, self.duration).check("the measurement (--iterations/--duration)")
        self.check_preprocess()
        if self.buffers < 1:
            raise ResdeployError("buffers must be >= 1")
        if self.cpus is not None:
            if not self.cpus or any(c < 0 for c in self.cpus):
                raise ResdeployError(f"--cpus takes CPU numbers >= 0, got {self.cpus}")
            if len(set(self.cpus)) != len(self.cpus):  # '0,0' pins one CPU: it must not be labelled 2 cores
                raise ResdeployError(f"--cpus lists a CPU twice: {self.cpus}")
            if not hasattr(os, "sched_setaffinity"):
                raise ResdeployError("--cpus (CPU pinning) needs Linux (os.sched_setaffinity)")
            allowed = os.sched_getaffinity(0)
            bad = sorted(set(self.cpus) - allowed)
            if bad:
                raise ResdeployError(f"--cpus {bad} not available to this process; usable CPUs: "
                                     f"{','.join(map(str, sorted(allowed)))}")
            if not self.device.startswith("cpu"):
                raise ResdeployError("--cpus emulates a small CPU: use it with --device cpu")

    def effective_threads(self) -> int | None:
        """Pinned runs default to one thread per pinned CPU (more would oversubscribe them)."""
        if self.threads is None and self.cpus:
            return len(self.cpus)
        return self.threads


@dataclass
class RunResult:
    """One (engine, batch) measurement, as written into the result JSON."""

    engine: str
    model: str
    precision: str | None
    device: str
    batch: int
    scenario: str
    runner: dict[str, Any]
    setup_seconds: dict[str, float]
    stats: dict[str, Any]
    throughput: float
    latencies_ms: list[float]
    peak_rss_mb: float | None
    peak_gpu_mb: float | None
    emulation: dict[str, Any] | None
    timer: str
    transfers: bool | None
    warmup_iterations: int
    input_shape: list[int]
    scenario_summary: dict[str, Any] | None = None
    model_sha256: str | None = None
    model_name: str | None = None  # the zoo name from the manifest, for report rows

    @property
    def latency(self) -> LatencyStats:
        return LatencyStats.from_dict(self.stats)


@dataclass
class BenchResult:
    """A whole ``bench`` call: configuration, machine fingerprint and every run."""

    config: dict[str, Any]
    machine: dict[str, Any]
    runs: list[RunResult]
    created: str = field(default_factory=utc_now)
    schema: str = RESULT_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "created": self.created, "machine": self.machine,
                "config": self.config, "runs": [asdict(r) for r in self.runs]}

    def save(self, path: str | os.PathLike[str], *, force: bool = False) -> Path:
        """Write the result JSON (``artifacts.commit_file``): an existing file is replaced only with ``force``."""
        from resdeploy.artifacts import atomic_write_json

        return atomic_write_json(path, self.to_dict(), force=force)


# --- memory ---------------------------------------------------------------------------------------
def _reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark (Linux >= 4.0), so each run reports its own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    try:
        import resource
        import sys

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # lifetime peak: an upper bound
        return round(rss / (2**20 if sys.platform == "darwin" else 1024), 1)
    except (ImportError, OSError):
        return None


def _torch_cuda(device: str) -> Any:
    if not device.startswith("cuda"):
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def _reset_peak_gpu(device: str) -> None:
    torch = _torch_cuda(device)
    if torch is not None:
        torch.cuda.reset_peak_memory_stats(torch.device(device))


def _peak_gpu_mb(device: str) -> float | None:
    """torch's allocator peak, or for other engines the device memory in use (cudaMemGetInfo)."""
    torch = _torch_cuda(device)
    if torch is None:
        return None
    dev = torch.device(device)
    peak = torch.cuda.max_memory_allocated(dev)
    free, total = torch.cuda.mem_get_info(dev)
    return round(max(peak, total - free) / 2**20, 1)


# --- pinning ----------------------------------------------------------------------------------------
@contextlib.contextmanager
def pinned(cpus: list[int] | None) -> Iterator[None]:
    """Run on the given CPUs only, restoring the previous affinity afterwards."""
    if not cpus:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cpus))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def emulation_record(cfg: BenchConfig, machine: dict[str, Any]) -> dict[str, Any] | None:
    if not cfg.cpus:
        return None
    cpu = machine.get("cpu", {}).get("model", "this host's CPU")
    return {"kind": "cpu-pinning", "cpus": list(cfg.cpus), "threads": cfg.effective_threads(),
            "note": f"emulates a {len(cfg.cpus)}-core CPU by pinning to {len(cfg.cpus)} core(s) of {cpu}; "
                    "not a measurement of a real edge device"}


# --- inputs -----------------------------------------------------------------------------------------
def _spatial_size(cfg: BenchConfig) -> tuple[int, int]:
    """(H, W) for dynamic spatial axes: --input-size, else the manifest's crop, else 224."""
    if cfg.input_size:
        if isinstance(cfg.input_size, int):
            return (cfg.input_size, cfg.input_size)
        return (int(cfg.input_size[0]), int(cfg.input_size[1]))
    crop = _recorded_preprocess(cfg).get("crop") or 224
    return (int(crop[0]), int(crop[1])) if isinstance(crop, list | tuple) else (int(crop), int(crop))


def _recorded_preprocess(cfg: BenchConfig) -> dict[str, Any]:
    """The preprocessing the model's manifest records (empty without one)."""
    manifest = resolve_artifact(cfg.model, onnx_dir=False, verify=False).describing_manifest()
    return (manifest.preprocess if manifest else None) or {}


def fixed_batch(model: str | os.PathLike[str]) -> int | None:
    """The batch an ONNX model's graph fixes (None: dynamic, or not an ONNX file), for the default batches.

    trtexec and benchmark_app time a static model at its own shape; the default batches
    (1 and 8) would refuse it.
    """
    from resdeploy.onnx_io import read_graph_input

    try:
        art = resolve_artifact(model, onnx_dir=False, verify=False)
        if art.kind != "onnx" or art.path is None:
            return None
        dims = read_graph_input(art.path).dims
    except ResdeployError:  # an unreadable file: the engine that loads it says so, in its words
        return None
    return dims[0] if dims else None


def input_shape(runner: Runner, batch: int, cfg: BenchConfig) -> tuple[int, ...]:
    """The input shape for ``batch``: the model's fixed dims, with dynamic ones filled in (NCHW or NHWC)."""
    meta = runner.input_meta()
    dims = list(meta.shape)
    if len(dims) != 4:
        raise ResdeployError(f"resdeploy benches image models (NCHW or NHWC); input '{meta.name}' has shape {meta.shape}")
    if isinstance(dims[0], int) and dims[0] not in (batch, -1, 0):
        raise ResdeployError(
            f"the model's input has a fixed batch of {dims[0]}, so it cannot run batch {batch}",
            hint=f"use --batch {dims[0]}, or export with a dynamic batch axis",
        )
    return _filled_shape(runner, batch, cfg)


def _filled_shape(runner: Runner, batch: int, cfg: BenchConfig) -> tuple[int, ...]:
    """``batch`` and the model's dims, dynamic ones filled from --input-size/--layout, the manifest or 224 NCHW."""
    from resdeploy.onnx_io import GraphInput, check_input_flags, layout_of

    meta = runner.input_meta()
    dims = list(meta.shape)
    if len(dims) != 4:
        raise ResdeployError(f"resdeploy benches image models (NCHW or NHWC); input has shape {tuple(dims)}")
    if is_raw_image_input(meta.dtype, dims):  # preprocessing in the graph: decoded images, at the resize size
        side = _raw_image_size(cfg, _spatial_size(cfg)[0])
        return (batch, *(d if isinstance(d, int) and d > 0 else side for d in dims[1:3]), 3)
    static = tuple(d if isinstance(d, int) and d > 0 else None for d in dims)
    size = None if cfg.input_size is None else _spatial_size(cfg)
    check_input_flags(GraphInput.of(meta), size, cfg.layout, str(cfg.model))
    layout = (cfg.layout or layout_of(static) or str(_recorded_preprocess(cfg).get("layout") or "NCHW")).upper()
    h, w = _spatial_size(cfg)
    fill = (3, h, w) if layout == "NCHW" else (h, w, 3)
    return (batch, *(d if d is not None else f for d, f in zip(static[1:], fill, strict=True)))


def input_notes(runner: Runner, cfg: BenchConfig) -> list[str]:
    """Lines for what the input flags do not decide here, said once before timing.

    A graph with dynamic height and width and no manifest is timed at 224x224 unless
    --input-size says otherwise: the size is part of the result, so it is said, not assumed.
    The preprocessing flags change only what ``--data`` loads; they are accepted without
    it (one flag set for quantize, validate and bench) but do not change random inputs.
    """
    notes = []
    meta = runner.input_meta()
    dims = list(meta.shape)
    recorded = _recorded_preprocess(cfg)
    dynamic = len(dims) == 4 and not is_raw_image_input(meta.dtype, dims) and \
        any(not (isinstance(d, int) and d > 0) for d in dims[1:])
    if dynamic and cfg.input_size is None and not recorded.get("crop"):
        h, w = _spatial_size(cfg)
        notes.append(f"{cfg.model} leaves its input's height and width dynamic and has no manifest: timed at "
                     f"{h}x{w} (pass --input-size H,W for another size)")
    named = [flag for flag, value in (("--preprocess", cfg.preprocess), ("--resize", cfg.resize),
                                      ("--mean", cfg.mean), ("--std", cfg.std)) if value is not None]
    if named and not cfg.data:
        notes.append(f"{', '.join(named)} change{'s' if len(named) == 1 else ''} only the tensors --data loads; "
                     "without --data bench times random inputs")
    elif named and recorded:
        notes.append(f"{', '.join(named)} ignored: the manifest records the preprocessing the model was exported "
                     "with, and --data is loaded with that")
    return notes


# A ResNet's widest activations are several times its input (ResNet-50 at 224: the stem's
# 64x112x112 output is 5.3x the 3x224x224 input), so a batch whose activations will not fit
# fails here, not halfway through allocating them.
_ACTIVATION_FACTOR = 8


def check_memory(shape: tuple[int, ...], buffers: int, what: str) -> None:
    """One line when a batch cannot fit in this machine's available memory (inputs plus activations)."""
    import psutil

    one = int(np.prod(shape, dtype=np.int64)) * 4
    need = one * (buffers + _ACTIVATION_FACTOR)
    available = int(psutil.virtual_memory().available)
    if need > available:
        raise ResdeployError(f"{what} needs at least {need / 2**30:.1f} GiB ({buffers} input batches of "
                             f"{'x'.join(map(str, shape))} float32, {one / 2**30:.1f} GiB each, and the "
                             f"activations), and this machine has {available / 2**30:.1f} GiB available",
                             hint="pass a smaller --batch")


def _raw_image_size(cfg: BenchConfig, crop: int) -> int:
    """The side of the decoded images a model with in-graph preprocessing is fed: its resize size."""
    return int(_recorded_preprocess(cfg).get("resize") or crop)


def make_inputs(shape: tuple[int, ...], count: int, seed: int, dtype: str = "float32") -> list[np.ndarray]:
    """Several distinct random batches: standard normal (like normalised images), or uint8 pixels for raw images."""
    rng = np.random.default_rng(seed)
    if dtype == "uint8":
        return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(count)]
    return [rng.standard_normal(shape, dtype=np.float32) for _ in range(count)]


# --- the measurement ---------------------------------------------------------------------------------
def measure(runner: Runner, cfg: BenchConfig, batch: int, *, emulation: dict[str, Any] | None = None,
            reset_peaks: bool = True, progress: Any = None) -> RunResult:
    """Warm up, sanity-check and time one loaded runner at one batch size.

    With ``reset_peaks`` the memory peaks are reset after warm-up and cover the timed
    loop; ``bench`` passes False because it resets before loading each runner, so its
    peaks include the load.
    """
    from resdeploy.onnx_io import GraphInput

    shape = input_shape(runner, batch, cfg)
    data_record = None
    if cfg.data:
        from resdeploy.bench_inputs import real_inputs

        host, data_record = real_inputs(cfg.data, str(cfg.model), shape, cfg.buffers, cfg.seed + batch,
                                        graph=GraphInput.of(runner.input_meta()), flags=cfg.preprocess_flags())
    else:
        host = make_inputs(shape, cfg.buffers, cfg.seed + batch, dtype=runner.input_meta().dtype)
    on_gpu = not runner.device.startswith("cpu")
    transfers = cfg.transfers if on_gpu else None
    n = len(host)

    if on_gpu and transfers:
        def run(i: int) -> Any:
            return runner.run_staged(runner.stage(host[i % n]), transfers=True)
    else:
        staged = [runner.stage(x) for x in host]
        runner.synchronize()

        def run(i: int) -> Any:
            return runner.run_staged(staged[i % n], transfers=not on_gpu)

    out = np.asarray(runner.infer(host[0]))
    if out.shape[:1] != (batch,):
        raise ResdeployError(f"{runner.engine} returned output of shape {list(out.shape)} for batch {batch}")
    if not np.all(np.isfinite(out)):
        raise ResdeployError(f"{runner.engine} produced NaN or infinite outputs on random input; "
                             "its numbers would be meaningless (check the model's precision)")

    warm = 0
    if cfg.warmup_iterations or cfg.warmup_seconds:
        warm = warm_up(run, runner.synchronize, LoopLimits(cfg.warmup_iterations, cfg.warmup_seconds))
    if reset_peaks:
        _reset_peak_rss()
        _reset_peak_gpu(runner.device)
    limits = LoopLimits(cfg.iterations, cfg.duration)
    summary: dict[str, Any] | None = None
    if cfg.scenario == "server":
        lat, wall, summary = server_loop(run, runner.synchronize, qps=float(cfg.qps or 0), limits=limits,
                                         seed=cfg.seed)
        timer_kind = "perf_counter (arrival to completion)"
        summary["slo_ms"] = cfg.slo_ms
    else:
        timer = make_timer(runner.device, runner.synchronize)
        lat, wall = closed_loop(run, timer, limits, progress=progress)
        timer_kind = timer.kind
    stats = LatencyStats.from_latencies(lat, images=batch * len(lat), wall_seconds=wall)
    stats_dict = stats.to_dict()
    if cfg.percentiles:  # --percentile 99.9: the same method as p50..p99 (linear interpolation)
        stats_dict["extra_percentiles"] = {f"p{q:g}": float(np.percentile(lat, q)) for q in cfg.percentiles}
    if data_record is not None:
        summary = {**(summary or {}), "inputs": data_record}
    if cfg.scenario == "server" and summary is not None:
        summary["p99_ms"] = stats.p99_ms
        summary["slo_met"] = None if cfg.slo_ms is None else bool(stats.p99_ms <= cfg.slo_ms and
                                                                  not summary["overloaded"])
    elif cfg.scenario == "single-stream":
        summary = {"metric": "p90_ms", "value": stats.p90_ms}
    # Without the reset (non-Linux) the kernel's peak is the process's lifetime peak: an upper bound.
    peak_rss = _peak_rss_mb()
    desc = runner.describe()
    return RunResult(
        engine=runner.engine,
        model=str(cfg.model),
        precision=desc.get("precision") or runner.config.precision,
        device=runner.device,
        batch=batch,
        scenario=cfg.scenario,
        runner=desc,
        setup_seconds=dict(runner.setup_seconds),
        stats=stats_dict,
        throughput=stats.throughput,
        latencies_ms=[round(float(v), 5) for v in lat] if cfg.keep_latencies else [],
        peak_rss_mb=peak_rss,
        peak_gpu_mb=_peak_gpu_mb(runner.device),
        emulation=emulation,
        timer=timer_kind,
        transfers=transfers,
        warmup_iterations=warm,
        input_shape=list(shape),
        scenario_summary=summary,
    )


def loop_progress(update: Any, iterations: int, seconds: float) -> Any:
    """A closed loop's progress as text for the step's status line: iterations done, time left.

    Time left is the larger of what the duration minimum still needs and what the
    iteration minimum needs at the rate so far.
    """
    def show(done: int, elapsed: float) -> None:
        rate = elapsed / max(done, 1)
        left = max(seconds - elapsed, (iterations - done) * rate, 0.0)
        update(f"{done} iterations, {left:.1f} s left")

    return show


def _mark_offline_best(runs: list[RunResult]) -> None:
    """Offline's headline: each engine's highest throughput over the batch sizes tried."""
    for engine in {r.engine for r in runs}:
        mine = [r for r in runs if r.engine == engine]
        best = max(mine, key=lambda r: r.throughput)
        for r in mine:
            r.scenario_summary = {"metric": "throughput", "value": r.throughput, "best": r is best,
                                  "best_batch": best.batch}


def _check_installed(engine: str, device: str = "cpu", options: dict[str, Any] | None = None) -> None:
    """The engine's runtime (and GPU path) is there: asked of each runner before any engine is timed."""
    from resdeploy.runners import runner_class

    runner_class(engine, device).check_available(device, options or {})


def bench(source: BenchConfig | str | os.PathLike[str], config: BenchConfig | None = None, *,
          reporter: Reporter | None = None, **overrides: Any) -> BenchResult:
    """Measure the model ``source`` on every engine and batch size; returns a ``BenchResult``.

    ``bench("artifacts/resnet50", engines=["torch", "ort"], batches=[1, 8])``: a model path plus
    ``BenchConfig`` fields as keywords; ``bench(path, config)`` takes the settings from ``config``;
    ``bench(BenchConfig(...))`` (earlier releases) works too.
    """
    from resdeploy.machine import fingerprint
    from resdeploy.prepare import prepare_runner_config

    reporter = reporter or QUIET
    if isinstance(source, BenchConfig):
        if config is not None or overrides:
            raise TypeError("pass either a BenchConfig or a model path with a config or keyword overrides")
        config = source
    elif config is not None:
        if overrides:
            raise TypeError("pass either config= or keyword settings, not both")
        config = replace(config, model=str(source))
    else:
        config = BenchConfig(model=str(source), **overrides)
    cfg = config
    cfg.check()
    batches = cfg.resolved_batches()
    fixed = fixed_batch(cfg.model) if cfg.batches is None else None
    if fixed is not None and fixed != 1 and cfg.scenario == "single-stream":
        raise ResdeployError(f"the single-stream scenario runs batch 1, and {cfg.model} fixes a batch of {fixed}",
                             hint="use --scenario offline, or export with a dynamic batch axis")
    if fixed is not None and batches != [fixed]:  # an ONNX Model Zoo file: batch 1, fixed in the graph
        reporter.info(f"{cfg.model} takes a fixed batch of {fixed}: timing batch {fixed} (not the default "
                      f"{','.join(map(str, batches))})")
        batches = [fixed]
    cfg = replace(cfg, batches=batches) if fixed is not None else cfg
    threads = cfg.effective_threads()

    options = dict(cfg.options)
    if cfg.input_size:
        hw = _spatial_size(cfg)
        if hw[0] == hw[1]:
            options.setdefault("input_size", hw[0])  # torch builds zoo models at this size

    def config_for(engine: str, batch: int) -> RunnerConfig:
        return RunnerConfig(engine=engine, model=str(cfg.model), device=cfg.device, precision=cfg.precision,
                            threads=threads, batch_size=batch, options=dict(options))

    def runner_for(engine: str, batch: int) -> Runner:
        # what the runner is given is made first (a TensorRT plan is built and cached here, not by the runner)
        return create_runner(prepare_runner_config(config_for(engine, batch), reporter))

    # Construct one runner per engine first, and check each engine's package is installed;
    # then load each once and check its inputs fit in memory: an engine that cannot run the
    # model (torch given an ONNX file, a missing runtime, a batch too big) fails before
    # minutes of timing the others, not after.
    for engine in cfg.engines:
        _check_installed(engine, cfg.device, options)
        create_runner(config_for(engine, batches[0]))  # constructs only: checks the model and options
    if cfg.data:
        from resdeploy.bench_inputs import check_data

        check_data(cfg.data)
    for i, engine in enumerate(cfg.engines):
        with reporter.step(f"checking that {engine} can run the model"), runner_for(engine, batches[0]) as probe:
            for batch in batches:
                check_memory(_filled_shape(probe, batch, cfg), cfg.buffers, f"{engine} batch {batch}")
            if i == 0:
                if cfg.data:  # the data fits the model (shape, pixels) before any engine is timed
                    from resdeploy.bench_inputs import real_inputs
                    from resdeploy.onnx_io import GraphInput

                    real_inputs(cfg.data, str(cfg.model), _filled_shape(probe, batches[0], cfg), 1, cfg.seed,
                                graph=GraphInput.of(probe.input_meta()), flags=cfg.preprocess_flags())
                for line in input_notes(probe, cfg):
                    reporter.warn(line)

    art = resolve_artifact(cfg.model, onnx_dir=False)  # checks the file against its manifest
    if "ort" in cfg.engines and cfg.device == "cpu":
        from resdeploy.precision.isa import host_warning_for

        if (isa_warning := host_warning_for(cfg.model)) is not None:
            reporter.warn(isa_warning)
    machine = fingerprint(import_torch=cfg.device.startswith("cuda"))
    emulation = emulation_record(cfg, machine)
    sha = art.sha256
    model_name = art.name
    runs: list[RunResult] = []
    with pinned(cfg.cpus):
        for engine in cfg.engines:
            for batch in batches:
                runner = runner_for(engine, batch)
                # Peaks cover load, warm-up and measurement of this runner alone: the memory
                # a deployment of it needs, transient load-time copies included.
                _reset_peak_rss()
                _reset_peak_gpu(cfg.device)
                with reporter.step(f"{engine} batch {batch}") as update:
                    with runner:
                        run = measure(runner, cfg, batch, emulation=emulation, reset_peaks=False,
                                      progress=loop_progress(update, cfg.iterations, cfg.duration))
                run.model_sha256 = sha
                run.model_name = model_name
                runs.append(run)
                s = run.latency
                reporter.info(f"  {engine} batch {batch}: p50 {s.p50_ms:.2f} ms, p99 {s.p99_ms:.2f} ms, "
                              f"{s.throughput:.1f} img/s ({s.count} iterations)")
    if cfg.scenario == "offline":
        _mark_offline_best(runs)
    cfg_dict = asdict(cfg)
    cfg_dict["batches"] = batches
    cfg_dict["threads_effective"] = threads
    return BenchResult(config=cfg_dict, machine=machine, runs=runs)
