"""Cross-layer equalization (Nagel et al., 2019): even out per-channel weight ranges before INT8.

A Conv -> Relu -> Conv pair can move a positive scale ``s_c`` from the first Conv's output
channel ``c`` to the second Conv's input channel ``c``: ``Relu(x / s) * s == Relu(x)`` for
``s > 0``, so the FP32 function is unchanged (up to float rounding). With
``s_c = sqrt(r1_c / r2_c)`` (``r1_c``: the range of the first Conv's output-channel weights,
``r2_c``: that of the second Conv's input-channel weights) both ranges become
``sqrt(r1_c * r2_c)``. What INT8 gains: the activation between the two layers, quantized
per tensor, no longer has one channel far wider than the others (the outlier a folded
BatchNorm can leave, or that issue 12's planted model has), and the second Conv's
per-output-channel weight scales no longer serve input channels of very different sizes.

Data-free and exact in FP32, so it runs on the pre-processed FP32 graph (BatchNorm
already folded) before calibration; ranges, Q/DQ placement and the FP32 reference of
``layers`` and the accuracy budget all see the same equalized weights. Only pairs inside a
block are touched: a tensor read by more than one node (a residual Add, a branch), an
activation other than Relu, grouped Convs and shared weights are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

ITERATIONS = 8  # chains (a -> b -> c) converge in a few passes; the change after 8 is negligible
_EPS = 1e-8


@dataclass
class EqualizeResult:
    """What equalization did: the pairs it rescaled, for the manifest."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    iterations: int = 0
    max_scale: float = 1.0  # the largest max(s, 1/s) applied over all passes: how uneven the ranges were

    def to_dict(self) -> dict[str, Any]:
        return {"applied": True, "pairs": len(self.pairs), "iterations": self.iterations,
                "max_channel_scale": round(float(self.max_scale), 4)}


def _attr(node: Any, name: str, default: int) -> int:
    return next((int(a.i) for a in node.attribute if a.name == name), default)


def find_pairs(model: Any) -> list[tuple[Any, Any]]:
    """(first Conv, second Conv) pairs joined by a Relu that nothing else reads."""
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    outputs = {o.name for o in graph.output}
    uses: dict[str, list[Any]] = {}
    for node in graph.node:
        for t in node.input:
            uses.setdefault(t, []).append(node)

    def sole_use(tensor: str) -> Any | None:
        readers = uses.get(tensor, [])
        return readers[0] if len(readers) == 1 and tensor not in outputs else None

    def plain_conv(node: Any) -> bool:
        return (node.op_type == "Conv" and (node.domain or "") == "" and _attr(node, "group", 1) == 1
                and len(node.input) >= 2 and node.input[1] in inits and len(uses[node.input[1]]) == 1
                and (len(node.input) < 3 or not node.input[2] or
                     (node.input[2] in inits and len(uses[node.input[2]]) == 1)))

    pairs: list[tuple[Any, Any]] = []
    for a in graph.node:
        if not plain_conv(a):
            continue
        relu = sole_use(a.output[0])
        if relu is None or relu.op_type != "Relu":
            continue
        b = sole_use(relu.output[0])
        if b is not None and plain_conv(b) and b.input[0] == relu.output[0]:
            pairs.append((a, b))
    return pairs


def equalize(model: Any, *, iterations: int = ITERATIONS) -> EqualizeResult:
    """Equalize every Conv -> Relu -> Conv pair of ``model`` in place (its initializers change)."""
    from onnx import numpy_helper

    graph = model.graph
    pairs = find_pairs(model)
    result = EqualizeResult(pairs=[(a.name, b.name) for a, b in pairs])
    if not pairs:
        return result
    by_name = {i.name: i for i in graph.initializer}
    arrays: dict[str, np.ndarray] = {}

    def arr(name: str) -> np.ndarray:
        if name not in arrays:
            arrays[name] = numpy_helper.to_array(by_name[name]).astype(np.float64)
        return arrays[name]

    for it in range(iterations):
        result.iterations = it + 1
        moved = 1.0
        for a, b in pairs:
            w1, w2 = arr(a.input[1]), arr(b.input[1])
            if w1.shape[0] != w2.shape[1]:
                continue
            r1 = np.abs(w1).reshape(w1.shape[0], -1).max(axis=1)
            r2 = np.abs(np.swapaxes(w2, 0, 1)).reshape(w2.shape[1], -1).max(axis=1)
            ok = (r1 > _EPS) & (r2 > _EPS)
            s = np.ones_like(r1)
            s[ok] = np.sqrt(r1[ok] / r2[ok])
            shape1 = (-1,) + (1,) * (w1.ndim - 1)
            shape2 = (1, -1) + (1,) * (w2.ndim - 2)
            arrays[a.input[1]] = w1 / s.reshape(shape1)
            if len(a.input) > 2 and a.input[2]:
                arrays[a.input[2]] = arr(a.input[2]) / s
            arrays[b.input[1]] = w2 * s.reshape(shape2)
            step = float(np.max(np.maximum(s, 1.0 / s)))
            moved = max(moved, step)
            result.max_scale = max(result.max_scale, step)
        if moved < 1.0 + 1e-4:
            break
    for name, value in arrays.items():
        old = by_name[name]
        new = numpy_helper.from_array(value.astype(numpy_helper.to_array(old).dtype), name)
        old.CopyFrom(new)
    return result


def equalize_file(src: Any, dst: Any) -> EqualizeResult:
    """Equalize the ONNX file ``src`` into ``dst`` (may be the same path)."""
    import os

    import onnx

    model = onnx.load(os.fspath(src))
    result = equalize(model)
    onnx.save(model, os.fspath(dst))
    return result


__all__ = ["EqualizeResult", "equalize", "equalize_file", "find_pairs"]
