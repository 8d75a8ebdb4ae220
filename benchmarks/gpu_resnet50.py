"""ResNet-50 FP16 on one NVIDIA GPU without TensorRT: PyTorch eager, eager + CUDA graph,
torch.compile, and ONNX Runtime CUDA, side by side in one run (issue 6).

    PYTHONUNBUFFERED=1 python benchmarks/gpu_resnet50.py --out results/  # torch rows: 2 min 20 s on an H100 (2026-11-23)

Everything goes through resdeploy's own path: the zoo builds ResNet-50 (random init,
seeded and calibrated: speed does not depend on the weights), resdeploy's exporter and
``quantize(precision="fp16")`` make the FP16 ONNX graph (when onnxconverter-common is
missing, a ``.half()`` model is exported directly and the log says so), the runners in
``resdeploy.runners`` run each engine, and ``resdeploy.benchmark.measure`` (the loop behind
``resdeploy bench``) times them with CUDA events on device-resident inputs (``--no-transfers``),
one inference at a time, summarised by ``resdeploy.stats.LatencyStats``. Each case is also checked against the FP32 eager model
(``resdeploy.compare.parity_metrics``) on fresh random inputs.

The GPU's dense FP16 peak is measured in the same run (a large FP16 matrix product), and
the fraction of it achieved is printed next to the datasheet figure (H100 SXM: 989 TFLOP/s
dense FP16). ResNet-50 at 224x224 is about 4.1 GMACs = 8.2 GFLOP per image.

Writes ``gpu_resnet50.json`` (everything) under ``--out`` and prints one table last.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

GMACS_PER_IMAGE = 4.1  # ResNet-50 at 224x224 (He et al. 2015: 3.8-4.1 GFLOPs counted as multiply-adds)
DATASHEET_FP16_DENSE_TFLOPS = {"H100 80GB HBM3": 989.4, "H100 SXM": 989.4, "H100 PCIe": 756.0, "H200": 989.4}
ENGINES = ("eager", "eager+graph", "ort", "compile", "compile+graph")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def fingerprint() -> dict[str, Any]:
    import torch

    from resdeploy import machine

    fp = machine.fingerprint(import_torch=True)
    fp["date_utc"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    fp["nvidia_smi"] = sh(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm,"
                           "clocks.sm,power.limit,pstate,temperature.gpu", "--format=csv"])
    fp["torch"] = torch.__version__
    fp["torch_cuda"] = torch.version.cuda
    fp["cudnn"] = torch.backends.cudnn.version()
    try:
        import triton

        fp["triton"] = triton.__version__
    except ImportError:
        fp["triton"] = None
    try:
        import onnxruntime as ort

        fp["onnxruntime"] = {"version": ort.__version__, "file": ort.__file__,
                             "providers": ort.get_available_providers()}
    except ImportError:
        fp["onnxruntime"] = None
    fp["python"] = platform.python_version()
    return fp


def measure_peaks() -> dict[str, Any]:
    """The two ceilings (METHOD.md): dense FP16 matrix rate and device memory bandwidth."""
    import torch

    out: dict[str, Any] = {}
    n = 8192
    g = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(n, n, device="cuda", dtype=torch.float16, generator=g)
    b = torch.randn(n, n, device="cuda", dtype=torch.float16, generator=g)
    for _ in range(5):
        a @ b
    times = []
    for _ in range(20):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        a @ b
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e))
    ms = float(np.median(times))
    out["matmul_fp16"] = {"n": n, "median_ms": ms, "tflops": 2 * n**3 / (ms * 1e-3) / 1e12}
    del a, b
    x = torch.empty(1 << 30, dtype=torch.uint8, device="cuda").random_(0, 255)
    y = torch.empty_like(x)
    for _ in range(3):
        y.copy_(x)
    times = []
    for _ in range(10):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        y.copy_(x)
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e))
    ms = float(np.median(times))
    out["copy_d2d"] = {"bytes": 2 * x.numel(), "median_ms": ms, "tb_per_s": 2 * x.numel() / (ms * 1e-3) / 1e12}
    del x, y
    torch.cuda.empty_cache()
    return out


def make_artifacts(root: Path) -> dict[str, Any]:
    """FP32 ONNX through resdeploy's exporter, FP16 through resdeploy.quantize (or a direct FP16 export)."""
    info: dict[str, Any] = {}
    fp32_dir, fp16_dir = root / "fp32", root / "fp16"
    t0 = time.perf_counter()
    try:
        from resdeploy.exporter import ExportConfig, export

        res = export("resnet50", fp32_dir, ExportConfig(force=True))
        info["fp32"] = {"path": str(res.model_path), "via": "resdeploy.exporter.export", "parity": res.passed}
    except Exception as exc:  # noqa: BLE001 - log and fall back, the benchmark should still run
        info["fp32_error"] = f"{type(exc).__name__}: {exc}"
        log(f"resdeploy export failed ({info['fp32_error'][:200]})")
    info["export_seconds"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    if "fp32" in info:
        try:
            import onnxconverter_common  # noqa: F401

            from resdeploy.precision import QuantizeConfig, quantize

            q = quantize(str(fp32_dir), config=QuantizeConfig(precision="fp16", output=str(fp16_dir), force=True))
            info["fp16"] = {"path": str(q.model_path), "via": "resdeploy.precision.quantize(fp16), FP32 I/O"}
        except Exception as exc:  # noqa: BLE001
            info["fp16_quantize_error"] = f"{type(exc).__name__}: {exc}"
            log(f"resdeploy quantize fp16 not usable here ({info['fp16_quantize_error'][:200]})")
    if "fp16" not in info:
        info["fp16"] = {"path": str(export_half_directly(fp16_dir)),
                        "via": "torch.onnx.export of the zoo model cast with .half() (FP32 I/O, Cast at the edges)"}
    info["fp16_seconds"] = round(time.perf_counter() - t0, 2)
    return info


def export_half_directly(out_dir: Path) -> Path:
    """Fallback: the zoo's ResNet-50 (same seed) in FP16 with FP32 input/output casts."""
    import torch

    from resdeploy.models.zoo import create_model

    model = create_model("resnet50", seed=0).half().eval()

    class Casted(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.m(x.half()).float()

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.onnx"
    torch.onnx.export(Casted().eval(), (torch.randn(1, 3, 224, 224),), str(path), input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=18, dynamo=False)
    return path


def time_runner(runner: Any, batch: int, model: str, args: argparse.Namespace) -> dict[str, Any]:
    """resdeploy's own measurement (``benchmark.measure``): CUDA events, device-resident inputs."""
    from resdeploy.benchmark import BenchConfig, measure

    cfg = BenchConfig(model=model, engines=[runner.engine], device="cuda", batches=[batch], transfers=False,
                      warmup_iterations=5, warmup_seconds=args.warmup_seconds, iterations=args.min_iters,
                      duration=args.seconds, buffers=3, keep_latencies=False)
    rr = measure(runner, cfg, batch)
    return {"stats": rr.stats, "timer": rr.timer, "peak_gpu_mb": rr.peak_gpu_mb, "transfers": rr.transfers}


def parse_engine(token: str, default_mode: str) -> dict[str, Any]:
    """'eager' | 'eager+graph' | 'ort' | 'compile[:MODE][:nofreeze]' | 'compile+graph[:MODE][:nofreeze]',
    each optionally '@1+256' (batches).

    'compile+graph' is Inductor's kernels (a mode without its own CUDA graphs, "default" unless
    given) captured by the runner into one ``torch.cuda.CUDAGraph``: a call is then one graph
    launch, with no Dynamo guards or cudagraph-tree bookkeeping on the host.
    """
    name, _, only = token.partition("@")
    parts = name.split(":")
    spec: dict[str, Any] = {"label": name, "kind": parts[0], "batches": [int(b) for b in only.split("+") if b]}
    if spec["kind"] not in ("eager", "eager+graph", "ort", "compile", "compile+graph"):
        raise SystemExit(f"unknown engine '{token}'")
    if spec["kind"] in ("compile", "compile+graph"):
        fallback = default_mode if spec["kind"] == "compile" else "default"
        spec["mode"] = next((p for p in parts[1:] if p != "nofreeze"), fallback)
        spec["freeze"] = "nofreeze" not in parts[1:]
    return spec


def run_case(spec: dict[str, Any], batch: int, art: dict[str, Any], args: argparse.Namespace,
             ref_cache: dict[int, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    import torch

    from resdeploy.compare import parity_metrics
    from resdeploy.runners import RunnerConfig, create_runner

    kind = spec["kind"]
    if kind == "ort":
        cfg = RunnerConfig(engine="ort", model=art["fp16"]["path"], device="cuda", batch_size=batch,
                           options={"cuda_graph": True, "nhwc": True, "cudnn_search": "EXHAUSTIVE"})
    else:
        opts: dict[str, Any] = {"channels_last": True}
        if kind == "eager+graph":
            opts["cuda_graph"] = True
        if kind in ("compile", "compile+graph"):
            opts["compile"] = spec["mode"]
            opts["freeze"] = spec["freeze"]
        if kind == "compile+graph":
            opts["cuda_graph"] = True
        cfg = RunnerConfig(engine="torch", model=art.get("fp32", {}).get("path") or "resnet50", device="cuda",
                           precision="fp16", batch_size=batch, options=opts)
    counters_before = _counters()
    t0 = time.perf_counter()
    with create_runner(cfg) as runner:
        load_s = time.perf_counter() - t0
        x, ref = ref_cache[batch]
        out = runner.infer(x)
        parity = parity_metrics(ref, out).to_dict()
        timing = time_runner(runner, batch, cfg.model, args)
        stats = timing.pop("stats")
        desc = runner.describe()
    counters = _counters_delta(counters_before, _counters())
    if kind.startswith("compile"):
        torch._dynamo.reset()
    gc.collect()
    torch.cuda.empty_cache()
    ok = parity["cosine_min"] >= 0.999 and parity["top1_agreement"] >= 0.9
    return {"engine": spec["label"], "batch": batch, "stats": stats, "parity": parity, "parity_ok": ok,
            "setup_seconds": desc.get("setup_seconds", {}), "load_seconds": round(load_s, 2), "runner": desc,
            "counters": counters, **timing}


def _counters() -> dict[str, dict[str, int]]:
    """Dynamo/Inductor counters (recompiles, cudagraph skips) to explain a surprising number."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return {}
    return {k: dict(v) for k, v in counters.items()}


def _counters_delta(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for group, vals in after.items():
        for key, val in vals.items():
            diff = val - before.get(group, {}).get(key, 0)
            if diff:
                out[f"{group}.{str(key)[:120]}"] = diff
    return out


def references(batches: list[int], art: dict[str, Any]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """FP32 eager logits (TF32 off) on fresh random inputs, one batch per size."""
    import torch

    from resdeploy.runners import RunnerConfig, create_runner

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    out = {}
    cfg = RunnerConfig(engine="torch", model=art.get("fp32", {}).get("path") or "resnet50", device="cuda",
                       precision="fp32", options={"channels_last": False})
    with create_runner(cfg) as runner:
        rng = np.random.default_rng(2026)
        for b in batches:
            x = rng.standard_normal((b, 3, 224, 224)).astype(np.float32)
            out[b] = (x, runner.infer(x))
    torch.backends.cudnn.allow_tf32 = True
    return out


def table(rows: list[dict[str, Any]], peak_tflops: float, datasheet: float | None) -> str:
    head = f"{'engine':<26} {'batch':>5} {'p50 ms':>9} {'images/s':>10} {'%peak(meas)':>11} {'%peak(sheet)':>12} {'parity':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['engine']:<26} {r['batch']:>5}  {r['error'][:90]}")
            continue
        tput = r["stats"]["throughput"]
        tflops = tput * 2 * GMACS_PER_IMAGE * 1e9 / 1e12
        sheet = f"{100 * tflops / datasheet:11.1f}%" if datasheet else f"{'n/a':>12}"
        lines.append(f"{r['engine']:<26} {r['batch']:>5} {r['stats']['p50_ms']:>9.3f} {tput:>10.0f} "
                     f"{100 * tflops / peak_tflops:>10.1f}% {sheet} {'ok' if r['parity_ok'] else 'FAIL':>7}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.environ.get("OUT", "artifacts/gpu-bench"))
    p.add_argument("--work", default="/tmp/resdeploy-gpu-bench", help="where the ONNX artifacts go")
    p.add_argument("--batches", default="1,8,64,256")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--compile-mode", default="reduce-overhead",
                   help="Inductor mode for the compile engine (max-autotune compiles for minutes per batch size)")
    p.add_argument("--seconds", type=float, default=2.0, help="measured seconds per case")
    p.add_argument("--warmup-seconds", type=float, default=0.5)
    p.add_argument("--min-iters", type=int, default=50)
    p.add_argument("--budget-seconds", type=float, default=450.0, help="skip remaining cases after this")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*will be truncated to.*")  # onnxconverter-common, per weight
    t_start = time.perf_counter()
    batches = [int(b) for b in args.batches.split(",")]
    engines = [parse_engine(e, args.compile_mode) for e in args.engines.split(",") if e]
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"schema": "resdeploy.gpu-resnet50/1", "args": vars(args),
                              "gmacs_per_image": GMACS_PER_IMAGE, "rows": []}

    def save() -> None:
        from resdeploy.artifacts import atomic_write_json

        result["elapsed_seconds"] = round(time.perf_counter() - t_start, 1)
        atomic_write_json(out_dir / "gpu_resnet50.json", result, force=True)  # this script's own results folder

    import torch

    if not torch.cuda.is_available():
        print("this benchmark needs an NVIDIA GPU (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    result["machine"] = fingerprint()
    gpu = torch.cuda.get_device_name(0)
    datasheet = next((v for k, v in DATASHEET_FP16_DENSE_TFLOPS.items() if k in gpu), None)
    log(f"{gpu}; torch {torch.__version__}; ORT {result['machine']['onnxruntime']}")
    result["peaks"] = measure_peaks()
    peak = result["peaks"]["matmul_fp16"]["tflops"]
    log(f"measured FP16 matmul {peak:.0f} TFLOP/s (datasheet dense {datasheet}); "
        f"D2D copy {result['peaks']['copy_d2d']['tb_per_s']:.2f} TB/s")
    result["datasheet_fp16_dense_tflops"] = datasheet
    save()
    art = make_artifacts(Path(args.work))
    result["artifacts"] = art
    log(f"artifacts: {json.dumps(art)[:400]}")
    save()
    refs = references(batches, art)
    log("FP32 references done")

    # Priority order: cheap cases first, the two target batches (256, 1) first within compile.
    order = sorted(batches, key=lambda b: (b not in (256, 1), -b))
    for spec in engines:
        engine = spec["label"]
        todo = [b for b in (order if spec["kind"].startswith("compile") else batches) if not spec["batches"] or b in spec["batches"]]
        for batch in todo:
            elapsed = time.perf_counter() - t_start
            if elapsed > args.budget_seconds:
                result["rows"].append({"engine": engine, "batch": batch, "error": f"skipped: budget ({elapsed:.0f} s)"})
                continue
            log(f"{engine} batch {batch} ...")
            try:
                row = run_case(spec, batch, art, args, refs)
                s = row["stats"]
                log(f"  p50 {s['p50_ms']:.3f} ms, {s['throughput']:.0f} img/s, setup {row['setup_seconds']}, "
                    f"cos {row['parity']['cosine_min']:.5f} top1 {row['parity']['top1_agreement']:.3f}; "
                    f"counters {row['counters']}")
            except Exception as exc:  # noqa: BLE001 - one failing engine must not lose the others
                row = {"engine": engine, "batch": batch, "error": f"{type(exc).__name__}: {str(exc)[:400]}",
                       "traceback": traceback.format_exc()[-3000:]}
                log(f"  FAILED: {row['error']}")
                gc.collect()
                torch.cuda.empty_cache()
            result["rows"].append(row)
            save()

    labels = [e["label"] for e in engines]
    rows = sorted(result["rows"], key=lambda r: (labels.index(r["engine"]) if r["engine"] in labels else 99,
                                                 r["batch"]))
    by = {(r["engine"], r["batch"]): r for r in rows if "stats" in r}
    targets: dict[str, Any] = {}
    if ("eager", 256) in by:
        eager = by[("eager", 256)]["stats"]["throughput"]
        best = max((r for (e, b), r in by.items() if b == 256), key=lambda r: r["stats"]["throughput"])
        targets["b256_speedup_vs_eager"] = {"engine": best["engine"],
                                            "ratio": best["stats"]["throughput"] / eager, "target": 1.8}
    b1 = [r for (e, b), r in by.items() if b == 1]
    if b1:
        best1 = min(b1, key=lambda r: r["stats"]["p50_ms"])
        targets["b1_p50_ms"] = {"engine": best1["engine"], "p50_ms": best1["stats"]["p50_ms"], "target": 0.45}
    result["targets"] = targets
    save()
    print()
    print(f"ResNet-50 FP16, {gpu}, driver {result['machine']['gpus'][0]['driver'] if result['machine']['gpus'] else '?'}, "
          f"torch {torch.__version__}, ORT {(result['machine']['onnxruntime'] or {}).get('version')}, "
          f"{result['machine']['date_utc']}")
    print(f"dense FP16 peak: measured {peak:.0f} TFLOP/s (8192^3 matmul), datasheet {datasheet} TFLOP/s; "
          f"{2 * GMACS_PER_IMAGE:.1f} GFLOP/image; compile mode {args.compile_mode}; "
          f"FP16 ONNX via {art['fp16']['via'].split(' ')[0]}")
    print(table(rows, peak, datasheet))
    for k, v in targets.items():
        print(f"target {k}: {json.dumps(v)}")
    print(f"total {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
