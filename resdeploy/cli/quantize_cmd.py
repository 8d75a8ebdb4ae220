"""`resdeploy quantize`: an FP16 graph or a calibrated INT8 Q/DQ graph from an FP32 export."""

from __future__ import annotations

import typer

from resdeploy.cli.common import PreprocessFlags, finite_float, with_preprocess_flags


def register(app: typer.Typer) -> None:
    """Add the command to the app."""

    @app.command("quantize")
    @with_preprocess_flags
    def quantize_cmd(
        model: str = typer.Argument(..., metavar="MODEL_OR_ONNX",
                                    help="FP32 model.onnx or its artifact dir (from `resdeploy export`), or a zoo name (exported first)."),
        precision: str = typer.Option("int8", "--precision", "-p", help="fp16 | int8"),
        calib_data: str = typer.Option(None, "--calib-data", help="INT8 calibration data: image folder (nested ok), .npy/.npz, or 'synthetic'."),
        calib_samples: int = typer.Option(128, "--calib-samples", help="How many calibration samples (seeded selection)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the sample selection."),
        method: str = typer.Option("minmax", "--method", help="Calibration: minmax | entropy | percentile."),
        percentile: float = typer.Option(99.999, "--percentile", parser=finite_float, help="With --method percentile: the percentile kept."),
        target: str = typer.Option("cpu", "--target", help="INT8 form: cpu (fastest in ONNX Runtime on x86) | trt (TensorRT Q/DQ placement)."),
        exclude: list[str] = typer.Option([], "--exclude", help="Node name or glob kept in higher precision (repeatable)."),
        ranges: str = typer.Option(None, "--ranges", help="Reuse calibration ranges saved by an earlier run (no data needed)."),
        fp16_io: bool = typer.Option(False, "--fp16-io", help="FP16 graph inputs and outputs (default: kept FP32)."),
        activations: str = typer.Option(None, "--activations", help="INT8 activation type: uint8 | int8 (default per target)."),
        cpu: str = typer.Option("portable", "--cpu", help="INT8 --target cpu: portable (7-bit weights, right on every x86 and ARM64 CPU) | vnni (full 8-bit weights: only for CPUs with VNNI/AMX, or ARM64; wrong on AVX2 without VNNI)."),
        reduce_range: bool = typer.Option(False, "--reduce-range", help="Kept for old scripts: 7-bit weights, which the default --cpu portable already uses."),
        output: str = typer.Option(None, "--output", "-o", help="Output dir (default: sibling of the FP32 dir, e.g. .../int8-cpu)."),
        force: bool = typer.Option(False, "--force", help="Replace an existing output dir."),
        preprocess: PreprocessFlags = PreprocessFlags(),  # --input-size, --resize, --mean, --std
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    ) -> None:
        """Make an FP16 or INT8 (calibrated Q/DQ) variant that ONNX Runtime, TensorRT and OpenVINO all read."""
        from resdeploy.console import Reporter, stdout
        from resdeploy.precision import QuantizeConfig, quantize

        cfg = QuantizeConfig(
            precision=precision.lower(), target=target.lower(), calib_data=calib_data, calib_samples=calib_samples,
            seed=seed, method=method.lower(), percentile=percentile, exclude=list(exclude), ranges=ranges,
            fp16_io=fp16_io, activation_type=activations.lower() if activations else None, cpu=cpu.lower(), reduce_range=reduce_range,
            output=output, force=force,
            **preprocess.as_config(),
        )
        result = quantize(model, config=cfg, reporter=Reporter(quiet=quiet or json_out))
        if json_out:
            from resdeploy.cli.common import emit_json

            emit_json(result.to_dict())
            return
        from rich.table import Table

        m = result.manifest
        table = Table(title=f"{m['precision'].upper()} variant" + (f" (target {m['target']})" if m.get("target") else ""),
                      show_header=False)
        table.add_column(style="bold")
        table.add_column()
        table.add_row("model", str(result.model_path))
        table.add_row("from", str(result.parent_path))
        cal = m.get("calibration")
        if cal:
            pct = f", percentile {cal['percentile']}" if cal.get("percentile") else ""
            table.add_row("calibration", f"{cal['method']}{pct}, {cal['samples']} samples of {cal['source']}, seed {cal['seed']}"
                          + (" (saved ranges)" if cal.get("reused_ranges") else ""))
            table.add_row("ranges", str(result.ranges_path))
        q = m.get("quantization") or {}
        if "activations" in q:
            table.add_row("activations", q["activations"])
            table.add_row("weights", q["weights"])
            if q.get("safe_on"):
                table.add_row("exact on", ", ".join(q["safe_on"]))
            adds = q.get("residual_adds") or {}
            if adds.get("count"):
                table.add_row("residual Adds", f"{adds['both_inputs_quantized']}/{adds['count']} with Q/DQ on both inputs")
        if "io" in q:
            table.add_row("inputs/outputs", q["io"])
        if q.get("excluded"):
            table.add_row("kept in higher precision", ", ".join(q["excluded"]))
        chk = m.get("check") or {}
        if chk:
            from resdeploy.precision.quickcheck import check_verdict

            colour = {"good": "green", "fair": "yellow", "poor": "red"}[check_verdict(chk)]
            table.add_row("quick check vs FP32",
                          f"[{colour}]top-1 agreement {chk['top1_agreement']:.3f}, min cosine {chk['cosine_min']:.5f}"
                          f"[/] on {chk['samples']} {chk['data']} samples (not an accuracy gate: run "
                          "`resdeploy validate`)")
        stdout.print(table)
