"""`resdeploy validate`: accuracy parity of a candidate against its reference, as a CI gate."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from resdeploy.cli.common import (
    PREPROCESS_FLAGS,
    finite_float,
    positive_int,
    preprocess_kwargs,
    threads_option,
    with_preprocess_flags,
)
from resdeploy.cli.ray_flags import ray_address, ray_option

if TYPE_CHECKING:
    from resdeploy.preprocess import PreprocessFlags


def register(app: typer.Typer) -> None:
    """Add the command to the app."""

    @app.command("validate")
    @with_preprocess_flags
    def validate_cmd(
        candidate: str = typer.Argument(..., metavar="CANDIDATE", help="Variant model.onnx or its artifact dir."),
        data: str = typer.Option(..., "--data", "-d", help="Labelled folder (one subfolder per class), image folder, .npy/.npz, or 'synthetic'."),
        reference: str = typer.Option(None, "--reference", help="Default: the FP32 parent in the candidate's manifest; 'torch' for PyTorch; or a model path."),
        engine: str = typer.Option("ort", "--engine", help="Engine that runs the candidate (ort, openvino, trt)."),
        device: str = typer.Option("cpu", "--device", help="Device for the candidate's engine."),
        labels: str = typer.Option(None, "--labels", help="Class name -> index file (.json or one name per line); default: sorted folder names."),
        samples: int = typer.Option(None, "--samples", help="Validate on N samples (seeded); default: all."),
        seed: int = typer.Option(0, "--seed", help="Seed of the sample selection."),
        batch_size: int = typer.Option(32, "--batch-size", "-b", help="Batch size for both models."),
        threads: int = threads_option(),
        max_top1_drop: float = typer.Option(None, "--max-top1-drop", parser=finite_float, help="Gate: top-1 drop in percentage points (e.g. 1.0)."),
        min_top1_ratio: float = typer.Option(None, "--min-top1-ratio", parser=finite_float, help="Gate: candidate/reference top-1 (MLPerf: 0.99)."),
        min_agreement: float = typer.Option(None, "--min-agreement", parser=finite_float, help="Gate: fraction of samples with the reference's top-1 class."),
        max_abs_error: float = typer.Option(None, "--max-abs-error", parser=finite_float, help="Gate: largest absolute logit difference."),
        min_cosine: float = typer.Option(None, "--min-cosine", parser=finite_float, help="Gate: worst per-sample cosine similarity of logits."),
        junit: str = typer.Option(None, "--junit", help="Also write the gates as JUnit XML to this file (for CI)."),
        force: bool = typer.Option(False, "--force", help="Replace an existing --junit file."),
        preprocess: PreprocessFlags = PREPROCESS_FLAGS,  # --input-size, --layout, --preprocess, --resize, --mean, --std
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
        ray: str = ray_option(),
        ray_workers: int = typer.Option(None, "--ray-workers", parser=positive_int,
                                        help="With --ray: workers (default: the cluster's CPUs / --threads)."),
    ) -> None:
        """Compare a candidate with its reference; exit 1 when a gate fails, 2 on bad input.

        Default gate: on labelled data, candidate top-1 >= 99% of the reference's (MLPerf);
        on unlabelled data, top-1 agreement >= 0.99. Any gate flag replaces the default.
        """
        from resdeploy.artifacts import check_output_file
        from resdeploy.console import Reporter
        from resdeploy.validation import ValidateConfig, validate, write_junit

        cfg = ValidateConfig(
            data=data, reference=reference, engine=engine, device=device, threads=threads, batch_size=batch_size,
            samples=samples, seed=seed, labels=labels, max_top1_drop=max_top1_drop, min_top1_ratio=min_top1_ratio,
            min_agreement=min_agreement, max_abs_error=max_abs_error, min_cosine=min_cosine, **preprocess_kwargs(preprocess),
        )
        if junit:
            # before the run: a long validation must not end in "cannot write" or "already exists"
            check_output_file(junit, force=force, flag="--junit", example="validate.xml")
        rep = Reporter.for_command(quiet, json_out)
        if ray_workers is not None and ray is None:
            from resdeploy.errors import ResdeployError

            raise ResdeployError("--ray-workers applies with --ray only")
        if ray is not None:
            from resdeploy.scale.ray_validate import validate_on_ray

            result = validate_on_ray(candidate, config=cfg, address=ray_address(ray), workers=ray_workers, reporter=rep)
        else:
            result = validate(candidate, config=cfg, reporter=rep)
        if junit:
            write_junit(result, junit, force=force)
        for w in result.warnings:
            rep.warn(w)
        if json_out:
            from resdeploy.cli.common import emit_json

            emit_json(result.to_dict())
        else:
            print_result(result)
        if not result.passed:
            from resdeploy.errors import GateFailure

            # Exit code 1 ("the model got worse"), distinct from 2 ("the job was set up wrong").
            raise GateFailure("validation failed: " + "; ".join(
                f"{g.name} {g.value:.4g} not {g.op} {g.threshold:g}" for g in result.failures()))


def print_result(result) -> None:  # noqa: ANN001 - ValidateResult, imported lazily
    """The result as tables: accuracy and parity, then each gate with PASS/FAIL."""
    from rich.markup import escape
    from rich.table import Table

    from resdeploy.console import stdout

    title = f"{result.candidate['path']} vs {result.reference['path']} ({result.reference['engine']}) on {result.samples} samples"
    table = Table(title=escape(title))  # paths are text, not markup
    table.add_column("metric")
    table.add_column("reference", justify="right")
    table.add_column("candidate", justify="right")
    table.add_column("difference", justify="right")
    if result.accuracy:
        for k in ("top1", "top5"):
            r, c = result.accuracy["reference"][k], result.accuracy["candidate"][k]
            table.add_row(f"{k[:3]}-{k[3:]} accuracy", f"{100 * r:.2f}%", f"{100 * c:.2f}%", f"{100 * (c - r):+.2f} pt")
    p = result.parity
    table.add_row("top-1 agreement", "", f"{100 * p['top1_agreement']:.2f}%", "")
    table.add_row("top-5 set agreement", "", f"{100 * p['top5_agreement']:.2f}%", "")
    table.add_row("cosine similarity (min / mean)", "", f"{p['cosine_min']:.5f} / {p['cosine_mean']:.5f}", "")
    table.add_row("max abs error (logits)", "", f"{p['max_abs_error']:.4g}", f"mean {p['mean_abs_error']:.3g}")
    stdout.print(table)
    gates = Table(title="gates")
    gates.add_column("gate")
    gates.add_column("value", justify="right")
    gates.add_column("threshold", justify="right")
    gates.add_column("samples", justify="right")
    gates.add_column("result")
    for g in result.gates:
        gates.add_row(g.name, f"{g.value:.4f}", f"{g.op} {g.threshold:g}", str(g.samples),
                      "[green]PASS[/]" if g.passed else "[red]FAIL[/]")
    stdout.print(gates)
    stdout.print("[bold green]PASSED[/]" if result.passed else "[bold red]FAILED[/]: " +
                 "; ".join(f"{g.name} {g.value:.4f} not {g.op} {g.threshold:g}" for g in result.failures()))
