"""Accuracy against speed: which variant to ship, from ``validate`` and ``bench`` results together.

A deployment engineer's question is not "how fast is INT8" but "what is the fastest
variant whose accuracy I can accept". ``report`` is given bench results and validate
results; each bench run is matched to the validate result of the same model file (by
sha256, or by path when the file is gone), and becomes one point: images/s (or p50
latency) against the top-1 drop from its reference. The Pareto front (no other point is
both faster and at least as accurate) is marked: everything off it is dominated.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from resdeploy.errors import ResdeployError

VALIDATE_SCHEMA = "resdeploy.validate/1"


@dataclass
class Accuracy:
    """What a validate result says about one model file."""

    path: str
    sha256: str | None
    precision: str | None
    top1: float  # percent
    reference_top1: float  # percent
    drop_points: float  # reference top-1 minus candidate top-1, percentage points
    samples: int
    source: str


@dataclass
class TradeoffPoint:
    label: str  # model + variant (+ engine), never an opaque id
    model: str
    variant: str
    engine: str
    machine: str
    batch: int
    images_per_s: float
    p50_ms: float
    top1: float
    drop_points: float
    pareto: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_validate_result(data: Any) -> bool:
    return isinstance(data, dict) and data.get("schema") == VALIDATE_SCHEMA


def accuracy_from(data: dict[str, Any], source: str) -> Accuracy:
    """One validate result -> its accuracy facts; one line when it has none (unlabelled data)."""
    from resdeploy.artifacts import sha256_file

    acc = data.get("accuracy")
    cand = data.get("candidate") or {}
    if not isinstance(acc, dict) or "candidate" not in acc or not cand.get("path"):
        raise ResdeployError(f"{source} has no accuracy (validated on unlabelled data?); "
                             "an accuracy-against-speed report needs a labelled validation folder")
    path = str(cand["path"])
    sha = sha256_file(path) if Path(path).is_file() else None
    top1, ref = 100.0 * float(acc["candidate"]["top1"]), 100.0 * float(acc["reference"]["top1"])
    return Accuracy(path=path, sha256=sha, precision=cand.get("precision"), top1=top1, reference_top1=ref,
                    drop_points=round(ref - top1, 4), samples=int(data.get("samples") or 0), source=Path(source).name)


def variant_name(path: str, precision: str | None) -> str:
    """'fp32', 'fp16', 'int8-cpu': the artifact folder's name, as quantize names it."""
    p = Path(path)
    folder = p.parent.name if p.suffix == ".onnx" else p.name
    return folder or (precision or "?")


def match(run: dict[str, Any], accuracies: Sequence[Accuracy]) -> Accuracy | None:
    """The validate result for a bench run's model file: same sha256, else the same real path."""
    sha = run.get("model_sha256")
    for a in accuracies:
        if sha and a.sha256 == sha:
            return a
    model = str(run.get("model", ""))
    target = os.path.realpath(model if model.endswith(".onnx") else os.path.join(model, "model.onnx"))
    for a in accuracies:
        if os.path.realpath(a.path) == target:
            return a
    return None


def points(rows: Sequence[Any], results: Sequence[tuple[str, dict[str, Any]]],
           accuracies: Sequence[Accuracy]) -> list[TradeoffPoint]:
    """Bench rows with a matching validate result, at each row's batch; Pareto front marked per batch."""
    runs = {}
    for source, data in results:
        for run in data["runs"]:
            runs[(Path(source).name, str(run["engine"]), int(run["batch"]), str(run.get("scenario") or "sweep"),
                  str(run.get("precision") or "fp32"))] = run
    out = []
    for r in rows:
        run = runs.get((r.file, r.engine, r.batch, r.scenario, r.precision))
        a = match(run, accuracies) if run is not None else None
        if a is None or r.scenario != "sweep":
            continue
        variant = variant_name(a.path, a.precision)
        out.append(TradeoffPoint(label=f"{r.model} {variant} · {r.engine}", model=r.model, variant=variant,
                                 engine=r.engine, machine=r.machine, batch=r.batch, images_per_s=r.throughput,
                                 p50_ms=r.p50_ms, top1=a.top1, drop_points=a.drop_points))
    for batch in {p.batch for p in out}:
        mark_pareto([p for p in out if p.batch == batch])
    return out


def mark_pareto(pts: Sequence[TradeoffPoint]) -> None:
    """A point is on the front when no other is at least as fast and as accurate, and better in one."""
    for p in pts:
        p.pareto = not any(
            q is not p and q.images_per_s >= p.images_per_s and q.drop_points <= p.drop_points
            and (q.images_per_s > p.images_per_s or q.drop_points < p.drop_points) for q in pts)


def plain_log_axis(axis: Any) -> None:
    """Label a log axis with plain numbers (1, 8, 0.5 ms), at its decades and at 2 and 5 times them.

    Log scales label ticks 2^0 or 4x10^0 by default; and with only the decades labelled, an axis
    spanning less than one (throughputs of 20 to 80 images/s) showed no number at all.
    """
    import matplotlib.ticker

    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(matplotlib.ticker.FuncFormatter(
        lambda v, _pos: f"{v:g}" if f"{v:.1e}"[0] in "25" else ""))


def plot(pts: Sequence[TradeoffPoint]) -> bytes:
    """PNG: top-1 drop (points) against images/s, one panel per batch, front joined and labelled."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    batches = sorted({p.batch for p in pts})
    # One full-width panel per batch, stacked: the points of fast variants sit close together.
    fig, axes = plt.subplots(len(batches), 1, figsize=(10, 3.8 * len(batches)), squeeze=False)
    machines = list(dict.fromkeys(p.machine for p in pts))
    several_models = len({p.model for p in pts}) > 1  # then "int8-cpu · ort" alone does not say whose
    markers = "osD^v<>P"
    for ax, batch in zip(axes[:, 0], batches, strict=True):
        here = [p for p in pts if p.batch == batch]
        for mi, machine in enumerate(machines):
            ms = [p for p in here if p.machine == machine]
            if not ms:
                continue
            ax.scatter([p.images_per_s for p in ms], [p.drop_points for p in ms], marker=markers[mi % len(markers)],
                       c=["#d62728" if p.pareto else "#7f7f7f" for p in ms], s=46, zorder=3,
                       label=machine if len(machines) > 1 else None)
        front = sorted((p for p in here if p.pareto), key=lambda p: p.images_per_s)
        if front:
            ax.plot([p.images_per_s for p in front], [p.drop_points for p in front], color="#d62728", lw=1.2,
                    ls="--", zorder=2, label="Pareto front")
        # Labels take turns at four heights above and below their points (in x order), so neighbours
        # do not overprint.
        for k, p in enumerate(sorted(here, key=lambda p: (p.images_per_s, p.drop_points))):
            ax.annotate(p.label if several_models else f"{p.variant} · {p.engine}", (p.images_per_s, p.drop_points),
                        textcoords="offset points",
                        xytext=(0, (7, -13, 19, -25)[k % 4]), ha="center", fontsize=7)
        ax.set_xscale("log")
        plain_log_axis(ax.xaxis)
        ax.margins(x=0.15, y=0.15)
        ax.set_xlabel(f"throughput at batch {batch} (images/s, log)")
        ax.set_ylabel("top-1 drop vs reference (percentage points)")
        ax.set_title(f"Accuracy against speed, batch {batch}")
        ax.grid(True, which="both", alpha=0.3)
        ax.axhline(0, color="#333", lw=0.6)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False,
                  ncol=min(3, len(machines) + 1))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def html_table(pts: Sequence[TradeoffPoint]) -> str:
    """The points as an HTML table with units in the headers; front rows in bold."""
    import html

    e = html.escape
    several = len({p.machine for p in pts}) > 1
    head = (["machine"] if several else []) + ["model", "variant", "engine", "batch", "top-1 (%)",
                                               "top-1 drop (points)", "p50 latency (ms per batch)",
                                               "throughput (images/s)", "Pareto front"]
    rows = []
    for p in sorted(pts, key=lambda p: (p.batch, -p.images_per_s)):
        cells = ([p.machine] if several else []) + [p.model, p.variant, p.engine, str(p.batch), f"{p.top1:.2f}",
                                                     f"{p.drop_points:+.2f}", f"{p.p50_ms:.3f}",
                                                     f"{p.images_per_s:,.0f}", "yes" if p.pareto else "no"]
        style = " style='font-weight:bold'" if p.pareto else ""
        rows.append(f"<tr{style}>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
    return ("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>")


def split_paths(paths: Sequence[str | os.PathLike[str]], reporter: Any = None
                ) -> tuple[list[str | os.PathLike[str]], list[Accuracy]]:
    """Bench result files (left for ``reporting.load_results``) and the validate results among ``paths``.

    A validate result without accuracy (unlabelled data: agreement only) is left out of the
    accuracy plot with a warning; the bench rows are still reported.
    """
    from resdeploy.artifacts import read_json

    bench: list[str | os.PathLike[str]] = []
    accuracies: list[Accuracy] = []
    unlabelled = False  # validate results seen and left out: with no bench result, still "only validate results"
    for p in paths:
        try:
            data = read_json(p)
        except ResdeployError:
            bench.append(p)  # load_results says what is wrong with it, in its words
            continue
        if is_validate_result(data):
            if not isinstance(data.get("accuracy"), dict):
                if reporter is not None:
                    reporter.warn(f"{p} has no accuracy (validated on unlabelled data): left out of the "
                                  "accuracy-against-speed plot, which needs a labelled validation folder")
                unlabelled = True
                continue
            accuracies.append(accuracy_from(data, str(p)))
        else:
            bench.append(p)
    if not bench and (accuracies or unlabelled):
        raise ResdeployError("only validate results given; add the bench results of the same models")
    return bench, accuracies


def cpu_features(flags: Sequence[str]) -> str:
    """'AVX2, AVX-512, VNNI, AMX' as far as present; what a CPU row needs to explain INT8 speed."""
    have = set(flags)
    named = [("AVX2", {"avx2"}), ("AVX-512", {"avx512f"}), ("VNNI", {"avx512_vnni", "avx_vnni"}),
             ("AMX", {"amx_tile", "amx_int8", "amx_bf16"}), ("NEON", {"asimd"}), ("dot-product", {"asimddp"})]
    shown = [name for name, keys in named if have & keys]
    missing = [name for name, _ in named[:4] if name not in shown] if "avx2" in have else []
    return (", ".join(shown) or "none of AVX2/AVX-512/VNNI/AMX") + (f" (no {', '.join(missing)})" if missing else "")
