"""`resdeploy bench`: latency and throughput of one model on several engines, side by side."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from resdeploy.cli.common import (
    PREPROCESS_FLAGS,
    finite_float,
    preprocess_kwargs,
    threads_option,
    with_preprocess_flags,
)
from resdeploy.cli.ray_flags import ray_address, ray_option

if TYPE_CHECKING:
    from resdeploy.preprocess import PreprocessFlags


def register(app: typer.Typer) -> None:
    """Add the command to the app."""

    @app.command("bench")
    @with_preprocess_flags
    def bench_cmd(
        model: str = typer.Argument(..., metavar="MODEL",
                                    help="Artifact dir or model.onnx (any engine), or a zoo name (torch only)."),
        engine: str = typer.Option("ort", "--engine", "-e", help="Comma-separated engines: torch, ort, openvino, trt."),
        device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
        precision: str = typer.Option(None, "--precision",
                                      help="torch: fp32|fp16|bf16; openvino: fp32|bf16|fp16 inference hint; "
                                           "ort/trt: a check of the graph's own precision."),
        batch: str = typer.Option(None, "--batch", "-b", help="Batch sizes, e.g. 1,8,32 (default 1,8; 1 for "
                                                               "single-stream and server)."),
        threads: int = threads_option(),
        cpus: str = typer.Option(None, "--cpus", help="Pin to these CPUs, e.g. 0,1: emulates a smaller CPU "
                                                      "(labelled emulation in the result)."),
        warmup: int = typer.Option(5, "--warmup", help="Warm-up iterations (minimum)."),
        warmup_seconds: float = typer.Option(0.0, "--warmup-seconds", parser=finite_float, help="Warm-up seconds (minimum)."),
        iterations: int = typer.Option(20, "--iterations", "-n", help="Timed iterations (minimum)."),
        duration: float = typer.Option(5.0, "--duration", parser=finite_float, help="Timed seconds (minimum); 0 for exactly --iterations."),
        scenario: str = typer.Option("sweep", "--scenario",
                                     help="sweep | single-stream (p90 at batch 1) | offline (best throughput) | "
                                          "server (Poisson arrivals at --qps)."),
        qps: float = typer.Option(None, "--qps", parser=finite_float, help="Server scenario: target queries per second."),
        slo_ms: float = typer.Option(None, "--slo-ms", parser=finite_float, help="Server scenario: p99 latency target in ms."),
        transfers: bool = typer.Option(True, "--transfers/--no-transfers",
                                       help="GPU: include host<->device copies in the timing."),
        compile_: bool = typer.Option(False, "--compile", help="torch: torch.compile the model (on CUDA: "
                                                                 "mode reduce-overhead)."),
        compile_mode: str = typer.Option(None, "--compile-mode",
                                         help="torch: torch.compile with this Inductor mode: default, "
                                              "reduce-overhead, max-autotune, max-autotune-no-cudagraphs "
                                              "(implies --compile)."),
        cuda_graph: bool = typer.Option(False, "--cuda-graph", help="torch/ort on CUDA: replay a CUDA graph."),
        channels_last: bool = typer.Option(None, "--channels-last/--no-channels-last",
                                           help="torch: channels_last memory format (default: on for CUDA)."),
        ep: str = typer.Option(None, "--ep", help="ort: execution provider (cpu, openvino; cuda, trt with --device cuda)."),
        # The same flags as quantize and validate: --input-size and --layout fill the shape where the graph
        # leaves it dynamic; the others say how --data's images become tensors (random inputs need none).
        preprocess: PreprocessFlags = PREPROCESS_FLAGS,
        seed: int = typer.Option(0, "--seed", help="Seed of the random inputs."),
        data: str = typer.Option(None, "--data", metavar="FOLDER_OR_NPY", help="Time real inputs: an image folder or .npy/.npz, preprocessed as the manifest records (default: random)."),
        percentile: list[float] = typer.Option([], "--percentile", parser=finite_float, metavar="Q", help="Also report this latency percentile, e.g. 99.9 (repeatable)."),
        json_out: bool = typer.Option(False, "--json", help="Print the full result JSON on stdout."),
        output: str = typer.Option(None, "--output", "-o", help="Write the result JSON to this file."),
        force: bool = typer.Option(False, "--force", help="Replace an existing --output file."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
        ray: str = ray_option(),
        nodes: str = typer.Option(None, "--nodes", help="With --ray: the same bench on each matching node: all, "
                                                        "KEY=VALUE (a node label) or a resource name."),
    ) -> None:
        """Time MODEL on each engine and batch size the same way; print a table, write JSON.

        Warm-up, then measure until both --iterations and --duration are met (as trtexec).
        CUDA events time GPU runs, a monotonic clock CPU runs.
        """
        from resdeploy.benchmark import BenchConfig, bench
        from resdeploy.cli.common import parse_int_list, parse_str_list
        from resdeploy.console import Reporter

        options: dict[str, object] = {}
        if compile_mode is not None:
            options["compile"] = compile_mode
        elif compile_:
            options["compile"] = True
        if cuda_graph:
            options["cuda_graph"] = True
        if channels_last is not None:
            options["channels_last"] = channels_last
        if ep:
            options["ep"] = ep
        cpu_list = parse_int_list(cpus, "--cpus", minimum=0) if cpus is not None else None
        cfg = BenchConfig(
            model=model, engines=parse_str_list(engine), device=device, precision=precision,
            batches=parse_int_list(batch, "--batch") if batch is not None else None, threads=threads,
            cpus=cpu_list, warmup_iterations=warmup, warmup_seconds=warmup_seconds, iterations=iterations,
            duration=duration, scenario=scenario, qps=qps, slo_ms=slo_ms, transfers=transfers, options=options,
            **preprocess_kwargs(preprocess), seed=seed, data=data, percentiles=list(percentile),
        )
        cfg.check()
        if output:
            from resdeploy.artifacts import check_output_file

            # Fail before minutes of measuring, not after them; the commit checks again at the end.
            check_output_file(output, force=force, flag="--output")
        rep = Reporter.for_command(quiet, json_out)
        if nodes is not None and ray is None:
            from resdeploy.errors import ResdeployError

            raise ResdeployError("--nodes selects nodes of a Ray cluster: use it with --ray")
        if ray is not None:
            from resdeploy.scale.fleet import fleet_bench

            fleet_result = fleet_bench(cfg, nodes, address=ray_address(ray), reporter=rep)
            print_fleet(fleet_result, output, json_out, rep, force=force)
            return
        result = bench(cfg, reporter=rep)
        if output:
            result.save(output, force=force)
            from rich.markup import escape

            rep.info(f"wrote {escape(output)}")
        if json_out:
            from resdeploy.cli.common import emit_json

            emit_json(result.to_dict())
        else:
            print_table(result)
        missed = [r for r in result.runs if (r.scenario_summary or {}).get("slo_met") is False]
        if missed:  # a server run that measured and missed its SLO is a failed gate, like validate's
            from resdeploy.errors import GateFailure

            raise GateFailure(f"server scenario missed the p99 SLO of {slo_ms:g} ms: "
                              + ", ".join(f"{r.engine} batch {r.batch} p99 {r.latency.p99_ms:.2f} ms" for r in missed))


def print_fleet(fleet, output: str | None, json_out: bool, rep, *, force: bool = False) -> None:  # noqa: ANN001 - lazily imported types
    """One table per node (its own machine in the title), one file for `report`."""
    from resdeploy.benchmark import BenchResult, RunResult

    if output:
        fleet.save(output, force=force)
        from rich.markup import escape

        rep.info(f"wrote {escape(output)} (one result per node; `resdeploy report {escape(output)}` compares them)")
    if json_out:
        from resdeploy.cli.common import emit_json

        emit_json(fleet.to_dict())
        return
    from resdeploy.console import stdout

    for r in fleet.results:
        node = r.get("node") or {}
        stdout.print(f"node {node.get('host')} ({str(node.get('node_id'))[:12]})", highlight=False, markup=False)
        print_table(BenchResult(config=r["config"], machine=r["machine"], created=r["created"],
                                runs=[RunResult(**run) for run in r["runs"]]))


def print_table(result) -> None:  # noqa: ANN001 - BenchResult, imported lazily
    """The engine x batch table with speed-ups against the first engine, and its footnotes."""
    from resdeploy.console import stdout
    from resdeploy.reporting import bench_rows, footnotes, rich_table

    rows, base = bench_rows(result)
    first = result.runs[0]
    # rows[0].machine says "pinned to N cpu(s)" for an emulated run, not the host's full CPU.
    where = rows[0].machine + (" †" if rows[0].emulation else "")
    stdout.print(rich_table(rows, title=f"{first.model} on {where}, speed-up vs {rows[0].engine} {rows[0].precision}"))
    for note in footnotes(rows):
        stdout.print(note, highlight=False, markup=False)
