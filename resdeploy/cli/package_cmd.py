"""`resdeploy package`: serving artifacts from a variant (a Triton model repository; preprocessing in the graph)."""

from __future__ import annotations

from typing import Any

import typer

from resdeploy.cli.common import finite_float


def register(app: typer.Typer) -> None:
    """Add the command to the app."""

    @app.command("package")
    def package_cmd(
        variant: str = typer.Argument(..., metavar="VARIANT",
                                      help="Artifact directory or model.onnx (any precision), or a TensorRT plan."),
        triton: str = typer.Option(None, "--triton", help="Write a Triton model repository entry: REPO/NAME/."),
        preprocess_in_graph: bool = typer.Option(
            False, "--preprocess-in-graph",
            help="First write a copy that takes uint8 RGB HWC images (preprocessing as ONNX ops) to -o "
                 "(default <variant>-rawimage); with --triton, package that copy."),
        output: str = typer.Option(None, "--output", "-o", help="With --preprocess-in-graph: where to write the copy."),
        name: str = typer.Option(None, "--name", help="Triton model name (default <model>_<precision>, INT8 with its target: resnet18_int8_trt, resnet18_int8_cpu_vnni)."),
        platform: str = typer.Option("auto", "--platform",
                                     help="auto | onnxruntime_onnx | tensorrt_plan (auto: from the file)."),
        kind: str = typer.Option(None, "--kind", help="cpu | gpu instances (default cpu; gpu for a plan or "
                                                      "--accelerator tensorrt)."),
        count: int = typer.Option(1, "--count", help="Instances per group."),
        gpus: str = typer.Option(None, "--gpus", help="GPU ids for --kind gpu, e.g. 0,1 (default: all)."),
        accelerator: str = typer.Option("none", "--accelerator",
                                        help="none | tensorrt (ONNX Runtime on GPU, precision from the graph) | "
                                             "openvino (ONNX Runtime on CPU)."),
        max_batch_size: int = typer.Option(None, "--max-batch-size",
                                           help="Default: the largest bench batch within the SLO, else 8."),
        bench: str = typer.Option(None, "--bench", help="A `resdeploy bench --json` result of this same model file."),
        slo_ms: float = typer.Option(None, "--slo-ms", parser=finite_float,
                                     help="p99 target: preferred batch = best throughput with p99 within it."),
        max_queue_delay_us: int = typer.Option(None, "--max-queue-delay-us",
                                               help="Override the dynamic batcher's delay (default: half the "
                                                    "SLO's headroom, else 100)."),
        force: bool = typer.Option(False, "--force", help="Replace an existing model entry (and copy)."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    ) -> None:
        """Package a variant for serving. Exit code 0: written; 2: bad input, nothing written."""
        from rich.markup import escape

        from resdeploy.cli.common import parse_int_list
        from resdeploy.console import Reporter
        from resdeploy.errors import ResdeployError
        from resdeploy.preprocess_graph import embed_preprocessing
        from resdeploy.serving import TritonConfig, package_triton

        if not triton and not preprocess_in_graph:
            raise ResdeployError("nothing to do: pass --triton REPO and/or --preprocess-in-graph")
        if output and not preprocess_in_graph:
            raise ResdeployError("-o applies to --preprocess-in-graph (the repository is --triton REPO)")
        reporter = Reporter.for_command(quiet, json_out)
        cfg = TritonConfig(name=name, platform=platform, kind=kind, count=count,
                           gpus=parse_int_list(gpus, "--gpus", minimum=0) if gpus else None,
                           accelerator=accelerator, max_batch_size=max_batch_size, bench=bench, slo_ms=slo_ms,
                           max_queue_delay_us=max_queue_delay_us, force=force)
        if triton:  # before the copy is written: a bad flag or a taken name must not leave half of the pair
            cfg.validate()
            from pathlib import Path

            from resdeploy.serving.package import entry_name

            entry = Path(triton) / entry_name(variant, cfg, raw_image=preprocess_in_graph)
            if entry.exists() and not force:
                raise ResdeployError(f"{entry} already exists; pass --force to overwrite it")
        out: dict[str, Any] = {}
        source = variant
        if preprocess_in_graph:
            with reporter.step("preprocessing into the graph"):
                embedded = embed_preprocessing(variant, output, force=force)
            out["preprocess_in_graph"] = embedded.to_dict()
            source = str(embedded.path.parent)
            reporter.info(f"wrote {escape(str(embedded.path))} (max |diff| vs Python preprocessing "
                          f"{embedded.parity.max_abs_diff:.4f} over {embedded.parity.images} images)")
        if triton:
            out["triton"] = package_triton(source, triton, cfg, reporter=reporter).to_dict()
        _print(out, json_out)


def _print(out: dict[str, Any], json_out: bool) -> None:
    if json_out:
        from resdeploy.cli.common import emit_json

        emit_json(out)
        return
    from rich.markup import escape
    from rich.table import Table

    from resdeploy.console import stdout

    if "preprocess_in_graph" in out:
        e = out["preprocess_in_graph"]
        p = e["parity"]
        t = Table(title="Preprocessing in the graph", show_header=False)
        t.add_column(style="bold")
        t.add_column()
        t.add_row("model", escape(str(e["path"])))
        t.add_row("input", "image \\[batch, height, width, 3] uint8 RGB (one size per batch)")
        t.add_row("vs Python", f"max |diff| {p['max_abs_diff']:.4f}, mean {p['mean_abs_diff']:.5f} "
                               f"over {p['images']} images (bound {p['bound']})")
        stdout.print(t)
    if "triton" in out:
        r = out["triton"]
        c = r["config"]
        t = Table(title=f"Triton model '{r['name']}'", show_header=False)
        t.add_column(style="bold")
        t.add_column()
        t.add_row("entry", escape(str(r["model_dir"])))  # paths are text, not markup
        t.add_row("platform", r["platform"])
        t.add_row("model file", f"{escape(str(r['model_file']))} (sha256 {r['sha256'][:12]}…, identical to the variant's)")
        t.add_row("max_batch_size", str(c["max_batch_size"]))
        for key in ("inputs", "outputs"):
            t.add_row(key, "; ".join(f"{x['name']} {x['data_type']} {list(x['dims'])}" for x in c[key]))
        g = c["instance_groups"][0]
        t.add_row("instances", f"{g['count']} x {g['kind']}" + (f" gpus {list(g['gpus'])}" if g["gpus"] else ""))
        db = c["dynamic_batching"]
        b = r["batching"]
        if db:
            src = (f" (bench: {b['engine']} batch {b['preferred_batch']}, {b['throughput']:.1f} img/s, "
                   f"p99 {b['p99_ms']:.2f} ms)") if b else ""
            t.add_row("dynamic_batching", f"preferred {list(db['preferred_batch_size']) or 'none'}, max queue delay "
                                          f"{db['max_queue_delay_microseconds']} µs{src}")
        accs = [a["name"] + (f" {a['parameters'].get('precision_mode')}" if a["parameters"] else "")
                for a in c["gpu_accelerators"] + c["cpu_accelerators"]]
        t.add_row("accelerator", ", ".join(accs) or "none")
        t.add_row("labels", escape(str(r["labels"] or "none (the manifest names no classes)")))
        s = r["schema_check"]
        t.add_row("checked", "parsed by Triton's ModelConfig; tensors match the graph" if s.get("parsed")
                  else f"[yellow]not parsed[/]: {s.get('reason')}")
        stdout.print(t)
