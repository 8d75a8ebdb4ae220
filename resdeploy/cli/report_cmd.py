"""`resdeploy report`: merge bench results from several machines into one comparison."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the command to the app."""

    @app.command("report")
    def report_cmd(
        results: list[str] = typer.Argument(..., metavar="RESULTS...", help="Result JSON files (`resdeploy bench -o FILE`, `validate --json > FILE`), or folders of them."),
        output: str = typer.Option(None, "--output", "-o", help="report.html (plots embedded) or report.md (PNGs beside it)."),
        baseline: str = typer.Option(None, "--baseline",
                                     help="Speed-ups against this run: 'ort', or key=value filters over engine, model, machine, "
                                          "device, precision, host, file (e.g. 'engine=torch,machine=EPYC'). "
                                          "Default: the first run."),
        title: str = typer.Option("resdeploy benchmark report", "--title", help="Report title."),
        json_out: bool = typer.Option(False, "--json", help="Print the merged rows as JSON on stdout."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No 'wrote FILE' line on stderr."),
        force: bool = typer.Option(False, "--force", help="Replace an existing report (and a .md report's plots)."),
    ) -> None:
        """Merge RESULTS into one table with speed-ups and plots; write HTML or Markdown with -o."""
        from resdeploy.console import Reporter, stdout
        from resdeploy.reporting import footnotes, machine_legend, report, rich_table

        res = report(results, output, baseline=baseline, title=title, force=force,
                     reporter=Reporter.for_command(quiet, json_out))
        if json_out:
            from resdeploy.cli.common import emit_json

            emit_json(res.to_dict())
            return
        stdout.print(rich_table(res.rows, title=f"{title} — speed-up vs {res.baseline}"))
        for note in machine_legend(res.rows) + footnotes(res.rows):
            stdout.print(note, highlight=False, markup=False)
        if res.output is not None and not quiet:
            from resdeploy.console import stderr

            stderr.print(f"wrote {res.output}", highlight=False, markup=False)
