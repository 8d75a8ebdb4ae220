"""Per-layer error of an INT8 (or FP16) variant against its FP32 parent: which layers hurt.

For every quantized node it measures, on the user's data:

* the **cumulative** error: its output in the variant against the same tensor in FP32
  (SQNR in dB and mean per-sample cosine), i.e. everything quantized up to there;
* the **isolated** error: the same node fed the *exact* FP32 tensors through its own
  Q/DQ pairs (and de-quantized weights), every other node in FP32, i.e. what this node's
  quantization alone adds. This is the ranking: cumulative error grows with depth and
  blames every layer after a bad one, the isolated error points at the bad one.

Both are read in two passes over the data, not one session per node: pass one runs the
variant with each quantized node's output added as a graph output, pass two runs the
FP32 graph with, beside each node, a copy of it wired through its Q/DQ (built by
``isolation_model``). Statistics are accumulated batch by batch, so memory is one batch
of activations, whatever the data size.

Names: node names are the ONNX graph's; the PyTorch module each came from is the
mapping ``resdeploy export`` records in the FP32 manifest (``node_modules``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from resdeploy.console import QUIET, Reporter
from resdeploy.errors import ResdeployError
from resdeploy.precision.layer_stats import ISO as _ISO
from resdeploy.precision.layer_stats import LayerError, iso_copy, rank_layers
from resdeploy.precision.layer_stats import plain_session as _session
from resdeploy.precision.layer_stats import with_outputs as _with_outputs
from resdeploy.precision.revert import PASSTHROUGH_OPS, producers, quantized_nodes

LAYERS_SCHEMA = "resdeploy.layers/1"


@dataclass
class LayerReport:
    """Ranked per-layer errors of one variant, and what they were measured on."""

    candidate: str
    parent: str
    precision: str
    samples: int
    data: str
    layers: list[LayerError] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": LAYERS_SCHEMA, "candidate": self.candidate, "parent": self.parent,
                "precision": self.precision, "samples": self.samples, "data": self.data,
                "layers": [asdict(x) for x in self.layers]}

    def ranking(self) -> list[str]:
        return [x.node for x in self.layers]


# ------------------------------------------------------------------------------------------
def isolation_model(int8: Any, fp32: Any, nodes: Sequence[str]) -> tuple[Any, dict[str, str]]:
    """The FP32 graph plus, for each node in ``nodes``, a copy fed through the INT8 graph's Q/DQ.

    A copy's activation inputs are the FP32 tensors quantized and de-quantized with the
    INT8 graph's own scales and zero points (through the same pass-through ops), its
    weights the INT8 graph's quantized ones. Returns the model and node -> copy's output.
    """
    import copy


    model = copy.deepcopy(fp32)
    graph = model.graph
    prod = producers(int8)
    int8_inits = {i.name: i for i in int8.graph.initializer}
    fp_tensors = {i.name for i in graph.input} | {o for n in graph.node for o in n.output}
    by_name = {n.name: n for n in int8.graph.node}
    copied_inits: set[str] = set()
    made: dict[str, str] = {}

    def init(name: str) -> str:
        if name and name not in copied_inits:
            t = copy.deepcopy(int8_inits[name])
            t.name = _ISO + name
            graph.initializer.append(t)
            copied_inits.add(name)
        return _ISO + name if name else name

    def source(tensor: str) -> str:
        """The isolated twin of an INT8-graph tensor: FP32 value, then this node's own Q/DQ."""
        if not tensor or tensor in made:
            return made.get(tensor, tensor)
        if tensor in int8_inits:
            out = init(tensor)
        else:
            p = prod.get(tensor)
            if p is not None and (p.op_type in ("QuantizeLinear", "DequantizeLinear") or p.op_type in PASSTHROUGH_OPS):
                ins = [source(i) if i not in int8_inits else init(i) for i in p.input]
                out = _ISO + tensor
                graph.node.append(iso_copy(p, ins, [out]))
            elif tensor in fp_tensors:
                out = tensor  # a compute node's (or the graph input's) exact FP32 value
            else:
                raise ResdeployError(f"the INT8 graph's tensor '{tensor}' has no FP32 counterpart",
                                     hint="the variant was not made from this FP32 model by `resdeploy quantize`")
        made[tensor] = out
        return out

    outputs: dict[str, str] = {}
    for name in nodes:
        node = by_name[name]
        ins = [source(i) for i in node.input]
        outs = [_ISO + o for o in node.output]
        graph.node.append(iso_copy(node, ins, outs))
        outputs[name] = outs[0]
    return model, outputs


def layer_errors(int8: Any, fp32: Any, inputs: np.ndarray, *, node_modules: dict[str, str] | None = None,
                 batch_size: int = 16, reporter: Reporter = QUIET) -> list[LayerError]:
    """Rank the quantized nodes of ``int8`` (a Q/DQ ModelProto) by isolated error against ``fp32``.

    ``fp32`` is the graph ``int8`` was quantized from (node and tensor names shared):
    for a resdeploy INT8 variant, the pre-processed FP32 parent (``int8.pre_process``).
    """
    import copy

    nodes = [n for n in quantized_nodes(int8)]
    if not nodes:
        raise ResdeployError("the variant has no quantized nodes to compare (no DequantizeLinear feeds a layer)")
    fp_names = {n.name for n in fp32.graph.node}
    missing = [n.name for n in nodes if n.name not in fp_names]
    if missing:
        raise ResdeployError(f"{len(missing)} quantized node(s) of the variant (e.g. '{missing[0]}') are not in its "
                             "FP32 parent: the variant was not made from this parent",
                             hint="pass the variant written by `resdeploy quantize` from this FP32 export")
    names = [n.name for n in nodes]
    outs = [n.output[0] for n in nodes]
    # The reference is the FP32 twin node's output, not the tensor of the same name: ONNX
    # Runtime's quantizer folds a Relu into the Q after a Conv and gives the Conv the
    # Relu's output name, so that name holds pre-ReLU values in the variant.
    twin = {n.name: n for n in fp32.graph.node}
    refs = [twin[n].output[0] for n in names]
    q_model = _with_outputs(copy.deepcopy(int8), outs)
    iso_model, iso_out = isolation_model(int8, fp32, names)
    _with_outputs(iso_model, refs + [iso_out[n] for n in names])
    q_sess, f_sess = _session(q_model), _session(iso_model)
    return rank_layers(q_sess, f_sess, inputs, nodes=nodes, outs=outs, refs=refs, iso_out=iso_out,
                       node_modules=node_modules, batch_size=batch_size, reporter=reporter,
                       description=f"comparing {len(names)} layers")


# ------------------------------------------------------------------------------------------
def analyze(candidate: str | os.PathLike[str], data: str, *, samples: int = 64, seed: int = 0,
            batch_size: int = 16, reporter: Reporter | None = None) -> LayerReport:
    """The per-layer report of an INT8 or FP16 variant on ``data`` (images or tensors), ranked by error.

    The FP32 reference is the parent named in the variant's manifest; a variant without
    one is refused (exit 2): there is nothing to compare with.
    """
    import onnx

    from resdeploy.artifacts import load_onnx
    from resdeploy.data import open_data
    from resdeploy.errors import check_positive_int
    from resdeploy.onnx_io import static_sample_shape
    from resdeploy.precision import int8 as int8_mod
    from resdeploy.resolve import preprocess_from, resolve_artifact

    rep = reporter or Reporter(quiet=True)
    check_positive_int(samples, "--samples")
    check_positive_int(batch_size, "--batch-size")
    art = resolve_artifact(candidate, role="candidate", zoo=False)
    assert art.path is not None
    cand = art.path
    if art.kind != "onnx":
        raise ResdeployError(f"{cand} is not an ONNX model; `layers` compares an INT8 (Q/DQ) variant with its FP32 parent",
                             hint="pass the directory `resdeploy quantize --precision int8` wrote")
    load_onnx(cand)
    kind = art.precision
    if kind not in ("int8", "fp16"):
        raise ResdeployError(f"{cand} is an {kind} model; `layers` compares an INT8 (Q/DQ) or FP16 variant with its "
                             "FP32 parent", hint="pass the directory `resdeploy quantize` wrote")
    manifest = art.manifest.to_dict() if art.manifest else None
    parent = art.parent_path()  # the manifest's typed lineage
    if parent is None:
        named = art.manifest is not None and art.manifest.parent is not None
        raise ResdeployError(f"{cand} has no FP32 parent{' that still exists' if named else ''} in its manifest",
                             hint="pass a variant written by `resdeploy quantize` (its manifest names the FP32 export)")
    from resdeploy.data import check_source

    check_source(data)
    spec = preprocess_from(manifest, what=str(cand), reporter=rep)
    ds = open_data(data, spec, samples=samples, seed=seed, reporter=rep, tensor_shape=static_sample_shape(cand))
    inputs, _ = ds.load(rep, description="layer-report data")
    if len(inputs) == 0:
        raise ResdeployError(f"no usable samples in {data}")
    parent_art = resolve_artifact(parent, role="reference", zoo=False)
    parent_manifest = parent_art.manifest.to_dict() if parent_art.manifest else {}
    variant = onnx.load(os.fspath(cand))
    if kind == "fp16":  # converted from the FP32 export as it is (no pre-processing): same node names
        from resdeploy.precision.fp16_layers import fp16_layer_errors

        fp32 = onnx.load(os.fspath(parent))
        rows = fp16_layer_errors(variant, fp32, inputs, node_modules=node_modules_of(parent_manifest, fp32),
                                 batch_size=batch_size, reporter=rep)
        return LayerReport(candidate=str(cand), parent=str(parent), precision=kind, samples=int(len(inputs)),
                           data=str(data), layers=rows)
    with tempfile.TemporaryDirectory(prefix="resdeploy-layers-") as tmp:
        pre = Path(tmp) / "preprocessed.onnx"
        with rep.step("pre-processing the FP32 parent as quantize did"):
            int8_mod.pre_process(parent, pre)
        fp32 = onnx.load(os.fspath(pre))
    if _equalized(manifest):  # quantize equalized the weights it calibrated: compare against the same FP32 graph
        from resdeploy.precision.equalize import equalize

        equalize(fp32)
    modules = node_modules_of(parent_manifest, fp32)
    rows = layer_errors(variant, fp32, inputs, node_modules=modules, batch_size=batch_size, reporter=rep)
    return LayerReport(candidate=str(cand), parent=str(parent), precision=kind, samples=int(len(inputs)),
                       data=str(data), layers=rows)


def _equalized(manifest: dict[str, Any] | None) -> bool:
    quant = (manifest or {}).get("quantization")
    eq = quant.get("equalization") if isinstance(quant, dict) else None
    return bool(isinstance(eq, dict) and eq.get("applied"))


def node_modules_of(manifest: dict[str, Any], fp32: Any | None = None) -> dict[str, str]:
    """Node name -> PyTorch module: the export manifest's record, else the graph's own metadata."""
    recorded = manifest.get("node_modules")
    if isinstance(recorded, dict) and recorded:
        return {str(k): str(v) for k, v in recorded.items()}
    if fp32 is None:
        return {}
    from resdeploy.graph_modules import node_module_map

    return node_module_map(fp32)


# ------------------------------------------------------------------------------------------
def plot_bytes(report: LayerReport | dict[str, Any], fmt: str = "png", *, top: int = 30) -> bytes:
    """A bar chart of the isolated and cumulative SQNR of the worst ``top`` layers, as PNG or SVG bytes.

    Takes the report or its ``to_dict()`` (a saved ``layers --json``), so ``report`` can draw it too.
    """
    import io

    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    data = report.to_dict() if isinstance(report, LayerReport) else report
    rows = list(data["layers"])[:top]

    def finite(v: Any) -> float:
        return float(v) if v is not None and np.isfinite(float(v)) else 0.0

    labels = [r.get("module") or r["node"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.28 * len(rows) + 1)))
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [finite(r["isolated_sqnr_db"]) for r in rows], height=0.4, label="this layer alone")
    ax.barh(y + 0.2, [finite(r["sqnr_db"]) for r in rows], height=0.4, label="cumulative (variant)")
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("SQNR vs FP32 (dB, higher is better)")
    ax.set_title(f"Per-layer {str(data['precision']).upper()} error, worst first ({data['samples']} samples)")
    ax.legend(loc="lower right", fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def plot(report: LayerReport, path: str | os.PathLike[str], *, top: int = 30, force: bool = False) -> Path:
    """Write the chart of ``plot_bytes`` to ``path`` (.png or .svg) through ``artifacts.commit_file``
    (an existing file is replaced only with ``force``)."""
    from resdeploy.artifacts import commit_file

    p = Path(path)
    fmt = p.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise ResdeployError(f"--plot writes .png or .svg, not '{p.suffix or p.name}'")
    return commit_file(p, plot_bytes(report, fmt, top=top), force=force)


__all__ = ["LAYERS_SCHEMA", "LayerError", "LayerReport", "analyze", "isolation_model", "layer_errors",
           "node_modules_of", "plot", "plot_bytes"]
