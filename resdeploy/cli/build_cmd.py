"""`resdeploy build`: compile an ONNX (FP32, FP16 or INT8 Q/DQ) into a TensorRT engine."""

from __future__ import annotations

import typer

from resdeploy.cli.common import emit_json


def register(app: typer.Typer) -> None:
    """Add the command to the app."""

    @app.command("build")
    def build_command(
        model: str = typer.Argument(..., metavar="MODEL_OR_ONNX",
                                    help="ONNX file, artifact directory (with model.onnx) or zoo model name."),
        precision: str = typer.Option("fp32", "--precision", "-p",
                                      help="fp32 | fp16 | int8: made in the ONNX graph by the quantize stage "
                                           "(INT8 with --target trt, written where `resdeploy quantize` puts it), "
                                           "then compiled as a strongly typed network."),
        calib_data: str | None = typer.Option(None, "--calib-data",
                                              help="INT8: calibration images, .npy/.npz or 'synthetic' (see calibration/README)."),
        batch: str | None = typer.Option(None, "--batch",
                                         help="Optimization profile MIN:OPT:MAX (or one size). Default 1:8:32, "
                                              "or the ONNX's fixed batch."),
        output: str | None = typer.Option(None, "-o", "--output",
                                          help="Engine file (.engine/.plan). Default: beside the compiled ONNX, "
                                               "<stem>.<precision>.engine; metadata goes to <engine>.json."),
        workspace: int | None = typer.Option(None, "--workspace", help="Workspace memory-pool limit in MiB."),
        opt_level: int = typer.Option(3, "--opt-level", help="Builder optimization level 0..5 (slower builds, faster engines)."),
        timing_cache: str | None = typer.Option(None, "--timing-cache",
                                                help="Timing cache file, read before and updated after the build. "
                                                     "Default: one per GPU and TensorRT version in the cache dir."),
        hardware_compat: str = typer.Option("none", "--hardware-compat",
                                            help="none | ampere_plus | same_cc: run on other GPUs of that class."),
        version_compatible: bool = typer.Option(False, "--version-compatible",
                                                help="Plan runs on later TensorRT releases of the same major version."),
        exclude_lean_runtime: bool = typer.Option(False, "--exclude-lean-runtime",
                                                  help="With --version-compatible: leave the lean runtime out of the plan."),
        no_cache: bool = typer.Option(False, "--no-cache", help="Build even if a matching cached engine exists."),
        cache_dir: str | None = typer.Option(None, "--cache-dir",
                                             help="Engine/timing cache (default $RESDEPLOY_CACHE_DIR or ~/.cache/resdeploy)."),
        force: bool = typer.Option(False, "--force",
                                   help="Overwrite an existing engine (or precision variant) made from other inputs."),
        device: str = typer.Option("cuda", "--device", help="CUDA device to build for (cuda or cuda:N)."),
        input_size: int | None = typer.Option(None, "--input-size", help="Zoo models: the export's input size."),
        verbose: int = typer.Option(0, "--verbose", "-v", count=True,
                                    help="TensorRT log level: -v info, -vv verbose (default: warnings)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr (results and errors still shown)."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
    ) -> None:
        """Build a TensorRT engine (and reuse a cached one when nothing it depends on changed)."""
        from resdeploy.console import Reporter
        from resdeploy.trt.build import BuildConfig, build
        from resdeploy.trt.compat import BatchProfile

        config = BuildConfig(
            precision=precision, calib_data=calib_data, batch=BatchProfile.parse(batch) if batch else None,
            workspace_mib=workspace, opt_level=opt_level, hardware_compat=hardware_compat,
            version_compatible=version_compatible, exclude_lean_runtime=exclude_lean_runtime,
            timing_cache=timing_cache, output=output, cache_dir=cache_dir, use_cache=not no_cache, force=force,
            device=device, verbose=verbose, input_size=input_size,
        )
        result = build(model, config, reporter=Reporter.for_command(quiet, json_out))
        if json_out:
            emit_json(result.summary())
            return
        _print_table(result.summary())


def _print_table(summary: dict[str, object]) -> None:
    from rich.table import Table

    from resdeploy.console import stdout

    table = Table(title="TensorRT engine", show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    rows = [
        ("engine", summary["engine"]), ("metadata", summary["metadata"]), ("compiled ONNX", summary["onnx"]),
        ("precision", summary["precision"]), ("batch profile (min:opt:max)", summary["profile"]),
        ("TensorRT", summary["tensorrt"]), ("GPU", summary["gpu"]),
        ("build", "reused cached engine" if summary["cached"] else f"{summary['build_seconds']} s"),
    ]
    for key, value in rows:
        table.add_row(key, str(value))
    stdout.print(table)
