"""`resdeploy quantize`: an FP16 graph or a calibrated INT8 Q/DQ graph from an FP32 export."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from resdeploy.cli.common import PREPROCESS_FLAGS, finite_float, preprocess_kwargs, with_preprocess_flags

if TYPE_CHECKING:
    from resdeploy.preprocess import PreprocessFlags


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
        method: str = typer.Option(None, "--method", help="Calibration: avgminmax (per-sample min/max, averaged) | minmax | entropy | percentile. Default (measured): percentile (99.999) for both targets."),
        percentile: float = typer.Option(99.999, "--percentile", parser=finite_float, help="With --method percentile: the percentile kept."),
        target: str = typer.Option("cpu", "--target", help="INT8 form: cpu (fastest in ONNX Runtime on x86) | trt (TensorRT Q/DQ placement)."),
        exclude: list[str] = typer.Option([], "--exclude", help="Node name or glob kept in higher precision (repeatable)."),
        ranges: str = typer.Option(None, "--ranges", help="Reuse calibration ranges saved by an earlier run (no data needed)."),
        fp16_io: bool = typer.Option(False, "--fp16-io", help="FP16 graph inputs and outputs (default: kept FP32)."),
        activations: str = typer.Option(None, "--activations", help="INT8 activation type: uint8 | int8 (default per target)."),
        cpu: str = typer.Option("portable", "--cpu", help="INT8 --target cpu: portable (7-bit weights, right on every x86 and ARM64 CPU) | vnni (full 8-bit weights: only for CPUs with VNNI/AMX, or ARM64; wrong on AVX2 without VNNI)."),
        reduce_range: bool = typer.Option(False, "--reduce-range", help="Kept for old scripts: 7-bit weights, which the default --cpu portable already uses."),
        equalize: bool = typer.Option(True, "--equalize/--no-equalize", help="INT8: cross-layer equalization of Conv -> Relu -> Conv weight ranges before calibrating (exact in FP32; default on, measured)."),
        bias_correction: bool = typer.Option(True, "--bias-correction/--no-bias-correction", help="INT8: correct each quantized layer's per-channel output mean against FP32 on the calibration data (default on, measured)."),
        val_data: str = typer.Option(None, "--val-data", help="INT8 accuracy budget: held-out labelled data; layers are kept in FP32 until validate's gates pass on it."),
        max_top1_drop: float = typer.Option(None, "--max-top1-drop", parser=finite_float, help="Budget: top-1 drop vs FP32 at most this many points (needs --val-data)."),
        min_top1_ratio: float = typer.Option(None, "--min-top1-ratio", parser=finite_float, help="Budget: INT8 top-1 / FP32 top-1 at least this."),
        min_agreement: float = typer.Option(None, "--min-agreement", parser=finite_float, help="Budget: top-1 agreement with FP32 at least this fraction."),
        min_cosine: float = typer.Option(None, "--min-cosine", parser=finite_float, help="Budget: worst per-sample logit cosine at least this."),
        val_samples: int = typer.Option(None, "--val-samples", help="Budget: validate on a seeded selection of N samples (default all)."),
        max_trials: int = typer.Option(8, "--max-trials", help="Budget: at most this many full validations."),
        output: str = typer.Option(None, "--output", "-o", help="Output dir (default: sibling of the FP32 dir, e.g. .../int8-cpu)."),
        force: bool = typer.Option(False, "--force", help="Replace an existing output dir."),
        preprocess: PreprocessFlags = PREPROCESS_FLAGS,  # --input-size, --layout, --preprocess, --resize, --mean, --std
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    ) -> None:
        """Make an FP16 or INT8 (calibrated Q/DQ) variant that ONNX Runtime, TensorRT and OpenVINO all read."""
        from resdeploy.console import Reporter, stdout
        from resdeploy.precision import Budget, QuantizeConfig, quantize
        from resdeploy.precision.budget import DEFAULT_MAX_TRIALS

        budget = Budget(val_data=val_data, val_samples=val_samples, max_trials=max_trials, max_top1_drop=max_top1_drop,
                        min_top1_ratio=min_top1_ratio, min_agreement=min_agreement, min_cosine=min_cosine)
        if not (val_data or budget.gates_given() or val_samples is not None
                or max_trials != DEFAULT_MAX_TRIALS):
            budget = None
        cfg = QuantizeConfig(
            precision=precision.lower(), target=target.lower(), calib_data=calib_data, calib_samples=calib_samples,
            seed=seed, method=method.lower() if method else None, percentile=percentile, exclude=list(exclude), ranges=ranges,
            fp16_io=fp16_io, activation_type=activations.lower() if activations else None, cpu=cpu.lower(),
            reduce_range=reduce_range, output=output, force=force, budget=budget, equalize=equalize,
            bias_correction=bias_correction,
            **preprocess_kwargs(preprocess),
        )
        result = quantize(model, config=cfg, reporter=Reporter.for_command(quiet, json_out))
        if json_out:
            from resdeploy.cli.common import emit_json

            emit_json(result.to_dict())
            return
        from rich.markup import escape
        from rich.table import Table

        m = result.manifest
        table = Table(title=f"{m['precision'].upper()} variant" + (f" (target {m['target']})" if m.get("target") else ""),
                      show_header=False)
        table.add_column(style="bold")
        table.add_column()
        table.add_row("model", escape(str(result.model_path)))  # paths are text, not markup
        table.add_row("from", escape(str(result.parent_path)))
        cal = m.get("calibration")
        if cal:
            pct = f", percentile {cal['percentile']}" if cal.get("percentile") else ""
            table.add_row("calibration", f"{cal['method']}{pct}, {cal['samples']} samples of {escape(str(cal['source']))}, seed {cal['seed']}"
                          + (" (saved ranges)" if cal.get("reused_ranges") else ""))
            table.add_row("ranges", escape(str(result.ranges_path)))
        q0 = m.get("quantization") or {}
        eq, bc = q0.get("equalization") or {}, q0.get("bias_correction") or {}
        if eq or bc:
            table.add_row("equalization", f"{eq['pairs']} Conv pair(s)" if eq.get("applied") else "off")
            how = "from the saved ranges" if bc.get("from_saved_ranges") else f"{bc.get('samples')} samples"
            table.add_row("bias correction", f"{bc.get('layers')} layer(s), {how}" if bc.get("applied")
                          else "off" + (f" ({bc['reason']})" if bc.get("reason") else ""))
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
        bud = q.get("accuracy_budget")
        if bud:
            kept = ", ".join(k["module"] or k["node"] for k in bud["kept_fp32"]) or "none"
            drop = "" if bud["top1_drop_points"] is None else f", top-1 drop {bud['top1_drop_points']:.2f} points"
            table.add_row("accuracy budget", f"{'met' if bud['met'] else 'NOT met'}{drop} after "
                          f"{bud['full_validations']} full validation(s); kept in FP32: {kept}")
            cost = bud.get("speed_cost")
            if cost and "error" not in cost:
                table.add_row("speed cost", f"p50 {cost['mixed_p50_ms']:.3f} ms vs {cost['int8_p50_ms']:.3f} ms full INT8 "
                              f"(x{cost['slowdown']:.2f}, batch 1, ONNX Runtime on this host)")
        chk = m.get("check") or {}
        if chk:
            from resdeploy.precision.quickcheck import check_verdict

            colour = {"good": "green", "fair": "yellow", "poor": "red"}[check_verdict(chk)]
            table.add_row("quick check vs FP32",
                          f"[{colour}]top-1 agreement {chk['top1_agreement']:.3f}, min cosine {chk['cosine_min']:.5f}"
                          f"[/] on {chk['samples']} {chk['data']} samples (not an accuracy gate: run "
                          "`resdeploy validate`)")
        stdout.print(table)
