"""`resdeploy export`: a PyTorch (or Keras) ResNet to a verified FP32 ONNX artifact (model.onnx + manifest.json)."""

from __future__ import annotations

from typing import Any

import typer

from resdeploy.cli.common import finite_float


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    from resdeploy.compare import ParityTolerances
    from resdeploy.exporter import EXPORT_TOLERANCES as defaults

    @app.command("export")
    def export_cmd(
        model: str = typer.Argument(..., metavar="MODEL", help="Zoo name (see `resdeploy models`), torchvision:NAME, timm:NAME, package.module:factory, or keras:PATH (a .keras file or SavedModel directory; needs resdeploy[keras])."),
        output: str = typer.Option(None, "--output", "-o", help="Output directory (default: artifacts/<model>/fp32)."),
        weights: str = typer.Option(None, "--weights", help=".pth/.pt state dict or checkpoint, or .safetensors (default: seeded random init)."),
        num_classes: int = typer.Option(None, "--num-classes", help="Classifier size (default: from --weights, else 1000 ImageNet / 10 CIFAR)."),
        input_size: int = typer.Option(None, "--input-size", help="Input height = width (default: 224 ImageNet, 32 CIFAR)."),
        opset: int = typer.Option(18, "--opset", help="ONNX opset, 13..24 (dynamo exporter for >= 18, TorchScript below)."),
        batch: str = typer.Option("dynamic", "--batch", help="'dynamic' (batch axis named 'batch') or a fixed batch size."),
        exporter: str = typer.Option("auto", "--exporter", help="auto | dynamo | torchscript (PyTorch models; keras:PATH uses tf2onnx)."),
        preprocess: str = typer.Option(None, "--preprocess", help="keras:PATH only: the preprocessing the model was trained with, recorded in the manifest: caffe (default: keras.applications ResNets) | tf | torchvision."),
        parity_batch: int = typer.Option(4, "--parity-batch", help="The batch > 1 that parity checks (besides batch 1)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the random init (without --weights) and of the parity inputs."),
        max_abs_error: float = typer.Option(defaults.max_abs_error, "--max-abs-error", parser=finite_float, help="Parity gate: largest |torch - onnx| logit difference."),
        max_rel_error: float = typer.Option(defaults.max_rel_error, "--max-rel-error", parser=finite_float, help="Parity gate: max abs error / max |logit|."),
        min_cosine: float = typer.Option(defaults.min_cosine, "--min-cosine", parser=finite_float, help="Parity gate: smallest per-image cosine similarity."),
        min_top1_agreement: float = typer.Option(defaults.min_top1_agreement, "--min-top1-agreement", parser=finite_float, help="Parity gate: share of images with the same top-1 class."),
        preprocess_in_graph: bool = typer.Option(
            False, "--preprocess-in-graph", help="Also write <output>-rawimage: the model with its preprocessing as "
                                                 "ONNX ops, taking uint8 RGB HWC images (see docs/serving.md)."),
        force: bool = typer.Option(False, "--force", help="Replace an existing output directory."),
        json_out: bool = typer.Option(False, "--json", help="Print the result (with the manifest) as JSON on stdout."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    ) -> None:
        """Export to ONNX, check the graph, and check parity against PyTorch with ONNX Runtime.

        Exit code 0: exported and parity passed; 1: exported but parity failed (the
        artifact is kept, its manifest says parity.passed=false); 2: bad input, nothing written.
        """
        from resdeploy.console import Reporter
        from resdeploy.errors import GateFailure, ResdeployError
        from resdeploy.exporter import ExportConfig, export

        for value, flag in ((max_abs_error, "--max-abs-error"), (max_rel_error, "--max-rel-error")):
            if not value >= 0:
                raise ResdeployError(f"{flag} must be >= 0, got {value}")
        for value, flag in ((min_cosine, "--min-cosine"), (min_top1_agreement, "--min-top1-agreement")):
            if not -1.0 <= value <= 1.0:
                raise ResdeployError(f"{flag} must be between -1 and 1, got {value}")
        if preprocess_in_graph:  # refuse before the export, not after it: no half-done pair
            from pathlib import Path

            from resdeploy.exporter import default_output_dir

            if opset < 18:
                raise ResdeployError(f"--preprocess-in-graph needs --opset 18 or later (Resize antialias, "
                                     f"CenterCropPad), got {opset}")
            target = Path(output) if output else default_output_dir(model)
            copy = target.with_name(target.name + "-rawimage")
            if copy.exists() and not force:
                raise ResdeployError(f"{copy} already exists; pass --force to overwrite it")
        cfg = ExportConfig(
            input_size=input_size, opset=opset, batch=batch, parity_batch=parity_batch, force=force, seed=seed,
            exporter=exporter.lower(), preprocess=preprocess.lower() if preprocess else None,
            tolerances=ParityTolerances(max_abs_error=max_abs_error, max_rel_error=max_rel_error,
                                        min_cosine=min_cosine, min_top1_agreement=min_top1_agreement),
        )
        try:
            result = export(model, cfg, output_dir=output, weights=weights, num_classes=num_classes,
                            reporter=Reporter.for_command(quiet, json_out))
        except GateFailure as exc:
            failed = getattr(exc, "result", None)
            if failed is not None:
                _print(failed, json_out)
            raise
        extra = None
        if preprocess_in_graph:  # the same library call as `resdeploy package VARIANT --preprocess-in-graph`
            from rich.markup import escape

            from resdeploy.preprocess_graph import embed_preprocessing

            embedded = embed_preprocessing(result.model_path.parent, force=force)
            extra = {"preprocess_in_graph": embedded.to_dict()}
            Reporter(quiet=quiet or json_out).info(
                f"wrote {escape(str(embedded.path))} (uint8 images in; max |diff| vs Python preprocessing "
                f"{embedded.parity.max_abs_diff:.4f} over {embedded.parity.images} images)")
        _print(result, json_out, extra)


def _print(result: Any, json_out: bool, extra: dict[str, Any] | None = None) -> None:
    if json_out:
        from resdeploy.cli.common import emit_json

        emit_json({**result.to_dict(), **(extra or {})})
        return
    from rich.markup import escape
    from rich.table import Table

    from resdeploy.console import stdout

    m = result.manifest
    w = m["model"]["weights"]
    weights = w if isinstance(w, str) else f"{w['path']} (sha256 {w['sha256'][:12]}…)"
    inp, out = m["inputs"][0], m["outputs"][0]
    summary = Table(title=escape(f"Exported {m['model']['name']}"), show_header=False)  # paths: text, not markup
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("model", escape(str(result.model_path)))
    summary.add_row("weights", escape(weights))
    summary.add_row("input", f"{inp['name']} {inp['shape']} {inp['dtype']}")
    summary.add_row("output", f"{out['name']} {out['shape']} {out['dtype']}")
    ex = m["exporter"]
    if ex["name"] == "tf2onnx":
        summary.add_row("opset / exporter", f"{m['opset']} / tf2onnx {ex['version']} (tensorflow {ex['tensorflow']})")
    else:
        summary.add_row("opset / exporter", f"{m['opset']} / torch.onnx {ex['kind']} (torch {ex['version']})")
    g = m["graph"]
    summary.add_row("graph", f"{g['nodes']} nodes, BatchNorm {'folded' if g['batchnorm_folded'] else 'NOT folded'}")
    pp = m["preprocess"]
    preset = (pp.get("extra") or {}).get("preset")
    summary.add_row("preprocess", (f"{preset}: " if preset else "") + f"resize {pp['resize']}, crop {pp['crop']}, "
                    f"scale {pp['scale']:.6g}, mean {list(pp['mean'])}, std {list(pp['std'])}, {pp['color']} {pp['layout']}")
    stdout.print(summary)

    p = m["parity"]
    tol = p["tolerances"]
    parity = Table(title=f"Parity: ONNX Runtime (CPU) vs {p.get('reference') or 'PyTorch FP32'}")
    for col in ("batch", "max abs err", "max rel err", "min cosine", "top-1 agree", "logit std", "result"):
        parity.add_column(col, justify="right")
    for b, r in p["batches"].items():
        parity.add_row(b, f"{r['max_abs_error']:.2e}", f"{r['max_rel_error']:.2e}", f"{r['cosine_min']:.7f}",
                       f"{r['top1_agreement']:.3f}", f"{r['reference_logit_std']:.2f}",
                       "[green]pass[/]" if r["passed"] else "[red]FAIL[/]")
    parity.add_row("gate", f"≤ {tol['max_abs_error']:.0e}", f"≤ {tol['max_rel_error']:.0e}", f"≥ {tol['min_cosine']}",
                   f"≥ {tol['min_top1_agreement']}", "", "", style="dim")
    stdout.print(parity)
    if p["failures"]:
        stdout.print("[red]parity failed:[/] " + "; ".join(p["failures"]), highlight=False)
