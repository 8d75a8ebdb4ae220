"""Trust in the harness, and README's CPU table, from one run on one machine.

Two things, in one process, on the same CPU, in the same minutes:

1. **Harness overhead.** For ResNet-18 and ResNet-50 at batch 1 and 8, the same ONNX
   Runtime session is timed by resdeploy's measurement (``benchmark.measure``: the exact
   code ``resdeploy bench`` runs) and by a bare tight loop (``session.run`` between two
   ``perf_counter`` calls), in interleaved rounds (A B B A A B ...) so that drift in
   clock speed or background load hits both sides alike. resdeploy's median must be
   within 3% of the bare loop's.
2. **README's CPU table.** ``resdeploy.bench`` on PyTorch eager, ONNX Runtime FP32 and
   INT8 (a Q/DQ variant from ``resdeploy.quantize``, calibrated on ``calibration/sample``;
   latency only: random-init weights), and OpenVINO, for both models at batch 1 and 8. Each is saved as a
   ``resdeploy.bench/1`` result, so ``resdeploy report`` can merge them with runs from
   other machines.

Usage::

    python benchmarks/cpu_harness.py                 # full run (about 15-25 min on 2 cores)
    python benchmarks/cpu_harness.py --quick         # smoke run: resnet18, short loops (~2-3 min)
    python benchmarks/cpu_harness.py --out results/cpu --threads 2

Exit code 1 when the harness check fails (resdeploy's median > 3% off the bare loop).
Run it on a quiet machine: other processes on the same cores make both sides noisy.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from resdeploy.artifacts import atomic_write_json, commit_file, read_manifest, utc_now
from resdeploy.benchmark import BenchConfig, bench, input_shape, make_inputs, measure
from resdeploy.console import Reporter, stderr, stdout
from resdeploy.errors import ResdeployError
from resdeploy.machine import fingerprint
from resdeploy.reporting import apply_speedups, markdown_table, rich_table, rows_from, sort_rows
from resdeploy.runners import RunnerConfig, create_runner

TOLERANCE = 0.03
CALIBRATION_SAMPLE = Path(__file__).resolve().parent.parent / "calibration" / "sample"


def ensure_artifacts(name: str, root: Path, rep: Reporter, *, want_int8: bool) -> tuple[Path, Path | None, str]:
    """FP32 export (and INT8 variant) under ``root/name``, reused when already there."""
    import resdeploy

    fp32 = root / name / "fp32"
    if read_manifest(fp32) is None:
        with rep.step(f"export {name}"):
            resdeploy.export(name, fp32, resdeploy.ExportConfig(force=True))
    if not want_int8:
        return fp32, None, "skipped (--no-int8)"
    int8 = root / name / "int8-cpu"
    if read_manifest(int8) is None:
        try:
            with rep.step(f"quantize {name} to int8"):
                resdeploy.quantize(fp32, precision="int8", calib_data=str(CALIBRATION_SAMPLE), calib_samples=32,
                                   output=str(int8), force=True)
        except (ImportError, AttributeError, ResdeployError) as exc:
            return fp32, None, f"not available: {exc}"
    return fp32, int8, "Q/DQ via resdeploy.quantize --target cpu, calibrated on calibration/sample (random-init weights: latency only)"


def harness_check(name: str, model: Path, batch: int, *, threads: int | None, rounds: int, iterations: int,
                  rep: Reporter) -> dict[str, Any]:
    """resdeploy's measurement vs a bare loop over the same ORT session, interleaved."""
    cfg = BenchConfig(model=str(model), engines=["ort"], batches=[batch], threads=threads,
                      warmup_iterations=0, iterations=iterations, duration=0.0, keep_latencies=True)
    ours: list[float] = []
    bare: list[float] = []
    with create_runner(RunnerConfig("ort", str(model), threads=threads, batch_size=batch)) as runner:
        session = runner.session  # the very session resdeploy times
        in_name = runner.input_name
        inputs = make_inputs(input_shape(runner, batch, cfg), cfg.buffers, cfg.seed + batch)
        for _ in range(10):  # shared warm-up, once
            session.run(None, {in_name: inputs[0]})

        def bare_loop() -> None:
            n = len(inputs)
            for i in range(iterations):
                x = inputs[i % n]
                t0 = time.perf_counter()
                session.run(None, {in_name: x})
                bare.append((time.perf_counter() - t0) * 1e3)

        def ours_loop() -> None:
            ours.extend(measure(runner, cfg, batch).latencies_ms)

        for r in range(rounds):
            order = (ours_loop, bare_loop) if r % 2 == 0 else (bare_loop, ours_loop)
            for fn in order:
                fn()
    med_ours, med_bare = float(np.median(ours)), float(np.median(bare))
    diff = med_ours / med_bare - 1.0
    result = {"model": name, "path": str(model), "batch": batch, "rounds": rounds, "iterations_per_round": iterations,
              "resdeploy_p50_ms": med_ours, "bare_p50_ms": med_bare, "difference": diff,
              "passed": abs(diff) <= TOLERANCE, "samples": [len(ours), len(bare)]}
    rep.info(f"  harness {name} batch {batch}: resdeploy {med_ours:.2f} ms, bare {med_bare:.2f} ms "
             f"({diff:+.1%}) {'ok' if result['passed'] else 'FAILED'}")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=None, help="comma-separated zoo names (default resnet18,resnet50)")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the runtime's)")
    ap.add_argument("--artifacts", default="artifacts/harness", help="where exported models are kept (reused)")
    ap.add_argument("--out", default="results/cpu-harness", help="output directory for the JSON results")
    ap.add_argument("--quick", action="store_true", help="smoke run: resnet18 only, short loops")
    ap.add_argument("--no-int8", action="store_true", help="skip the INT8 variant")
    ap.add_argument("--engines", default="torch,ort,ort-int8,openvino")
    args = ap.parse_args(argv)

    models = (args.models or ("resnet18" if args.quick else "resnet18,resnet50")).split(",")
    batches = [int(b) for b in args.batches.split(",")]
    engines = args.engines.split(",")
    # Many short interleaved rounds: background drift lands on both sides alike.
    rounds, iters = (6, 5) if args.quick else (12, 20)
    bench_kw: dict[str, Any] = (dict(iterations=10, duration=0.0, warmup_iterations=3) if args.quick
                                else dict(iterations=50, duration=5.0, warmup_iterations=10))
    rep = Reporter()
    out = Path(args.out)
    root = Path(args.artifacts)
    started = utc_now()
    trust: list[dict[str, Any]] = []
    saved: list[Path] = []
    variants: dict[str, str] = {}
    try:
        for name in models:
            fp32, int8, int8_note = ensure_artifacts(name, root, rep, want_int8=not args.no_int8
                                                     and "ort-int8" in engines)
            variants[name] = int8_note
            for b in batches:
                trust.append(harness_check(name, fp32, b, threads=args.threads, rounds=rounds, iterations=iters, rep=rep))
            jobs = [(e, fp32) for e in ("torch", "ort", "openvino") if e in engines]
            if int8 is not None:
                jobs.insert(2 if "torch" in engines else 1, ("ort", int8))
            for engine, model in jobs:
                label = f"{engine}-{read_manifest(model)['precision']}"  # type: ignore[index]
                res = bench(BenchConfig(model=str(model), engines=[engine], batches=batches, threads=args.threads,
                                        **bench_kw), reporter=rep)
                saved.append(res.save(out / f"bench-{name}-{label}.json", force=True))
    except ResdeployError as exc:
        stderr.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2

    from resdeploy.reporting import load_results

    results = load_results(saved)
    rows = rows_from(results)
    apply_speedups(rows)  # against PyTorch eager (the first engine), model by model
    rows = sort_rows(rows)
    machine = fingerprint()
    summary = {"schema": "resdeploy.cpu-harness/1", "created": started, "finished": utc_now(),
               "machine": machine, "quick": args.quick, "threads": args.threads, "tolerance": TOLERANCE,
               "harness_check": trust, "int8": variants, "bench_results": [str(p) for p in saved],
               "table": [r.to_dict() for r in rows]}
    atomic_write_json(out / "harness.json", summary, force=True)  # the harness's own results folder
    stdout.print(rich_table(rows, title="CPU table"))
    ok = all(t["passed"] for t in trust)
    cpu = machine["cpu"]
    libs = machine["libraries"]
    md = [f"CPU: {cpu['model']}, {cpu['usable_cpus']} cpus; threads: {args.threads or 'runtime default'}; "
          f"torch {libs.get('torch')}, onnxruntime {libs.get('onnxruntime')}, openvino {libs.get('openvino')}; "
          f"{started[:10]}" + (" (quick run: not for publication)" if args.quick else ""), "",
          markdown_table(rows), ""]
    md += ["Harness check (resdeploy's median vs a bare `session.run` loop on the same session, interleaved):", ""]
    md += [f"- {t['model']} batch {t['batch']}: {t['resdeploy_p50_ms']:.2f} ms vs "
           f"{t['bare_p50_ms']:.2f} ms ({t['difference']:+.1%}) {'pass' if t['passed'] else 'FAIL'}" for t in trust]
    commit_file(out / "table.md", "\n".join(md) + "\n", force=True)
    stdout.print("\n".join(md[-len(trust):]), highlight=False)
    stdout.print(f"wrote {out}/harness.json, {out}/table.md and {len(saved)} bench results", highlight=False)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
