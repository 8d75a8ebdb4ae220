"""`resdeploy train`: train or fine-tune a zoo model on an image folder (weights + manifest)."""

from __future__ import annotations

import typer

from resdeploy.cli.common import finite_float, positive_int, threads_option


def register(app: typer.Typer) -> None:
    """Add the command to the app."""

    @app.command("train")
    def train_cmd(
        data: str = typer.Argument(..., metavar="IMAGE_FOLDER", help="Training images, one subfolder per class (the folder names, sorted, are the class order)."),
        output: str = typer.Option(..., "--output", "-o", help="Output folder for model.safetensors and manifest.json."),
        model: str = typer.Option("resnet20", "--model", "-m", metavar="NAME", help="Zoo model to train (see `resdeploy models`)."),
        val_data: str = typer.Option(None, "--val-data", metavar="IMAGE_FOLDER", help="Held-out images with the same class folders (default: --val-fraction of the training folder)."),
        val_fraction: float = typer.Option(0.1, "--val-fraction", parser=finite_float, metavar="FRACTION", help="Without --val-data: the share of each class held out for validation."),
        epochs: int = typer.Option(10, "--epochs", parser=positive_int, metavar="N", help="Passes over the training images."),
        lr: float = typer.Option(0.1, "--lr", parser=finite_float, metavar="RATE", help="Peak learning rate of the one-cycle schedule (SGD, Nesterov momentum 0.9)."),
        batch_size: int = typer.Option(64, "--batch-size", parser=positive_int, metavar="N", help="Images per optimiser step."),
        weight_decay: float = typer.Option(5e-4, "--weight-decay", parser=finite_float, metavar="DECAY", help="L2 weight decay."),
        seed: int = typer.Option(0, "--seed", metavar="N", help="Seed of the init, the split, the shuffling and the augmentation."),
        input_size: int = typer.Option(None, "--input-size", parser=positive_int, metavar="PIXELS", help="Input height = width (default: 32 for CIFAR ResNets, 224 otherwise)."),
        flip: bool = typer.Option(True, "--flip/--no-flip", help="Random horizontal flips (use --no-flip where a mirror image is another class: digits, text)."),
        crop_padding: int = typer.Option(None, "--crop-padding", metavar="PIXELS", help="Random-crop padding (default: input size / 8; 0 turns cropping off)."),
        from_weights: str = typer.Option(None, "--from-weights", metavar="FILE_OR_FOLDER", help="Fine-tune from a checkpoint (.pth/.safetensors or a `train` output) instead of a seeded init."),
        threads: int = threads_option(),
        force: bool = typer.Option(False, "--force", help="Replace an existing output folder."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    ) -> None:
        """Train a model on an image folder with its own preprocessing; writes .safetensors weights and a manifest.

        Example: resdeploy train data/train --val-data data/val --model resnet20 --input-size 16 --no-flip -o runs/digits

        Then: resdeploy export resnet20 --weights runs/digits (the class names go into the export's manifest).
        Deterministic on a CPU for the same --seed and --threads. Exit code 2: bad input, nothing written.
        """
        from resdeploy.console import Reporter
        from resdeploy.training import TrainConfig, train

        cfg = TrainConfig(data=data, output=output, model=model, val_data=val_data, val_fraction=val_fraction,
                          epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, input_size=input_size,
                          weight_decay=weight_decay, flip=flip, crop_padding=crop_padding, from_weights=from_weights,
                          threads=threads, force=force)
        result = train(cfg, reporter=Reporter.for_command(quiet, json_out))
        if json_out:
            from resdeploy.cli.common import emit_json

            emit_json(result.to_dict())
            return
        from rich.table import Table

        from resdeploy.console import stdout

        m = result.manifest
        table = Table(title=f"Trained {m['model']['name']}", show_header=False)
        table.add_column(style="bold")
        table.add_column()
        table.add_row("weights", f"{result.weights_path} (sha256 {m['weights']['sha256'][:12]}…)")
        table.add_row("classes", f"{len(m['classes'])}: " + ", ".join(m["classes"][:10])
                      + (" …" if len(m["classes"]) > 10 else ""))
        table.add_row("data", f"{m['data']['images']} images, sha256 {m['data']['sha256'][:12]}…"
                      + (f", {m['data']['skipped']} skipped (could not be read)" if m["data"]["skipped"] else ""))
        table.add_row("trained on", f"{m['train']['samples']} images, {m['train']['epochs']} epochs, "
                      f"batch {m['train']['batch_size']}, lr {m['train']['lr']}, seed {m['train']['seed']}")
        table.add_row("val top-1", f"{100 * result.val_top1:.2f} % on {m['val']['samples']} images")
        stdout.print(table)
        stdout.print(f"next: resdeploy export {m['model']['name']} --weights {result.output}", highlight=False)
