"""What ``resdeploy layers`` measures with, shared by its INT8 and FP16 halves and by bias correction.

One row type (``LayerError``), running SQNR/cosine sums (``TensorStats``), intermediate
tensors made graph outputs (``with_outputs``) and an ONNX Runtime session with no graph
rewrites (``plain_session``), so the tensors compared are the graph's own, not fused ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from resdeploy.onnx_io import cast_input

ISO = "iso::"  # prefix of the tensors and nodes of the isolated copies


@dataclass
class LayerError:
    """One quantized node's error against FP32 (higher SQNR, higher cosine: better)."""

    node: str
    op_type: str
    module: str | None
    sqnr_db: float  # cumulative: the variant's output vs FP32
    cosine: float
    isolated_sqnr_db: float  # this node's quantization alone
    isolated_cosine: float
    rank: int = 0  # 1 = the largest isolated error


def sqnr(signal: float, noise: float) -> float:
    if noise <= 0:
        return float("inf")
    if signal <= 0:
        return float("-inf")
    return float(10.0 * np.log10(signal / noise))


class TensorStats:
    """Running sums for SQNR and per-sample cosine of one tensor against its reference."""

    def __init__(self) -> None:
        self.signal = 0.0
        self.noise = 0.0
        self.cos_sum = 0.0
        self.count = 0

    def add(self, ref: np.ndarray, x: np.ndarray) -> None:
        r = ref.reshape(ref.shape[0], -1).astype(np.float64)
        c = x.reshape(x.shape[0], -1).astype(np.float64)
        self.signal += float(np.sum(r * r))
        self.noise += float(np.sum((r - c) ** 2))
        den = np.linalg.norm(r, axis=1) * np.linalg.norm(c, axis=1)
        same = np.all(r == c, axis=1)
        cos = np.where(den > 0, np.sum(r * c, axis=1) / np.maximum(den, 1e-300), np.where(same, 1.0, 0.0))
        self.cos_sum += float(np.sum(cos))
        self.count += r.shape[0]

    def sqnr(self) -> float:
        return sqnr(self.signal, self.noise)

    def cosine(self) -> float:
        return self.cos_sum / max(self.count, 1)


def with_outputs(model: Any, names: Sequence[str], elem_type: int | None = None) -> Any:
    """Add tensors as graph outputs (float unless ``elem_type``, an ONNX TensorProto type; shape left to the runtime)."""
    from onnx import TensorProto, helper

    have = {o.name for o in model.graph.output}
    for n in names:
        if n not in have:
            model.graph.output.append(helper.make_tensor_value_info(n, elem_type or TensorProto.FLOAT, None))
            have.add(n)
    return model


def iso_copy(node: Any, inputs: Sequence[str], outputs: Sequence[str], name: str | None = None) -> Any:
    """A copy of ``node`` (attributes and domain kept) under the ``ISO`` prefix, on other tensors."""
    from onnx import helper

    return helper.make_node(node.op_type, list(inputs), list(outputs), name=ISO + (name or node.name),
                            domain=node.domain, **{a.name: helper.get_attribute_value(a) for a in node.attribute})


def plain_session(model: Any, threads: int | None = None) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # No graph rewrites: the tensors compared must be the graph's own, not fused ones.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _fed(session: Any, x: np.ndarray, dtype: Any) -> np.ndarray:
    """``x`` in ``dtype``, or as uint8 pixels for a graph that takes pixels and normalises them itself."""
    return cast_input(x, np.uint8 if session.get_inputs()[0].type == "tensor(uint8)" else dtype)


def rank_layers(variant: Any, reference: Any, inputs: np.ndarray, *, nodes: Sequence[Any], outs: Sequence[str],
                refs: Sequence[str], iso_out: dict[str, str], node_modules: dict[str, str] | None,
                batch_size: int, reporter: Any, description: str, variant_dtype: Any = np.float32
                ) -> list[LayerError]:
    """The two-pass measurement both halves of ``layers`` share, ranked by the error each node adds alone.

    ``variant`` is the variant session with each node's output ``outs`` as graph outputs;
    ``reference`` the FP32 session with the FP32 twin tensors ``refs`` and the isolated copies'
    outputs ``iso_out`` as outputs. A fixed batch dimension is padded to, and the padding dropped.
    """
    names = [n.name for n in nodes]
    v_in = variant.get_inputs()[0]
    fixed = v_in.shape[0]
    bs = fixed if isinstance(fixed, int) and fixed > 0 else batch_size
    f_keys = list(dict.fromkeys(list(refs) + [iso_out[n] for n in names]))
    cum = {n: TensorStats() for n in names}
    iso = {n: TensorStats() for n in names}
    starts = range(0, len(inputs), bs)
    for s in reporter.track(starts, total=len(starts), description=description):
        x = inputs[s:s + bs]
        n_real = len(x)
        if len(x) < bs and bs == fixed:
            x = np.concatenate([x, np.repeat(x[-1:], bs - len(x), axis=0)])
        v_vals = dict(zip(outs, variant.run(list(outs), {v_in.name: _fed(variant, x, variant_dtype)}),
                          strict=True))
        f_vals = dict(zip(f_keys, reference.run(f_keys, {reference.get_inputs()[0].name:
                                                         _fed(reference, x, np.float32)}), strict=True))
        for n, o, ref_name in zip(names, outs, refs, strict=True):
            ref = np.asarray(f_vals[ref_name], dtype=np.float32)[:n_real]
            cum[n].add(ref, np.asarray(v_vals[o], dtype=np.float32)[:n_real])
            iso[n].add(ref, np.asarray(f_vals[iso_out[n]], dtype=np.float32)[:n_real])
    mods = node_modules or {}
    rows = [LayerError(node=n.name, op_type=n.op_type, module=mods.get(n.name),
                       sqnr_db=round(cum[n.name].sqnr(), 3), cosine=round(cum[n.name].cosine(), 6),
                       isolated_sqnr_db=round(iso[n.name].sqnr(), 3), isolated_cosine=round(iso[n.name].cosine(), 6))
            for n in nodes]
    rows.sort(key=lambda r: (r.isolated_sqnr_db, r.isolated_cosine))
    for i, r in enumerate(rows, 1):
        r.rank = i
    return rows


__all__ = ["ISO", "LayerError", "TensorStats", "iso_copy", "plain_session", "rank_layers", "sqnr", "with_outputs"]
