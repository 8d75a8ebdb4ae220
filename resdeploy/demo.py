"""The whole job on real images, in a few minutes on a laptop CPU: what ``make demo`` runs.

A model with random weights has no accuracy worth checking, and pretrained ImageNet
weights cannot be fetched everywhere; scikit-learn's 1,797 handwritten digits ship inside
its wheel. So the demo trains ResNet-20 on them (``resdeploy.training``), exports it,
makes FP16 and INT8 (``--target cpu``) variants, validates every variant on held-out
digits, times PyTorch, ONNX Runtime and OpenVINO at batch 1 and 8, writes ``report.html``
and ends with the table a deployment engineer decides from: each variant's top-1, its
drop against FP32, p50 latency at batch 1, images/s at batch 8 and the speed-up.

Each step is the library call a user would make (the same as the CLI commands), so the
demo is also an example of the API. Run it with ``python -m resdeploy.demo``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from resdeploy.console import QUIET, Reporter
from resdeploy.errors import ResdeployError

MODEL = "resnet20"
INPUT_SIZE = 16  # the 8x8 scans upsampled 2x by the model's preprocessing
VARIANTS = ("fp32", "fp16", "int8-cpu")
DEMO_MARKER = ".resdeploy-demo"  # marks a folder the demo may replace (it deletes nothing else)


@dataclass
class DemoConfig:
    output: str = "artifacts/demo"
    epochs: int = 4
    engines: list[str] = field(default_factory=lambda: ["torch", "ort", "openvino"])
    batches: list[int] = field(default_factory=lambda: [1, 8])
    duration: float = 2.0  # seconds per (engine, batch): minimum, as in bench
    calib_samples: int = 256
    threads: int | None = None
    seed: int = 0
    force: bool = False


@dataclass
class DemoRow:
    """One line of the final table: a variant on one engine."""

    variant: str
    engine: str
    top1: float | None  # percent, measured with ONNX Runtime (torch: the FP32 model itself)
    drop_points: float | None  # FP32 top-1 minus this variant's, in percentage points
    p50_ms_b1: float | None
    images_per_s: float | None  # at the largest batch
    speedup: float | None  # images/s against PyTorch FP32 at the same batch


@dataclass
class DemoResult:
    rows: list[DemoRow]
    report: Path
    seconds: float
    steps: dict[str, float]
    throughput_batch: int

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [asdict(r) for r in self.rows], "report": str(self.report), "seconds": self.seconds,
                "steps": self.steps, "throughput_batch": self.throughput_batch}


def run_demo(config: DemoConfig | None = None, *, reporter: Reporter = QUIET) -> DemoResult:
    """Train, export, quantize, validate, bench and report under ``config.output``.

    The folder is rebuilt from scratch (``force`` replaces an earlier run): its manifests
    name files by absolute path, so it is built in place rather than renamed into place;
    each artifact inside it is still written atomically.
    """
    import resdeploy
    from resdeploy.artifacts import atomic_write_json, check_writable_dir
    from resdeploy.benchmark import BenchConfig
    from resdeploy.datasets import write_digits
    from resdeploy.exporter import ExportConfig
    from resdeploy.reporting import ReportConfig
    from resdeploy.training import TrainConfig, train

    cfg = config or DemoConfig()
    out = Path(cfg.output).resolve()
    if out.exists() and not cfg.force:
        raise ResdeployError(f"{out} already exists; pass --force to replace it")
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / DEMO_MARKER).is_file())):
        # `python -m resdeploy.demo --output ~/work` replaces an earlier demo, never a folder of the user's
        raise ResdeployError(f"{out} exists and is not a folder an earlier demo wrote; nothing was deleted",
                             hint="pass another --output (a new or empty folder, or an earlier demo's)")
    check_writable_dir(out.parent)
    if out.exists():
        shutil.rmtree(out)
    t_start = time.perf_counter()
    results = out / "results"
    results.mkdir(parents=True)
    (out / DEMO_MARKER).write_text("written by resdeploy.demo; the next demo run may replace this folder\n")

    with reporter.step("write digits as PNG folders"):
        folders = write_digits(out / "data", seed=cfg.seed)
    reporter.info(f"{folders.train_images} training and {folders.val_images} held-out images in {out / 'data'}")
    trained = train(TrainConfig(data=str(folders.train), output=str(out / "trained"), model=MODEL,
                                epochs=cfg.epochs, input_size=INPUT_SIZE, flip=False, seed=cfg.seed,
                                threads=cfg.threads), reporter=reporter)
    art = out / MODEL
    paths: dict[str, Path] = {}
    fp32 = resdeploy.export(MODEL, ExportConfig(), output_dir=art / "fp32", weights=str(trained.output),
                            reporter=reporter)
    paths["fp32"] = Path(fp32.model_path)
    with reporter.step("quantize fp16"):
        paths["fp16"] = Path(resdeploy.quantize(paths["fp32"], precision="fp16").model_path)
    paths["int8-cpu"] = Path(resdeploy.quantize(paths["fp32"], precision="int8", target="cpu",
                                                calib_data=str(folders.train), calib_samples=cfg.calib_samples,
                                                seed=cfg.seed,
                                                reporter=reporter).model_path)

    top1: dict[str, float] = {}
    for variant in VARIANTS:
        with reporter.step(f"validate {variant} on {folders.val_images} held-out digits"):
            v = resdeploy.validate(paths[variant], reference="torch" if variant == "fp32" else None,
                                   data=str(folders.val), threads=cfg.threads)
        atomic_write_json(results / f"validate-{variant}.json", v.to_dict(), force=False)
        assert v.accuracy is not None
        top1[variant] = 100.0 * v.accuracy["candidate"]["top1"]
        if variant == "fp32":
            top1["torch"] = 100.0 * v.accuracy["reference"]["top1"]

    runs: dict[tuple[str, str, int], Any] = {}
    bench_files = []
    for variant in VARIANTS:
        engines = [e for e in cfg.engines if e != "torch" or variant == "fp32"]  # torch runs the FP32 model only
        with reporter.step(f"bench {variant}: {', '.join(engines)} at batch {', '.join(map(str, cfg.batches))}"):
            b = resdeploy.bench(BenchConfig(model=str(paths[variant]), engines=engines, batches=list(cfg.batches),
                                            duration=cfg.duration, threads=cfg.threads, seed=cfg.seed))
        bench_files.append(b.save(results / f"bench-{variant}.json"))
        for r in b.runs:
            runs[(variant, r.engine, r.batch)] = r

    report_path = out / "report.html"
    with reporter.step("report"):
        resdeploy.report([*bench_files, *sorted(results.glob("validate-*.json"))],
                         ReportConfig(output=str(report_path), title="resdeploy demo: ResNet-20 on handwritten digits"))
    rows = _rows(runs, top1, cfg.batches)
    result = DemoResult(rows, report_path, round(time.perf_counter() - t_start, 1), dict(reporter.timings),
                        max(cfg.batches))
    atomic_write_json(out / "demo.json", result.to_dict(), force=False)  # a folder made afresh above
    return result


def _rows(runs: dict[tuple[str, str, int], Any], top1: dict[str, float], batches: list[int]) -> list[DemoRow]:
    small, big = min(batches), max(batches)
    base = runs.get(("fp32", "torch", big))
    rows = []
    for variant in VARIANTS:
        for engine in ("torch", "ort", "openvino"):
            r1, rb = runs.get((variant, engine, small)), runs.get((variant, engine, big))
            if r1 is None and rb is None:
                continue
            acc = top1["torch"] if engine == "torch" else top1.get(variant)
            rows.append(DemoRow(
                variant=variant, engine=engine, top1=acc,
                drop_points=None if acc is None else round(top1["fp32"] - acc, 2),
                p50_ms_b1=r1.latency.p50_ms if r1 is not None else None,
                images_per_s=rb.throughput if rb is not None else None,
                speedup=(rb.throughput / base.throughput) if rb is not None and base is not None else None,
            ))
    return rows


def table(result: DemoResult) -> Any:
    """The demo's closing table (rich)."""
    from rich.table import Table

    t = Table(title=f"ResNet-20 on held-out digits: accuracy and speed (speed-up: images/s at batch "
                    f"{result.throughput_batch} against PyTorch FP32)")
    for col in ("variant", "engine", "top-1 %", "drop vs FP32 (points)", "p50 batch 1 (ms)",
                f"images/s batch {result.throughput_batch}", "speed-up"):
        t.add_column(col, justify="left" if col in ("variant", "engine") else "right")
    for r in result.rows:
        t.add_row(r.variant, r.engine, _f(r.top1, "{:.2f}"), _f(r.drop_points, "{:+.2f}"), _f(r.p50_ms_b1, "{:.3f}"),
                  _f(r.images_per_s, "{:,.0f}"), _f(r.speedup, "{:.2f}x"))
    return t


def markdown_table(result: DemoResult) -> str:
    """The same table in Markdown (what README shows)."""
    head = ["variant", "engine", "top-1 %", "drop vs FP32 (points)", "p50 batch 1 (ms)",
            f"images/s batch {result.throughput_batch}", "speed-up"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 5) + "|"]
    for r in result.rows:
        lines.append("| " + " | ".join([r.variant, r.engine, _f(r.top1, "{:.2f}"), _f(r.drop_points, "{:+.2f}"),
                                        _f(r.p50_ms_b1, "{:.3f}"), _f(r.images_per_s, "{:,.0f}"),
                                        _f(r.speedup, "{:.2f}x")]) + " |")
    return "\n".join(lines)


def _f(v: float | None, fmt: str) -> str:
    return "-" if v is None else fmt.format(v)


def main(argv: list[str] | None = None) -> int:
    """``python -m resdeploy.demo [--output DIR] [--epochs N] [--quick]``: one line and exit 2 on bad input."""
    from resdeploy.console import stderr, stdout

    parser = argparse.ArgumentParser(prog="python -m resdeploy.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="artifacts/demo", metavar="DIR", help="where everything goes")
    parser.add_argument("--epochs", type=int, default=4, metavar="N", help="training epochs (default 4)")
    parser.add_argument("--duration", type=float, default=2.0, metavar="SECONDS",
                        help="minimum timed seconds per engine and batch (default 2)")
    parser.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads for every engine")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    args = parser.parse_args(argv)
    cfg = DemoConfig(output=args.output, epochs=args.epochs, duration=args.duration, threads=args.threads, force=True)
    try:
        result = run_demo(cfg, reporter=Reporter(quiet=args.quiet))
    except ResdeployError as exc:
        stderr.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
        return exc.exit_code
    stdout.print(table(result))
    stdout.print(f"report: {result.report}  ({result.seconds:.0f} s in all)", highlight=False)
    if args.markdown:
        stdout.print(markdown_table(result), highlight=False, markup=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
