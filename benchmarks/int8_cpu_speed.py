"""ResNet-50, batch 1, ONNX Runtime CPU: FP32 vs INT8 (--target cpu): 7-bit vs 8-bit weights, u8 vs s8 activations.

    python benchmarks/int8_cpu_speed.py [--rounds 15] [--iters 20] [--out benchmarks/results/int8_cpu_speed.json]

The variants run interleaved in one process (round 1: FP32, u8, s8; round 2: ...), so
a busy neighbour or a clock change hits all of them alike; the table reports median
latencies over all rounds and the FP32/INT8 ratio. Calibration uses the sample set in
calibration/sample; speed does not depend on weights, so the model is the zoo's
seeded random-init ResNet-50 (its accuracy is meaningless, its speed is real).

The loop is a plain ``perf_counter`` loop around ``runner.infer`` (not
``resdeploy.bench``, which measures one model after another rather than interleaved);
statistics come from ``resdeploy.stats.LatencyStats``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", default="artifacts/bench-int8/resnet50")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--iters", type=int, default=20, help="timed inferences per variant per round")
    ap.add_argument("--threads", type=int, default=None, help="ORT intra-op threads (default: ORT's choice)")
    ap.add_argument("--calib-data", default=str(ROOT / "calibration" / "sample"))
    ap.add_argument("--out", default="benchmarks/results/int8_cpu_speed.json")
    args = ap.parse_args()

    import resdeploy
    from resdeploy.artifacts import atomic_write_json, package_versions, utc_now
    from resdeploy.console import Reporter
    from resdeploy.runners import RunnerConfig, create_runner
    from resdeploy.stats import LatencyStats

    rep = Reporter()
    art = Path(args.artifacts)
    fp32 = art / "fp32" / "model.onnx"
    if not fp32.exists():
        resdeploy.export("resnet50", art / "fp32", reporter=rep)
    variants = {"fp32": fp32}
    u8 = art / "int8-cpu"
    if not (u8 / "model.onnx").exists():
        resdeploy.quantize(fp32, precision="int8", target="cpu", calib_data=args.calib_data, calib_samples=32,
                           reporter=rep)
    variants["int8 u8, 7-bit w (default)"] = u8 / "model.onnx"
    saved = str(u8 / "calibration_ranges.json")
    full = art / "int8-cpu-vnni"
    if not (full / "model.onnx").exists():
        resdeploy.quantize(fp32, precision="int8", target="cpu", cpu="vnni", ranges=saved, output=str(full),
                           reporter=rep)
    variants["int8 u8, 8-bit w (--cpu vnni)"] = full / "model.onnx"
    s8 = art / "int8-cpu-s8act"
    if not (s8 / "model.onnx").exists():
        resdeploy.quantize(fp32, precision="int8", target="cpu", activation_type="int8", cpu="vnni",
                           ranges=saved, output=str(s8), reporter=rep)
    variants["int8 s8 act, 8-bit w"] = s8 / "model.onnx"

    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    runners = {k: create_runner(RunnerConfig(engine="ort", model=str(p), threads=args.threads)).__enter__()
               for k, p in variants.items()}
    lat: dict[str, list[float]] = {k: [] for k in runners}
    wall: dict[str, float] = dict.fromkeys(runners, 0.0)
    try:
        for r in runners.values():  # warm-up
            for _ in range(5):
                r.infer(x)
        for rnd in range(args.rounds):
            for name, r in runners.items():
                t_round = time.perf_counter()
                for _ in range(args.iters):
                    t0 = time.perf_counter()
                    r.infer(x)
                    lat[name].append((time.perf_counter() - t0) * 1e3)
                wall[name] += time.perf_counter() - t_round
            print(f"round {rnd + 1}/{args.rounds}", file=sys.stderr)
    finally:
        for r in runners.values():
            r.__exit__(None, None, None)

    stats = {k: LatencyStats.from_latencies(v, images=len(v), wall_seconds=wall[k]) for k, v in lat.items()}
    base = stats["fp32"].p50_ms
    from resdeploy.machine import cpu_flags

    print(f"\nResNet-50, batch 1, ONNX Runtime CPU, {cpu_model()}, {os.cpu_count()} logical CPUs, "
          f"flags: {' '.join(cpu_flags())}")
    print(f"{'variant':32s} {'p50 ms':>9s} {'p90 ms':>9s} {'speed-up vs FP32 (p50)':>24s}")
    for k, s in stats.items():
        print(f"{k:32s} {s.p50_ms:9.2f} {s.p90_ms:9.2f} {base / s.p50_ms:23.2f}x")
    result = {
        "schema": "resdeploy.int8-cpu-speed/1", "created": utc_now(), "cpu": cpu_model(), "cpus": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "threads": args.threads, "rounds": args.rounds, "iters_per_round": args.iters,
        "versions": package_versions(["onnxruntime", "onnx", "torch", "numpy"]),
        "python": platform.python_version(),
        "variants": {k: {"model": str(variants[k]), "stats": s.to_dict(), "speedup_p50": base / s.p50_ms}
                     for k, s in stats.items()},
    }
    atomic_write_json(args.out, result, force=True)  # rerunning the script refreshes its results
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
