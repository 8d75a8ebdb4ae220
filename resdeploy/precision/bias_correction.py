"""Empirical bias correction: give each quantized Conv/Gemm back the mean its INT8 output lost.

Rounding weights and activations does not only add noise: it shifts the mean of a layer's
output per channel (a clipped tail, an asymmetric rounding of small weights), and the
shift is passed on. NNCF corrects it by default ("fast bias correction"). Per output
channel ``c`` of every quantized Conv/Gemm: ``bias_c += E[y_fp32,c] - E[y_int8,c]`` over
the calibration images, ``y`` the layer's output before its activation.

``E[y_int8]`` is taken with each layer alone through its own Q/DQ, fed the exact FP32
tensors (``layers.isolation_model``, the graph behind ``resdeploy layers``; NNCF's fast
variant): one run of one model, and a layer downstream of a badly broken one is not
"corrected" for damage it did not cause. Taking it from the whole INT8 graph instead
("cumulative") was measured and rejected (docs/precision.md).

A float bias (``--target trt``: TensorRT quantizes biases itself) moves by the correction;
an INT32 bias behind a DequantizeLinear (``--target cpu``) moves by the correction in its
own scale's steps, so ONNX Runtime's integer kernels keep it. The corrections (float, in
output units) are returned so that saved ranges can rebuild the same model without data.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from resdeploy.console import QUIET, Reporter
from resdeploy.errors import ResdeployError
from resdeploy.precision.layer_stats import plain_session as _session
from resdeploy.precision.layer_stats import with_outputs as _with_outputs
from resdeploy.precision.layers import isolation_model
from resdeploy.precision.revert import producers, quantized_nodes

MODE = "isolated"  # recorded in the manifest; the cumulative way was measured and rejected: docs/precision.md
_BIASED_OPS = ("Conv", "Gemm")


@dataclass
class BiasCorrectionResult:
    """For the manifest: how many layers were corrected and how large the corrections were."""

    layers: int
    skipped: int  # quantized Conv/Gemm without a bias of their own to correct
    mode: str
    samples: int
    max_shift: float  # the largest |correction| over all channels, in output units
    corrections: dict[str, list[float]] = field(default_factory=dict)  # node -> per-channel shift (saved ranges)

    def to_dict(self) -> dict[str, Any]:
        return {"applied": True, "mode": self.mode, "layers": self.layers, "skipped": self.skipped,
                "samples": self.samples, "max_shift": round(float(self.max_shift), 6)}


def _channel_means(model: Any, tensors: list[str], inputs: np.ndarray, batch_size: int, reporter: Reporter,
                   what: str) -> dict[str, np.ndarray]:
    """Per-channel (axis 1) means of ``tensors`` over ``inputs``."""
    sess = _session(_with_outputs(copy.deepcopy(model), tensors))
    name = sess.get_inputs()[0].name
    fixed = sess.get_inputs()[0].shape[0]
    bs = fixed if isinstance(fixed, int) and fixed > 0 else batch_size
    usable = len(inputs) // bs * bs if bs == fixed else len(inputs)
    if usable == 0:
        raise ResdeployError(f"bias correction needs at least {bs} calibration samples (the model's batch size)")
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    starts = range(0, usable, bs)
    for s in reporter.track(starts, total=len(starts), description=what):
        for t, v in zip(tensors, sess.run(tensors, {name: inputs[s:s + bs]}), strict=True):
            a = np.asarray(v, dtype=np.float64)
            axes = tuple(i for i in range(a.ndim) if i != 1)
            sums[t] = sums.get(t, 0.0) + a.sum(axis=axes)
            counts[t] = counts.get(t, 0) + a.size // a.shape[1]
    return {t: sums[t] / counts[t] for t in sums}


def _biases(int8: Any, names: set[str]) -> dict[str, tuple[Any, Any]]:
    """node -> (its bias initializer, the DequantizeLinear in front of it or None), for biases of their own."""
    inits = {i.name: i for i in int8.graph.initializer}
    prod = producers(int8)
    uses: dict[str, int] = {}
    for node in int8.graph.node:
        for t in node.input:
            uses[t] = uses.get(t, 0) + 1
    out: dict[str, tuple[Any, Any]] = {}
    for node in int8.graph.node:
        if node.name not in names or len(node.input) < 3 or not node.input[2]:
            continue
        b = node.input[2]
        if b in inits and uses.get(b, 0) == 1:
            out[node.name] = (inits[b], None)
            continue
        dq = prod.get(b)
        if (dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] in inits
                and uses.get(dq.input[0]) == 1 and dq.input[1] in inits):
            out[node.name] = (inits[dq.input[0]], dq)
    return out


def apply_corrections(int8: Any, corrections: Mapping[str, Any]) -> int:
    """Add each named layer's correction to its bias (in the INT32 bias's own steps); returns how many changed."""
    from onnx import numpy_helper

    inits = {i.name: i for i in int8.graph.initializer}
    done = 0
    for node, (init, dq) in _biases(int8, set(corrections)).items():
        delta = np.asarray(corrections[node], dtype=np.float64)
        start = numpy_helper.to_array(init)
        if delta.shape != start.shape:
            continue
        if dq is None:
            new = (start.astype(np.float64) + delta).astype(start.dtype)
        else:
            scale = np.asarray(numpy_helper.to_array(inits[dq.input[1]]), dtype=np.float64)
            steps = np.round(delta / np.where(scale > 0, scale, 1.0))
            info = np.iinfo(start.dtype)
            new = np.clip(start.astype(np.float64) + steps, info.min, info.max).astype(start.dtype)
        init.CopyFrom(numpy_helper.from_array(new, init.name))
        done += 1
    return done


def correct_biases(int8: Any, fp32: Any, inputs: np.ndarray, *, batch_size: int = 8,
                   reporter: Reporter = QUIET) -> BiasCorrectionResult:
    """Correct the biases of ``int8`` (a Q/DQ ModelProto, changed in place) against ``fp32``.

    ``fp32`` is the graph ``int8`` was quantized from (the same node names).
    """
    twins = {n.name: n for n in fp32.graph.node if n.name}
    layers = [n for n in quantized_nodes(int8) if n.op_type in _BIASED_OPS and n.name in twins]
    biases = _biases(int8, {n.name for n in layers})
    targets = [n for n in layers if n.name in biases]
    result = BiasCorrectionResult(layers=len(targets), skipped=len(layers) - len(targets), mode=MODE,
                                  samples=int(len(inputs)), max_shift=0.0)
    if not targets:
        return result
    ref_names = [twins[n.name].output[0] for n in targets]
    iso, iso_out = isolation_model(int8, fp32, [n.name for n in targets])
    q_names = [iso_out[n.name] for n in targets]
    means = _channel_means(iso, list(dict.fromkeys(ref_names + q_names)), inputs, batch_size, reporter,
                           f"bias correction: {len(targets)} layers against FP32")
    total: dict[str, np.ndarray] = {}
    for node, r, q in zip(targets, ref_names, q_names, strict=True):
        shape = tuple(biases[node.name][0].dims)
        delta = means[r] - means[q]
        total[node.name] = delta if delta.shape == shape else np.zeros(shape)  # a bias it cannot correct stays
    apply_corrections(int8, total)
    result.corrections = {k: [float(v) for v in arr] for k, arr in total.items()}
    result.max_shift = max((float(np.max(np.abs(a))) for a in total.values() if a.size), default=0.0)
    return result


__all__ = ["MODE", "BiasCorrectionResult", "apply_corrections", "correct_biases"]
