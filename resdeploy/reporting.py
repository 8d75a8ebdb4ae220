"""Results in, comparisons out: schema checks, merging across machines, tables, plots, HTML/Markdown.

``bench`` on a GPU server, on this CPU and on a Jetson board each write a
``resdeploy.bench/1`` JSON; ``report`` merges them into one table (speed-ups against a
chosen baseline at the same batch size) and three plots. Every number shown comes from
the result files' ``stats`` (computed once by ``stats.LatencyStats``) or their raw
latencies; nothing is re-measured or re-derived differently here.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from resdeploy.benchmark import RESULT_SCHEMA  # the one schema this version writes and reads
from resdeploy.errors import ResdeployError
from resdeploy.tradeoff import cpu_features, plain_log_axis

REPORT_SCHEMA = "resdeploy.report/1"
FLEET_SCHEMA = "resdeploy.fleet/1"  # `bench --ray --nodes`: one bench result per node, in one file
BASELINE_KEYS = ("engine", "model", "machine", "device", "precision", "host", "file")


# --- loading -------------------------------------------------------------------------------------
def check_result(data: Any, source: str) -> dict[str, Any]:
    """Accept a bench result of this schema version; one clear line for anything else."""
    if not isinstance(data, dict) or "schema" not in data:
        raise ResdeployError(f"{source} is not a resdeploy bench result (no 'schema' field)")
    schema = data["schema"]
    if schema != RESULT_SCHEMA:
        if isinstance(schema, str) and schema.startswith("resdeploy.bench/"):
            raise ResdeployError(
                f"{source} has result schema {schema}; this resdeploy reads {RESULT_SCHEMA}",
                hint="re-run `resdeploy bench` with this version, or report it with the version that wrote it",
            )
        raise ResdeployError(f"{source} is a '{schema}' file, not a resdeploy bench result ({RESULT_SCHEMA})")
    runs = data.get("runs")
    if not isinstance(runs, list) or not runs:
        raise ResdeployError(f"{source} holds no runs")
    machine = data.get("machine")
    if machine is not None:
        if not isinstance(machine, dict):
            raise ResdeployError(f"{source}: 'machine' is not an object (a damaged or hand-edited result?)")
        for key in ("cpu", "cuda", "libraries"):
            if machine.get(key) is not None and not isinstance(machine[key], dict):
                raise ResdeployError(f"{source}: machine.{key} is not an object")
        gpus = machine.get("gpus")
        if gpus is not None and not (isinstance(gpus, list) and all(isinstance(g, dict) for g in gpus)):
            raise ResdeployError(f"{source}: machine.gpus is not a list of objects")
    for i, run in enumerate(runs):
        _check_run(run, f"{source}: run {i}")
    return data


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _check_run(run: Any, where: str) -> None:
    """Every field the tables and plots read has the right type: one line, not a traceback later."""
    if not isinstance(run, dict) or not isinstance(run.get("stats"), dict):
        raise ResdeployError(f"{where} has no statistics")
    for key in ("engine", "batch", "throughput"):
        if key not in run:
            raise ResdeployError(f"{where} lacks '{key}'")
    batch = run["batch"]
    if not isinstance(batch, int) or isinstance(batch, bool) or batch <= 0:
        raise ResdeployError(f"{where}: batch is {batch!r}, not a positive integer")
    if not _is_number(run["throughput"]):
        raise ResdeployError(f"{where}: throughput is {run['throughput']!r}, not a number")
    stats = run["stats"]
    for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms"):
        if not _is_number(stats.get(key)):
            raise ResdeployError(f"{where}: stats.{key} is {stats.get(key)!r}, not a number")
    lat = run.get("latencies_ms")
    if lat is not None and (not isinstance(lat, list) or not all(_is_number(v) for v in lat)):
        raise ResdeployError(f"{where}: latencies_ms is not a list of numbers")
    for key in ("emulation", "scenario_summary"):
        if run.get(key) is not None and not isinstance(run[key], dict):
            raise ResdeployError(f"{where}: '{key}' is not an object")


def _expand_folders(paths: Sequence[str | os.PathLike[str]]) -> list[str | os.PathLike[str]]:
    """A folder stands for the ``*.json`` files directly in it, sorted (``resdeploy report results/``)."""
    out: list[str | os.PathLike[str]] = []
    for p in paths:
        if not os.path.isdir(p):
            out.append(p)
            continue
        found = sorted(str(f) for f in Path(p).glob("*.json") if f.is_file())
        if not found:
            raise ResdeployError(f"{p} is a folder with no .json result files in it",
                                 hint="pass the bench/validate JSON files, or the folder they were written to")
        out.extend(found)
    return out


def load_results(paths: Sequence[str | os.PathLike[str]]) -> list[tuple[str, dict[str, Any]]]:
    """Read and check result files; returns (file name, result) pairs in the given order."""
    from resdeploy.artifacts import read_json

    if not paths:
        raise ResdeployError("no result files given")
    seen: set[str] = set()
    for p in paths:
        real = os.path.realpath(p)
        if real in seen:  # its rows would appear twice, indistinguishable
            raise ResdeployError(f"{p} is given twice")
        seen.add(real)
    out: list[tuple[str, dict[str, Any]]] = []
    for p in paths:
        data = read_json(p)
        if isinstance(data, dict) and data.get("schema") == FLEET_SCHEMA:
            nodes = data.get("results")
            if not isinstance(nodes, list) or not nodes:
                raise ResdeployError(f"{p} holds no node results")
            for i, r in enumerate(nodes):  # one source per node: its rows keep its machine
                host = (r.get("node") or {}).get("host") if isinstance(r, dict) else None
                name = f"{p}#{i}" + (f" ({host})" if host else "")
                out.append((name, check_result(r, name)))
        else:
            out.append((str(p), check_result(data, str(p))))
    return out


# --- rows ------------------------------------------------------------------------------------------
def machine_label(machine: dict[str, Any], device: str) -> str:
    """The GPU's name for GPU runs, the CPU model (and usable cores) otherwise."""
    if device.startswith("cuda"):
        gpus = machine.get("gpus") or []
        names = (machine.get("cuda") or {}).get("devices") or [g.get("name") for g in gpus]
        if names:
            idx = int(device.split(":")[1]) if ":" in device and device.split(":")[1].isdigit() else 0
            return str(names[min(idx, len(names) - 1)])
        return "CUDA GPU"
    cpu = machine.get("cpu") or {}
    return f"{cpu.get('model', 'CPU')} ({cpu.get('usable_cpus', '?')} cpus)"


@dataclass
class Row:
    """One line of a comparison table."""

    machine: str
    host: str
    model: str
    engine: str
    precision: str
    device: str
    batch: int
    scenario: str
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    throughput: float
    count: int
    tail_reliable: bool
    emulation: str | None
    file: str
    speedup: float | None = None
    summary: dict[str, Any] | None = None
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    extra_percentiles: dict[str, float] = field(default_factory=dict)  # bench --percentile 99.9: {"p99.9": ms}

    @property
    def series(self) -> str:
        """What a plot line stands for: one engine/precision on one machine."""
        emu = " [emulated]" if self.emulation else ""
        # A server run's latency includes queueing: never one line with a sweep of the same engine.
        scenario = "" if self.scenario == "sweep" else f" ({self.scenario})"
        return f"{self.model} {self.engine} {self.precision}{scenario} · {self.machine}{emu}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("latencies_ms")
        return d


def model_display_name(run: dict[str, Any]) -> str:
    """The model's zoo name when the result has it, else the model path's last part."""
    name = run.get("model_name")
    if name:
        return str(name)
    p = Path(str(run.get("model", "?")))
    if p.suffix == ".onnx":
        p = p.parent if p.stem == "model" else p.with_suffix("")
    # artifacts/resnet50/fp32 and artifacts/resnet50/int8-cpu are both "resnet50".
    if p.name in ("fp32", "fp16", "bf16") or p.name.startswith("int8"):
        p = p.parent
    return p.name or str(run.get("model"))


def rows_from(results: Sequence[tuple[str, dict[str, Any]]]) -> list[Row]:
    out = []
    for source, data in results:
        machine = data.get("machine") or {}
        for run in data["runs"]:
            s = run["stats"]
            device = str(run.get("device") or "cpu")
            emu = run.get("emulation")
            label = machine_label(machine, device)
            if emu:
                cpu_name = (machine.get("cpu") or {}).get("model", "CPU")
                label = f"{cpu_name} pinned to {len(emu.get('cpus') or [])} cpu(s)"
            out.append(Row(
                machine=label, host=str(machine.get("hostname") or "?"), model=model_display_name(run),
                engine=str(run["engine"]),
                precision=str(run.get("precision") or "fp32"), device=device, batch=int(run["batch"]),
                scenario=str(run.get("scenario") or "sweep"), p50_ms=float(s["p50_ms"]),
                p90_ms=float(s["p90_ms"]), p99_ms=float(s["p99_ms"]), mean_ms=float(s["mean_ms"]),
                throughput=float(run["throughput"]), count=int(s.get("count", 0)),
                tail_reliable=bool(s.get("tail_reliable", True)),
                emulation=(emu or {}).get("note") if emu else None, file=Path(source).name,
                summary=run.get("scenario_summary"), latencies_ms=list(run.get("latencies_ms") or []),
                extra_percentiles={str(k): float(v) for k, v in (s.get("extra_percentiles") or {}).items()},
            ))
    _disambiguate_hosts(out)
    _disambiguate_files(out)
    return out


def _disambiguate_hosts(rows: list[Row]) -> None:
    """Two different hosts with the same CPU/GPU model get their host name appended."""
    hosts: dict[str, set[str]] = {}
    for r in rows:
        hosts.setdefault(r.machine, set()).add(r.host)
    for r in rows:
        if len(hosts[r.machine]) > 1:
            r.machine = f"{r.machine} @{r.host}"


def _disambiguate_files(rows: list[Row]) -> None:
    """Two files with the same run (machine, model, engine, precision, scenario, batch), e.g. two
    server runs at different --qps or a re-run, get the file name appended to their machine, so
    their rows, plot series and baselines stay apart."""
    files: dict[tuple[Any, ...], set[str]] = {}
    for r in rows:
        files.setdefault((r.machine, r.model, r.engine, r.precision, r.device, r.scenario, r.batch), set()).add(r.file)
    clashing = {key[0] for key, names in files.items() if len(names) > 1}
    for r in rows:
        if r.machine in clashing:
            r.machine = f"{r.machine} · {r.file}"


def parse_baseline(text: str | None) -> dict[str, str]:
    """'engine=ort,machine=EPYC' (or just 'ort', meaning the engine) -> a filter dict."""
    if not text:
        return {}
    out = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, value = part.partition("=")
        if not sep:
            key, value = "engine", part
        key = key.strip()
        if key not in BASELINE_KEYS:
            raise ResdeployError(f"--baseline key '{key}' is not one of: {', '.join(BASELINE_KEYS)}")
        if not value.strip():  # an empty value would match every run as a substring
            raise ResdeployError(f"--baseline '{part}' gives no value for '{key}'")
        out[key] = value.strip()
    return out


def _matches(row: Row, flt: dict[str, str]) -> bool:
    # Substring match, case-insensitive: users type "EPYC" or "H100", not the full model name.
    return all(v.lower() in str(getattr(row, k)).lower() for k, v in flt.items())


def apply_speedups(rows: list[Row], baseline: str | None = None) -> str:
    """Speed-up = throughput / the baseline's throughput at the same batch and scenario.

    The baseline is the first row matching ``baseline`` (default: the first row's
    engine on the first row's machine). Returns a description of the baseline.
    """
    if not rows:
        return ""
    flt = parse_baseline(baseline)
    if not flt:
        first = rows[0]
        flt = {"engine": first.engine, "machine": first.machine, "precision": first.precision}
        exact = True
    else:
        exact = False
    base_rows = [r for r in rows if (all(str(getattr(r, k)) == v for k, v in flt.items()) if exact
                                     else _matches(r, flt))]
    if not base_rows:
        raise ResdeployError(f"--baseline {baseline} matches no run",
                             hint="engines here: " + ", ".join(sorted({r.engine for r in rows})))
    ref = base_rows[0]
    key = (ref.engine, ref.machine, ref.precision, ref.device)
    # Each model is compared with the baseline engine on the same model, unless the
    # baseline names a model (then every row is compared with that model's runs).
    per_model = "model" not in flt

    def slot(r: Row) -> tuple[str, int, str]:
        return (r.model if per_model else "", r.batch, r.scenario)

    by_slot = {slot(r): r for r in reversed(rows) if (r.engine, r.machine, r.precision, r.device) == key
               and (per_model or _matches(r, {"model": flt["model"]}))}
    for r in rows:
        b = by_slot.get(slot(r))
        r.speedup = r.throughput / b.throughput if b and b.throughput > 0 else None
    where = f"{ref.engine} {ref.precision} on {ref.machine}"
    return where if per_model else f"{ref.model} {where}"


# --- tables ----------------------------------------------------------------------------------------
NUMERIC = ("batch", "p50", "p90", "p99", "mean", "img/s", "speed-up")
CAPTION = "latency per batch in ms; speed-up = throughput / baseline throughput at the same batch"


def is_numeric(column: str) -> bool:
    """The fixed numeric columns, and extra percentiles such as 'p99.9' (bench --percentile)."""
    return column in NUMERIC or re.fullmatch(r"p\d+(\.\d+)?", column) is not None


def _fmt_ms(v: float) -> str:
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.1f}"


def _fmt_rate(v: float) -> str:
    return f"{v:.1f}" if v < 1000 else f"{v:.0f}"


def columns_for(rows: Sequence[Row]) -> list[str]:
    """Machine and model columns only when the rows differ in them."""
    cols = []
    if len({r.machine for r in rows}) > 1:
        cols.append("machine")
    if len({r.model for r in rows}) > 1:
        cols.append("model")
    if len({r.scenario for r in rows}) > 1:  # a server run's latency includes queueing: never mix them up
        cols.append("scenario")
    extra = list(dict.fromkeys(k for r in rows for k in r.extra_percentiles))
    numeric = list(NUMERIC)
    return cols + ["engine", "precision", *numeric[:4], *extra, *numeric[4:]]


def row_cells(r: Row, columns: Sequence[str]) -> list[str]:
    p99 = _fmt_ms(r.p99_ms) + ("" if r.tail_reliable else "*")
    cell = {"machine": r.machine + (" †" if r.emulation else ""), "model": r.model, "scenario": r.scenario, "engine": r.engine,
            "precision": r.precision, "batch": str(r.batch), "p50": _fmt_ms(r.p50_ms), "p90": _fmt_ms(r.p90_ms),
            "p99": p99, "mean": _fmt_ms(r.mean_ms), "img/s": _fmt_rate(r.throughput),
            "speed-up": "–" if r.speedup is None else f"{r.speedup:.2f}×"}
    for key in columns:
        if key not in cell:  # an extra percentile (bench --percentile), absent from rows measured without it
            cell[key] = _fmt_ms(r.extra_percentiles[key]) if key in r.extra_percentiles else "–"
    if r.emulation and "machine" not in columns:  # the † must show on the row even without a machine column
        cell["engine"] += " †"
    return [cell[c] for c in columns]


def footnotes(rows: Sequence[Row]) -> list[str]:
    notes: list[str] = []
    if any(not r.tail_reliable for r in rows):
        notes.append("* fewer than 100 samples: p99 is close to the maximum; run longer (--duration) for a real tail")
    for note in sorted({r.emulation for r in rows if r.emulation}):
        notes.append(f"† {note}")
    servers = [r for r in rows if r.scenario == "server" and r.summary]
    several_machines = len({r.machine for r in rows}) > 1
    for r in servers:
        s = r.summary or {}
        slo = s.get("slo_ms")
        verdict = "" if slo is None else (" — SLO met" if s.get("slo_met") else " — SLO MISSED")
        offered = f", {s['offered_qps']:.1f} offered" if s.get("offered_qps") is not None else ""
        where = f" on {r.machine}" if several_machines else ""
        notes.append(f"server {r.engine} batch {r.batch}{where}: {s.get('achieved_qps', 0):.1f} QPS achieved of "
                     f"{s.get('target_qps', 0):g} asked{offered}, p99 {r.p99_ms:.2f} ms"
                     + (f" vs SLO {slo:g} ms" if slo is not None else "") + verdict
                     + (" (overloaded: queue kept growing)" if s.get("overloaded") else ""))
    return notes


def rich_table(rows: Sequence[Row], *, title: str | None = None) -> Any:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    machines = list(dict.fromkeys(r.machine for r in rows))
    columns = columns_for(rows)
    # A light box keeps engine x batch tables inside 80 columns (CI logs, pipes).
    table = Table(title=escape(title) if title else None, caption=CAPTION, box=box.SIMPLE_HEAD, pad_edge=False)
    body = []
    for r in rows:
        cells = row_cells(r, columns)
        if "machine" in columns:  # full machine names go below the table: they would not fit in 80 columns
            cells[0] = f"m{machines.index(r.machine) + 1}" + (" †" if r.emulation else "")
        body.append(cells)
    for i, col in enumerate(columns):
        # Never truncate a cell: the widest value (or header) sets the column's width.
        width = max([len(col)] + [len(c[i]) for c in body])
        table.add_column(col, justify="right" if is_numeric(col) else "left", no_wrap=True, min_width=width)
    for cells in body:
        table.add_row(*(escape(c) for c in cells))  # names from result files are text, not rich markup
    return table


def machine_legend(rows: Sequence[Row]) -> list[str]:
    """'m1 = AMD EPYC (2 cpus)' lines for the terminal table (empty with a single machine)."""
    machines = list(dict.fromkeys(r.machine for r in rows))
    return [f"m{i + 1} = {m}" for i, m in enumerate(machines)] if len(machines) > 1 else []


def markdown_table(rows: Sequence[Row]) -> str:
    columns = columns_for(rows)
    lines = [f"_{CAPTION}_", "", "| " + " | ".join(columns) + " |",
             "|" + "|".join("---:" if is_numeric(c) else "---" for c in columns) + "|"]
    lines += ["| " + " | ".join(row_cells(r, columns)) + " |" for r in rows]
    return "\n".join(lines)


# --- plots -----------------------------------------------------------------------------------------
def make_plots(rows: Sequence[Row]) -> dict[str, bytes]:
    """PNG bytes: latency against batch size, throughput bars, latency CDF (smallest batch)."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    from resdeploy.stats import empirical_cdf

    series: dict[str, list[Row]] = {}
    for r in rows:
        series.setdefault(r.series, []).append(r)
    plots: dict[str, bytes] = {}

    def png(fig: Any) -> bytes:
        buf = io.BytesIO()
        # bbox_inches="tight" keeps the legend below the axes inside the image.
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        return buf.getvalue()

    def legend_below(ax: Any) -> None:
        # Below the axes, never over the data (a legend inside hid bars and curves).
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            # At most 6 rows: a one-column list of many series was taller than the plot itself.
            ncol = len(labels) if len(labels) <= 3 else max(2, -(-len(labels) // 6))
            ax.legend(handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16),
                      ncol=min(ncol, 3), frameon=False)

    batches = sorted({r.batch for r in rows})  # x axis of the first two plots; the CDF is drawn at the smallest
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for name, rs in series.items():
        rs = sorted(rs, key=lambda r: r.batch)
        ax.plot([r.batch for r in rs], [r.p50_ms for r in rs], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    plain_log_axis(ax.yaxis)
    ax.set_xlabel("batch size")
    ax.set_ylabel("p50 latency per batch (ms)")
    ax.set_title("Latency against batch size")
    ax.grid(True, which="both", alpha=0.3)
    legend_below(ax)
    plots["latency_vs_batch"] = png(fig)

    names = list(series)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / max(len(names), 1)
    x = np.arange(len(batches))
    for i, name in enumerate(names):
        by_b = {r.batch: r.throughput for r in series[name]}
        ax.bar(x + i * width - 0.4 + width / 2, [by_b.get(b, 0.0) for b in batches], width, label=name)
    ax.set_xticks(x, [str(b) for b in batches])
    ax.set_xlabel("batch size")
    ax.set_ylabel("throughput (images/s)")
    ax.set_title("Throughput")
    ax.grid(True, axis="y", alpha=0.3)
    legend_below(ax)
    plots["throughput"] = png(fig)

    fig, ax = plt.subplots(figsize=(10, 4.5))
    smallest = min(batches) if batches else 1
    for name, rs in series.items():
        for r in rs:
            if r.batch == smallest and r.latencies_ms:
                xs, ys = empirical_cdf(r.latencies_ms)
                ax.step(xs, ys, where="post", label=name)
    ax.set_xscale("log")
    plain_log_axis(ax.xaxis)
    ax.set_xlabel(f"latency at batch {smallest} (ms)")
    ax.set_ylabel("fraction of inferences")
    ax.set_title("Latency CDF")
    ax.grid(True, which="both", alpha=0.3)
    legend_below(ax)
    plots["latency_cdf"] = png(fig)
    return plots


# --- documents -------------------------------------------------------------------------------------
def _machine_details(results: Sequence[tuple[str, dict[str, Any]]]) -> list[dict[str, str]]:
    out = []
    for source, data in results:
        m = data.get("machine") or {}
        cpu = m.get("cpu") or {}
        gpus = m.get("gpus") or []
        libs = m.get("libraries") or {}
        out.append({
            "file": Path(source).name,
            "created": str(data.get("created", "")),
            "host": str(m.get("hostname", "")),
            "cpu": f"{cpu.get('model', '?')}, {cpu.get('usable_cpus', '?')} of {cpu.get('logical_cores', '?')} cpus",
            "gpu": ", ".join(f"{g.get('name')} (driver {g.get('driver')})" for g in gpus) or "—",
            "cuda": str((m.get("cuda") or {}).get("torch_cuda") or "—"),
            "os": str(m.get("os", "")),
            "cpu flags": cpu_features(cpu.get("flags") or []),
            "threads": _threads(data),
            "libraries": ", ".join(f"{k} {v}" for k, v in sorted(libs.items())),
        })
    return out


def _threads(data: dict[str, Any]) -> str:
    """The intra-op threads the engines were given (--threads), and the thread variables set."""
    cfg = data.get("config") or {}
    threads = cfg.get("threads_effective", cfg.get("threads"))
    env = (data.get("machine") or {}).get("env") or {}
    text = str(threads) if threads else "runtime default"
    return text + "".join(f", {k}={v}" for k, v in sorted(env.items()) if k.endswith("THREADS"))


METHOD = ("Each engine ran one runner per batch size on random inputs rotated over several buffers, "
          "after warm-up, until both the iteration and duration minimums were met. Latency per inference "
          "is timed with CUDA events on GPUs and a monotonic clock on CPUs; throughput is images / wall time. "
          "Speed-up is throughput over the baseline's throughput at the same batch size.")


def render_markdown(rows: Sequence[Row], results: Sequence[tuple[str, dict[str, Any]]], baseline: str,
                    plot_files: dict[str, str], title: str) -> str:
    parts = [f"# {title}", "", METHOD, "", f"Baseline for speed-ups: **{baseline}**.", "", markdown_table(rows), ""]
    # A line starting "* " is a Markdown list item (the asterisk would vanish): escape it.
    parts += [("\\" + n if n.startswith("*") else n) + "  " for n in footnotes(rows)] + [""]
    for name, rel in plot_files.items():
        parts += [f"![{name.replace('_', ' ')}]({rel})", ""]
    parts += ["## Machines", "", "| file | created | host | cpu | cpu flags | threads | gpu | cuda | libraries |",
              "|---|---|---|---|---|---|---|---|---|"]
    parts += [f"| {d['file']} | {d['created']} | {d['host']} | {d['cpu']} | {d['cpu flags']} | {d['threads']} | "
              f"{d['gpu']} | {d['cuda']} | {d['libraries']} |" for d in _machine_details(results)]
    return "\n".join(parts) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}th,td{border:1px solid #ccc;padding:.3rem .6rem}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}img{width:100%;height:auto;margin:.5rem 0}
.note{color:#555;font-size:.85rem}"""


HTML_UNITS = {"p50": "p50 (ms)", "p90": "p90 (ms)", "p99": "p99 (ms)", "mean": "mean (ms)",
              "img/s": "throughput (images/s)", "speed-up": "speed-up (×)"}


def render_html(rows: Sequence[Row], results: Sequence[tuple[str, dict[str, Any]]], baseline: str,
                plots: dict[str, bytes], title: str, *, tradeoff_table: str = "") -> str:
    e = html.escape
    columns = columns_for(rows)
    head = "".join(f"<th>{e(HTML_UNITS.get(c, c + ' (ms)' if is_numeric(c) and c != 'batch' else c))}</th>"
                   for c in columns)
    body = []
    for r in rows:
        cells = row_cells(r, columns)
        body.append("<tr>" + "".join(
            f"<td{' class=n' if is_numeric(col) else ''}>{e(c)}</td>" for col, c in zip(columns, cells, strict=True))
            + "</tr>")
    notes = "".join(f"<p class=note>{e(n)}</p>" for n in footnotes(rows))
    imgs = "".join(
        f'<h3>{e(name.replace("_", " "))}</h3><img alt="{e(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(data).decode()}">' for name, data in plots.items())
    keys = ("file", "created", "host", "cpu", "cpu flags", "threads", "gpu", "cuda", "os", "libraries")
    mhead = "".join(f"<th>{k}</th>" for k in keys)
    mrows = "".join("<tr>" + "".join(f"<td>{e(d[k])}</td>" for k in keys) + "</tr>" for d in _machine_details(results))
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{e(title)}</title><style>{_CSS}</style>"
            f"</head><body><h1>{e(title)}</h1><p>{e(METHOD)}</p><p>Baseline for speed-ups: <b>{e(baseline)}</b>.</p>"
            + (f"<h2>Accuracy against speed</h2><p class=note>Each point is a variant on an engine: its top-1 "
               f"drop from its reference against its throughput. Bold rows and red points are the Pareto front: "
               f"nothing else is both faster and at least as accurate.</p>{tradeoff_table}" if tradeoff_table else "")
            + f"<h2>Latency and throughput</h2><p class=note>Latency per batch in milliseconds.</p>"
            f"<table><tr>{head}</tr>{''.join(body)}</table>{notes}<h2>Plots</h2>{imgs}"
            f"<h2>Machines</h2><table><tr>{mhead}</tr>{mrows}</table></body></html>\n")


@dataclass
class ReportResult:
    rows: list[Row]
    baseline: str
    output: Path | None
    sources: list[str]
    tradeoff: list[Any] = field(default_factory=list)  # tradeoff.TradeoffPoint: bench rows with an accuracy

    def to_dict(self) -> dict[str, Any]:
        return {"schema": REPORT_SCHEMA, "baseline": self.baseline, "output": str(self.output) if self.output else None,
                "sources": self.sources, "rows": [r.to_dict() for r in self.rows],
                "tradeoff": [p.to_dict() for p in self.tradeoff]}


def sort_rows(rows: list[Row]) -> list[Row]:
    """Group by batch, then machine/engine in first-seen order, so a table reads across engines."""
    order: dict[tuple[str, str, str], int] = {}
    models: dict[str, int] = {}
    for r in rows:
        order.setdefault((r.machine, r.engine, r.precision), len(order))
        models.setdefault(r.model, len(models))
    return sorted(rows, key=lambda r: (r.scenario, models[r.model], r.batch,
                                       order[(r.machine, r.engine, r.precision)]))


@dataclass
class ReportConfig:
    """Where the report goes (.html with embedded plots, .md with PNGs beside it; None: rows only)."""

    output: str | None = None
    baseline: str | None = None  # engine (or machine/engine) the speed-ups are against
    title: str = "resdeploy benchmark report"
    force: bool = False  # replace an existing report (and a Markdown report's plot folder)

    def check(self) -> None:
        """Everything about the output path, before the inputs are read and the plots drawn."""
        from resdeploy.artifacts import check_output_file

        if self.output is None:
            return
        out = Path(self.output)
        if out.suffix.lower() not in (".html", ".htm", ".md"):
            raise ResdeployError(f"report output must end in .html or .md, got '{out.name}'")
        if out.is_dir():
            raise ResdeployError(f"{out} is a directory; pass a file path such as {out / ('report' + out.suffix)}")
        if out.suffix.lower() == ".md" and _plot_dir(out).exists():
            if not _plot_dir(out).is_dir():
                raise ResdeployError(f"{_plot_dir(out)} exists and is not a directory; the Markdown report's plots "
                                     "go there")
            if not self.force:
                raise ResdeployError(f"{_plot_dir(out)} already exists; pass --force to overwrite it")
        check_output_file(out, force=self.force)


def report(source: Sequence[str | os.PathLike[str]], config: ReportConfig | str | os.PathLike[str] | None = None, *,
           reporter: Any = None, output: str | os.PathLike[str] | None = None, baseline: str | None = None,
           title: str | None = None, force: bool | None = None) -> ReportResult:
    """Merge the bench results ``source`` and write the report ``config.output`` describes.

    ``report(paths, "report.html", baseline=...)`` (earlier releases) works too. The report is
    committed exclusively: an existing one is replaced only with ``force``.
    """
    from resdeploy.artifacts import commit_file

    if isinstance(config, (str, os.PathLike)):
        output, config = config, None
    cfg = config or ReportConfig()
    if output is not None or baseline is not None or title is not None or force is not None:
        cfg = ReportConfig(output=os.fspath(output) if output is not None else cfg.output,
                           baseline=baseline if baseline is not None else cfg.baseline,
                           title=title if title is not None else cfg.title,
                           force=force if force is not None else cfg.force)
    cfg.check()
    paths, baseline, title = source, cfg.baseline, cfg.title
    out = Path(cfg.output) if cfg.output is not None else None
    from resdeploy import tradeoff

    paths, layer_reports = _split_layer_reports(_expand_folders(paths))  # a results folder: bench + validate JSON
    bench_paths, accuracies = tradeoff.split_paths(paths, reporter)  # validate results join the bench rows
    results = load_results(bench_paths)
    rows = rows_from(results)
    base = apply_speedups(rows, baseline)
    rows = sort_rows(rows)
    points = tradeoff.points(rows, results, accuracies)
    if out is not None:
        plots = make_plots(rows)
        plots.update(_layer_plots(layer_reports))
        if points:
            plots = {"accuracy_vs_speed": tradeoff.plot(points), **plots}
        if out.suffix.lower() == ".md":
            _write_markdown(out, plots, rows, results, base, title, force=cfg.force)
        else:
            commit_file(out, render_html(rows, results, base, plots, title,
                                         tradeoff_table=tradeoff.html_table(points) if points else ""),
                        force=cfg.force)
    return ReportResult(rows=rows, baseline=base, output=out, sources=[s for s, _ in results] +
                        [a.source for a in accuracies], tradeoff=points)


def _split_layer_reports(paths: Sequence[str | os.PathLike[str]]
                         ) -> tuple[list[str | os.PathLike[str]], list[tuple[str, dict[str, Any]]]]:
    """Bench results on one side, saved ``resdeploy layers --json`` reports (drawn as plots) on the other."""
    import json

    from resdeploy.precision.layers import LAYERS_SCHEMA

    bench: list[str | os.PathLike[str]] = []
    layers: list[tuple[str, dict[str, Any]]] = []
    for p in paths:
        try:
            data = json.loads(Path(p).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            bench.append(p)  # load_results says what is wrong with it
            continue
        if isinstance(data, dict) and data.get("schema") == LAYERS_SCHEMA and isinstance(data.get("layers"), list):
            layers.append((str(p), data))
        else:
            bench.append(p)
    if layers and not bench:
        raise ResdeployError("report needs at least one bench result beside the layer reports")
    return bench, layers


def _layer_plots(layer_reports: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, bytes]:
    from resdeploy.precision.layers import plot_bytes

    return {f"layer_errors_{Path(src).stem}": plot_bytes(data, "png") for src, data in layer_reports}


def _plot_dir(out: Path) -> Path:
    """Where a Markdown report's PNGs go: report.md -> report_plots/."""
    return out.with_name(out.stem + "_plots")


def _write_markdown(out: Path, plots: dict[str, bytes], rows: Sequence[Row],
                    results: Sequence[tuple[str, dict[str, Any]]], baseline: str, title: str, *, force: bool) -> None:
    """The document and its PNGs are written together or not at all.

    The PNGs go into a temporary sibling of the plot directory, the document is written
    (atomically) while that directory is still temporary, and only then is the directory
    renamed into place. A failure while drawing, writing the PNGs or writing the document
    (a full disk, Ctrl-C) leaves the previous report and plots as they were, not new plots
    beside an old document; after the document only a rename in the same directory is left.
    Without ``force`` both commits are exclusive, the document's first: of two runs writing
    one report, the one whose document lands also gets the plots.
    """
    from resdeploy.artifacts import atomic_dir, commit_file

    plot_dir = _plot_dir(out)
    rel = {name: f"{plot_dir.name}/{name}.png" for name in plots}
    document = render_markdown(rows, results, baseline, rel, title)  # rendered before anything is written
    with atomic_dir(plot_dir, force=force) as tmp:
        for name, data in plots.items():
            (tmp / f"{name}.png").write_bytes(data)
        commit_file(out, document, force=force)


def bench_rows(result: Any) -> tuple[list[Row], str]:
    """Rows for the table ``bench`` prints, speed-ups against its first engine."""
    data = result.to_dict() if hasattr(result, "to_dict") else result
    rows = rows_from([("(this run)", data)])
    base = apply_speedups(rows)
    return sort_rows(rows), base
