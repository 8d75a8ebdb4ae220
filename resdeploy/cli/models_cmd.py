"""`resdeploy models`: the zoo, with parameters and FLOPs computed from each model."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the command to the app."""

    @app.command("models")
    def models_cmd(
        pattern: str = typer.Argument(None, metavar="[FILTER]", help="Shell-style filter, e.g. 'resnet*' or '*wide*'."),
        input_size: int = typer.Option(None, "--input-size", help="Count FLOPs at this input size (default: each model's own, 224 or 32)."),
        num_classes: int = typer.Option(None, "--num-classes", help="Classifier size (default: 1000 ImageNet, 10 CIFAR)."),
        json_out: bool = typer.Option(False, "--json", help="Print the list as JSON on stdout."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    ) -> None:
        """List the zoo: parameters and GFLOPs, computed from each model (built on the meta device)."""
        from resdeploy.console import Reporter, stdout
        from resdeploy.errors import ResdeployError, check_positive_int
        from resdeploy.models.stats import model_stats
        from resdeploy.models.zoo import list_models

        check_positive_int(input_size, "--input-size")
        check_positive_int(num_classes, "--num-classes")
        names = list_models(pattern)
        if not names:
            raise ResdeployError(f"no model matches '{pattern}'", hint="run `resdeploy models` for the full list")
        rep = Reporter.for_command(quiet, json_out)
        rows = [model_stats(n, input_size, num_classes)
                for n in rep.track(names, total=len(names), description="counting FLOPs")]
        if json_out:
            from resdeploy.cli.common import emit_json

            emit_json({"models": [r.to_dict() for r in rows],
                       "flops": "2 FLOPs per multiply-add; convolutions and matrix products only"})
            return
        from rich.table import Table

        heads = sorted({r.num_classes for r in rows})
        table = Table(title="resdeploy model zoo",
                      caption=f"classes: {', '.join(map(str, heads))}. GMACs = multiply-adds (what papers call FLOPs); "
                      "GFLOPs = 2 x GMACs. Computed from the models, batch 1.")
        table.add_column("model", no_wrap=True)
        table.add_column("family", no_wrap=True)
        for col in ("params", "input", "GMACs", "GFLOPs"):
            table.add_column(col, justify="right", no_wrap=True)
        for r in rows:
            table.add_row(r.name, r.family, f"{r.params:,}", f"{r.input_size}", f"{r.gmacs:.3f}", f"{r.gflops:.3f}")
        stdout.print(table)
        stdout.print("Also: torchvision:NAME, timm:NAME (where installed) and package.module:factory.",
                     style="dim", highlight=False)
