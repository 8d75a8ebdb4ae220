"""`resdeploy layers`: which layers of an INT8 or FP16 variant lose accuracy, ranked, against its FP32 parent."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the command to the app."""

    @app.command("layers")
    def layers_cmd(
        candidate: str = typer.Argument(..., metavar="CANDIDATE",
                                        help="INT8 or FP16 variant (model.onnx or its dir from `resdeploy quantize`); its manifest names the FP32 parent."),
        data: str = typer.Option(..., "--data", help="Images (folder) or tensors (.npy/.npz) to measure on."),
        samples: int = typer.Option(64, "--samples", help="How many samples (seeded selection)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the sample selection."),
        top: int = typer.Option(20, "--top", help="Rows in the table (all are in --json)."),
        plot: str = typer.Option(None, "--plot", help="Write a bar chart of the worst layers (.png or .svg)."),
        json_out: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
        force: bool = typer.Option(False, "--force", help="Replace an existing --plot file."),
    ) -> None:
        """Per quantized (INT8) or float16 (FP16) node: SQNR and cosine vs FP32, cumulative and alone; ranked by the error it adds alone."""
        from resdeploy.console import Reporter, stdout
        from resdeploy.errors import ResdeployError, check_positive_int
        from resdeploy.precision.layers import analyze
        from resdeploy.precision.layers import plot as write_plot

        check_positive_int(top, "--top")
        if plot and not plot.lower().endswith((".png", ".svg")):
            raise ResdeployError(f"--plot writes .png or .svg, not '{plot}'")
        if plot:
            from resdeploy.artifacts import check_output_file

            check_output_file(plot, force=force, flag="--plot", example="layers.png")  # before the analysis, not after it
        report = analyze(candidate, data, samples=samples, seed=seed, reporter=Reporter(quiet=quiet or json_out))
        if plot:
            write_plot(report, plot, force=force)
        if json_out:
            from resdeploy.cli.common import emit_json

            emit_json(report.to_dict())
            return
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=f"{report.precision.upper()} error per layer vs FP32 ({report.samples} samples of "
                            f"{escape(str(report.data))}), worst first")
        for col in ("#", "node", "op", "module", "alone SQNR dB", "alone cos", "cumul. SQNR dB", "cumul. cos"):
            table.add_column(col, justify="right" if "SQNR" in col or "cos" in col or col == "#" else "left",
                             no_wrap=col in ("node", "module"))
        for r in report.layers[:top]:
            table.add_row(str(r.rank), r.node, r.op_type, r.module or "-", f"{r.isolated_sqnr_db:.1f}",
                          f"{r.isolated_cosine:.4f}", f"{r.sqnr_db:.1f}", f"{r.cosine:.4f}")
        stdout.print(table)
        if len(report.layers) > top:
            stdout.print(f"{len(report.layers) - top} more layers in --json", highlight=False, markup=False)
        if plot and not quiet:
            from resdeploy.console import stderr

            stderr.print(f"wrote {plot}", highlight=False, markup=False)
