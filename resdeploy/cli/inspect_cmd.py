"""`resdeploy inspect`: what a model file or artifact is, where it came from, what can run it."""

from __future__ import annotations

from typing import Any

import typer


def register(app: typer.Typer) -> None:
    """Add the command to the app."""

    @app.command("inspect")
    def inspect_cmd(
        path: str = typer.Argument(..., metavar="PATH", help="model.onnx, an artifact folder, a TensorRT .plan/.engine, or a `train` output."),
        no_engines: bool = typer.Option(False, "--no-engines", help="Skip trying which installed engines can load it (faster)."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
    ) -> None:
        """Inputs/outputs, opset, op counts, precision, Q/DQ coverage per target, size, lineage, engines.

        Example: resdeploy inspect artifacts/resnet20/int8-cpu
        """
        from resdeploy.inspect import inspect

        result = inspect(path, check_engines=not no_engines)
        if json_out:
            from resdeploy.cli.common import emit_json

            emit_json(result.to_dict())
            return
        _print(result)


def _mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.2f} MB ({n:,} bytes)"


def _print(r: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    from resdeploy.console import stdout

    summary = Table(title=escape(r.path), show_header=False)
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("kind", r.kind)
    summary.add_row("file size", _mb(r.file_bytes))
    summary.add_row("precision", r.precision or "unknown")
    if r.opset is not None:
        summary.add_row("opset", str(r.opset))
    for label, tensors in (("input", r.inputs), ("output", r.outputs)):
        for t in tensors:
            summary.add_row(label, escape(f"{t.name} [{', '.join(map(str, t.shape))}] {t.dtype}"
                                          + (f" {t.layout}" if t.layout else "")))
    if r.nodes is not None:
        summary.add_row("nodes", f"{r.nodes}: " + ", ".join(f"{op} {n}" for op, n in r.op_counts.items()))
    if r.classes:
        summary.add_row("classes", f"{len(r.classes)}: " + ", ".join(r.classes[:8]) + (" …" if len(r.classes) > 8 else ""))
    for why in r.unreadable:
        summary.add_row("[yellow]not read[/]", escape(why))
    stdout.print(summary)

    if r.qdq is not None:
        q = Table(title="Q/DQ coverage (nodes reading a DequantizeLinear output)")
        for col in ("op", "quantized", "total", "not quantized (first few)"):
            q.add_column(col, justify="left" if col.startswith("not") or col == "op" else "right")
        for op, e in r.qdq.ops.items():
            q.add_row(op, str(e["quantized"]), str(e["total"]), ", ".join(e["not_quantized"]) or "-")
        ra = r.qdq.residual_adds
        q.add_row("residual Add", f"both inputs {ra['both']}", str(sum(ra.values())),
                  f"one input {ra['one']}, none {ra['none']}")
        stdout.print(q)
        t = Table(title="INT8 placement per target")
        for col in ("target", "complete", "missing"):
            t.add_column(col)
        for target, v in r.qdq.targets.items():
            t.add_row(target, "[green]yes[/]" if v["complete"] else "[red]no[/]", "; ".join(v["missing"]) or "-")
        stdout.print(t)

    if r.lineage:
        lin = Table(title="Lineage (this artifact first)")
        for col in ("#", "path", "key facts"):
            lin.add_column(col)
        for i, entry in enumerate(r.lineage):
            facts = {k: v for k, v in entry.items() if k != "path"}
            lin.add_row(str(i), escape(entry["path"]), escape(", ".join(f"{k}={v}" for k, v in facts.items()) or "-"))
        stdout.print(lin)

    if r.engines:
        eng = Table(title="Engines installed here")
        for col in ("engine", "installed", "can load it", "note"):
            eng.add_column(col)
        for e in r.engines:
            eng.add_row(e["engine"], "yes" if e["installed"] else "no",
                        "[green]yes[/]" if e["can_run"] else "no", escape(e["note"] or ""))
        stdout.print(eng)
