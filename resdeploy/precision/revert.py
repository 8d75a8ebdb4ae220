"""Keep chosen layers of a Q/DQ graph in FP32, by removing their Q/DQ pairs.

Mixed precision works on the INT8 graph itself, not by re-running the quantizer with an
exclusion list: a node excluded from ONNX Runtime's quantizer still reads a tensor that
its producer quantized on the way out (``--target cpu`` puts Q/DQ on Conv outputs), so
the error it was excluded for stays. Here a reverted node reads the float tensor that
the Q/DQ pair was made from, walking back through activation and data-movement ops
(Relu, Pad, Slice, ...) whose only job was to carry the quantized value, and its weights
come back as the FP32 parent's own initializers (not the de-quantized INT8 ones).

The same removal serves ``--target cpu`` and ``--target trt``: both are Q/DQ graphs.
Engines fuse a Conv with the residual Add it feeds (TensorRT's Conv+Add+ReLU kernel), so
a Conv is reverted together with that Add (``fusable_groups``): an Add left in INT8 behind
an FP32 Conv would need a fresh Q on the Conv's output and get slower for nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
# Ops that only carry a value (or clamp it): a Q/DQ pair in front of one is there for the
# op that reads its output, so reverting that reader reverts the carrier's input too.
PASSTHROUGH_OPS = frozenset({"Relu", "Clip", "Flatten", "Reshape", "Slice", "Pad", "Transpose", "Squeeze",
                             "Unsqueeze", "Identity"})
WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
_FLOAT_SUFFIX = "__fp32"


@dataclass
class Group:
    """Nodes that go back to FP32 together: a layer and the residual Add its output feeds."""

    lead: str  # the layer the group is named after (a Conv/Gemm, or an Add on its own)
    nodes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"lead": self.lead, "nodes": list(self.nodes)}


def producers(model: Any) -> dict[str, Any]:
    return {out: node for node in model.graph.node for out in node.output}


def consumers(model: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for i in node.input:
            out.setdefault(i, []).append(node)
    return out


def _reads_dq(node: Any, prod: dict[str, Any], seen: set[str] | None = None) -> bool:
    """Does ``node`` read a de-quantized tensor, directly or through pass-through ops?"""
    seen = seen if seen is not None else set()
    for t in node.input:
        p = prod.get(t)
        if p is None or p.name in seen:
            continue
        seen.add(p.name)
        if p.op_type == "DequantizeLinear":
            return True
        if p.op_type in PASSTHROUGH_OPS and _reads_dq(p, prod, seen):
            return True
    return False


def quantized_nodes(model: Any) -> list[Any]:
    """The compute nodes that run quantized (read a DQ output), in graph order."""
    prod = producers(model)
    return [n for n in model.graph.node
            if n.op_type not in QDQ_OPS and n.op_type not in PASSTHROUGH_OPS and _reads_dq(n, prod)]


def fusable_groups(model: Any, order: Sequence[str] | None = None) -> list[Group]:
    """One group per quantized layer, in ``order`` (node names, e.g. most sensitive first).

    A Conv/Gemm's group also holds the Add its output feeds (straight or through its Q/DQ),
    the fusion engines make. An Add already in an earlier group is not repeated, and an Add
    whose Conv came earlier is folded into that Conv's group instead of standing alone.
    """
    nodes = {n.name: n for n in quantized_nodes(model)}
    cons = consumers(model)
    names = [n for n in (order or list(nodes)) if n in nodes]
    taken: set[str] = set()
    groups: list[Group] = []
    for name in names:
        if name in taken:
            continue
        members = [name]
        node = nodes[name]
        if node.op_type in WEIGHTED_OPS:
            members += [a.name for a in _fed_adds(node, cons) if a.name in nodes and a.name not in taken]
        taken.update(members)
        groups.append(Group(lead=name, nodes=members))
    return groups


def _fed_adds(node: Any, cons: dict[str, list[Any]]) -> list[Any]:
    """The Adds reading ``node``'s output, directly or through a Q -> DQ pair."""
    out: list[Any] = []
    frontier = list(node.output)
    for _ in range(3):  # output -> Q -> DQ -> Add
        nxt: list[str] = []
        for t in frontier:
            for c in cons.get(t, []):
                if c.op_type == "Add":
                    out.append(c)
                elif c.op_type in QDQ_OPS:
                    nxt.extend(c.output)
        frontier = nxt
    return out


def dequantize_initializer(model: Any, dq: Any) -> np.ndarray:
    """The float value a DequantizeLinear of constants gives (a fallback when no FP32 twin exists)."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    q = numpy_helper.to_array(inits[dq.input[0]]).astype(np.float64)
    scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64)
    zp = numpy_helper.to_array(inits[dq.input[2]]).astype(np.float64) if len(dq.input) > 2 and dq.input[2] else 0.0
    axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
    if np.ndim(scale) == 1 and q.ndim > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale = np.reshape(scale, shape)
        zp = np.reshape(zp, shape) if np.ndim(zp) == 1 else zp
    return ((q - zp) * scale).astype(np.float32)


def revert(int8: Any, fp32: Any, names: Iterable[str]) -> Any:
    """A copy of the Q/DQ graph ``int8`` with the nodes ``names`` reading FP32 tensors and weights.

    ``fp32`` is the FP32 graph the INT8 one was quantized from (same node names), the
    source of the float weights and biases (also of float biases the INT8 graph kept but
    bias correction changed). Q/DQ nodes nobody reads any more are dropped.
    """
    from onnx import numpy_helper

    model = copy.deepcopy(int8)
    graph = model.graph
    prod = producers(model)
    inits = {i.name for i in graph.initializer}
    fp_nodes = {n.name: n for n in fp32.graph.node if n.name}
    fp_inits = {i.name: i for i in fp32.graph.initializer}
    by_name = {n.name: n for n in graph.node}
    fp_prod = producers(fp32)
    added: dict[str, str] = {}
    refolded: dict[str, str] = {}
    done: set[str] = set()

    def float_weight(dq: Any, consumer: Any, pos: int) -> str:
        twin = fp_nodes.get(consumer.name)
        src = str(twin.input[pos]) if twin is not None and pos < len(twin.input) else ""
        key: str = src if src in fp_inits else str(dq.output[0])
        if key not in added:
            arr = (numpy_helper.to_array(fp_inits[key]) if key in fp_inits
                   else dequantize_initializer(model, dq))
            name = key + _FLOAT_SUFFIX
            graph.initializer.append(numpy_helper.from_array(np.asarray(arr), name))
            added[key] = name
        return added[key]

    def own_initializer(tensor: str, consumer: Any, pos: int) -> str:
        """The FP32 twin's initializer in place of one the INT8 graph changed (a bias-corrected float bias)."""
        twin = fp_nodes.get(consumer.name)
        src = str(twin.input[pos]) if twin is not None and pos < len(twin.input) else ""
        if src not in fp_inits or fp_inits[src].data_type != 1:  # float only; shapes and indices stay
            return tensor
        if src not in added:
            name = src + _FLOAT_SUFFIX
            graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(fp_inits[src]), name))
            added[src] = name
        return added[src]

    def float_source(tensor: str, consumer: Any, pos: int) -> str:
        p = prod.get(tensor)
        if p is None:
            return own_initializer(tensor, consumer, pos) if tensor in inits else tensor
        if p.op_type in PASSTHROUGH_OPS:
            unquantize(p)
            return tensor
        if p.op_type != "DequantizeLinear":
            return tensor
        if p.input[0] in inits:
            return float_weight(p, consumer, pos)
        q = prod.get(p.input[0])
        if q is None or q.op_type != "QuantizeLinear":
            return tensor
        return refold_activation(float_source(q.input[0], consumer, pos))

    def refold_activation(tensor: str) -> str:
        """Put back a Relu that the quantizer folded into the Q being removed.

        ONNX Runtime drops the Relu after a Conv/Add whose output it quantizes to [0, max]
        (the Q clamps) and gives the Conv the Relu's output name; without the Q the
        clamp must come back, or the reverted layer reads pre-ReLU values.
        """
        act = fp_prod.get(tensor)
        mine = prod.get(tensor)
        if act is None or act.op_type not in ("Relu", "Clip") or (mine is not None and mine.op_type == act.op_type):
            return tensor
        if tensor not in refolded:
            out = tensor + _FLOAT_SUFFIX
            node = copy.deepcopy(act)
            node.name = act.name + _FLOAT_SUFFIX
            node.input[0] = tensor
            for extra in node.input[1:]:  # Clip's min/max constants
                if extra and extra in fp_inits and extra not in inits:
                    graph.initializer.append(copy.deepcopy(fp_inits[extra]))
                    inits.add(extra)
            del node.output[:]
            node.output.append(out)
            graph.node.append(node)
            refolded[tensor] = out
        return refolded[tensor]

    def unquantize(node: Any) -> None:
        if node.name in done:
            return
        done.add(node.name)
        for pos, t in enumerate(list(node.input)):
            if t:
                node.input[pos] = float_source(t, node, pos)

    for name in names:
        if name not in by_name:
            from resdeploy.errors import ResdeployError

            raise ResdeployError(f"no node named '{name}' in the INT8 graph")
        unquantize(by_name[name])
    prune_dead(model)
    toposort(model)
    return model


def toposort(model: Any) -> None:
    """Order the nodes so each comes after the producers of its inputs (ONNX requires it)."""
    graph = model.graph
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[Any] = []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:  # a cycle or a dangling input: leave the rest as it was, the runtime will say
            ordered.extend(pending)
            break
        for n in ready:
            ordered.append(n)
            available.update(n.output)
        ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ids]
    nodes = [copy.deepcopy(n) for n in ordered]
    del graph.node[:]
    graph.node.extend(nodes)


def prune_dead(model: Any) -> None:
    """Drop nodes whose outputs nobody reads, then initializers nobody reads."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    while True:
        used = {i for n in graph.node for i in n.input} | outputs
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    used = {i for n in graph.node for i in n.input} | outputs
    keep = [i for i in graph.initializer if i.name in used]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)


__all__ = ["Group", "fusable_groups", "prune_dead", "quantized_nodes", "revert"]
