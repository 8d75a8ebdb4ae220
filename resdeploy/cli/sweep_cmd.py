"""`resdeploy sweep`: many variants end to end (export -> quantize -> validate -> bench), cached by content."""

from __future__ import annotations

import typer

from resdeploy.cli.ray_flags import ray_address, ray_option


def register(app: typer.Typer) -> None:
    """Add the command to the app."""

    @app.command("sweep")
    def sweep_cmd(
        spec: str = typer.Argument(..., metavar="SPEC", help="Sweep spec (TOML): models, precisions, targets, "
                                                              "calibration, validation, bench."),
        output: str = typer.Option(None, "--output", "-o", help="Cache and results folder (default: the spec's "
                                                                "'output', or sweep-out beside it)."),
        ray: str = ray_option(),
        no_report: bool = typer.Option(False, "--no-report", help="Skip the Markdown report of the benchmarks."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    ) -> None:
        """Run every model x precision x target combination of SPEC; rerunning skips cached work.

        A failed combination is listed with its reason and the others go on; the exit code
        is 1 when any combination failed or failed a validation gate, 2 for a bad spec.
        """
        from resdeploy.console import Reporter
        from resdeploy.scale.sweep import load_spec, sweep

        parsed = load_spec(spec, output)
        rep = Reporter(quiet=quiet or json_out)
        result = sweep(parsed, use_ray=ray is not None, ray_address=ray_address(ray), reporter=rep,
                       write_report=not no_report)
        if json_out:
            from resdeploy.cli.common import emit_json

            emit_json(result.to_dict())
        else:
            print_table(result)
        bad = [c for c in result.combos if not c.ok or c.gates_passed is False]
        if bad:
            from resdeploy.errors import GateFailure

            raise GateFailure(f"{len(bad)} of {len(result.combos)} combination(s) failed or failed a gate")


def print_table(result) -> None:  # noqa: ANN001 - SweepResult, imported lazily
    """Accuracy against speed, one row per combination; failures with their reason."""
    from rich.markup import escape
    from rich.table import Table

    from resdeploy.console import stdout

    table = Table(title=f"sweep: {len(result.combos)} combination(s) in {result.seconds:.1f} s")
    for col, just in (("model", "left"), ("precision", "left"), ("top-1", "right"), ("agreement", "right"),
                      ("gates", "left"), ("p50 ms", "right"), ("img/s", "right"), ("cache", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for c in result.combos:
        prec = c.precision + (f"/{c.target}" if c.target else "")
        if not c.ok:
            table.add_row(escape(c.model), prec, "", "", "[red]FAILED[/]", "", "", "")
            continue
        cached = sum(1 for s in c.stages if s.cached)
        table.add_row(
            escape(c.model), prec,
            f"{100 * c.top1:.2f}%" if c.top1 is not None else "-",
            f"{100 * c.agreement:.2f}%" if c.agreement is not None else "-",
            "-" if c.gates_passed is None else ("[green]PASS[/]" if c.gates_passed else "[red]FAIL[/]"),
            f"{c.p50_ms:.2f}" if c.p50_ms is not None else "-",
            f"{c.throughput:.1f}" if c.throughput is not None else "-",
            f"{cached}/{len(c.stages)} cached")
    stdout.print(table)
    for c in result.failed:  # below the table: a reason is a sentence, too long for a cell
        stdout.print(f"[red]failed[/] {escape(c.model)} {c.precision}{'/' + c.target if c.target else ''}: "
                     f"{escape(c.error or '')}", highlight=False)
    if result.report:
        stdout.print(f"report: {escape(result.report)}", highlight=False)
