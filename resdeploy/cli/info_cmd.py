"""`resdeploy info`: which engines and devices this machine can bench on, and what to install."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the command to the app."""

    @app.command("info")
    def info_cmd(
        json_out: bool = typer.Option(False, "--json", help="Print the information as JSON on stdout."),
    ) -> None:
        """List engines (available, version, devices), ORT providers, OpenVINO devices, GPUs and TensorRT."""
        from rich.table import Table

        from resdeploy.console import stdout
        from resdeploy.machine import info

        data = info()
        if json_out:
            from resdeploy.cli.common import emit_json

            emit_json(data)
            return
        m = data["machine"]
        cpu = m["cpu"]
        stdout.print(f"[bold]{cpu['model']}[/] — {cpu['usable_cpus']} of {cpu['logical_cores']} cpus usable, "
                     f"{m.get('memory_gb')} GiB, {m['os']}, Python {m['python']}", highlight=False)
        if cpu.get("flags"):
            stdout.print(f"CPU features: {', '.join(cpu['flags'])}", highlight=False)
        gpus = m.get("gpus") or []
        stdout.print("GPUs: " + (", ".join(f"{g['name']} (driver {g['driver']}, {g['memory_mb']} MiB)" for g in gpus)
                                 if gpus else "none found (nvidia-smi)"), highlight=False)
        from rich import box

        table = Table(title="engines", box=box.SIMPLE_HEAD, pad_edge=False)
        for col in ("engine", "available", "version", "devices"):
            table.add_column(col, no_wrap=col != "devices")
        for e in data["engines"]:
            table.add_row(e["engine"], "[green]yes[/]" if e["available"] else "[red]no[/]", e["version"] or "—",
                          ", ".join(e["devices"]) or "—")
        stdout.print(table)
        # Long lines go below the table, unwrapped, so they can be copied as they are.
        for e in data["engines"]:
            if e.get("providers"):
                stdout.print(f"{e['engine']} providers: {', '.join(e['providers'])}", highlight=False)
        for e in data["engines"]:
            if e["note"]:
                stdout.print(f"{e['engine']}: {e['note']}", highlight=False, markup=False)
        for line in data["advice"]:
            stdout.print(f"int8: {line}", highlight=False, markup=False)
