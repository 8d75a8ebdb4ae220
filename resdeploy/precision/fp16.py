"""FP16 as an FP16 graph (TensorRT 10/11 strongly typed networks read precision from the graph).

onnxconverter-common's converter casts initializers and tensors to float16 and inserts
Casts around the ops it is told to leave alone. We keep the graph's inputs and outputs
FP32 by default (a drop-in replacement for the FP32 model: same feeds, same logits
dtype) and keep in FP32 the ops whose FP16 results are unsafe: exponentials, logs,
powers, large reductions and normalisations (overflow above 65504, or lost precision).
ONNX Runtime's CPU provider runs the result (it casts ops that lack FP16 kernels), so
the FP16 variant's accuracy is checked in CI without a GPU.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

from resdeploy.errors import ResdeployError
from resdeploy.precision.legacy_graph import initializers_as_constants

# Ops kept in FP32 on top of onnxconverter-common's own block list (ML ops, Resize, TopK...).
FP32_OPS = ("Softmax", "LogSoftmax", "Exp", "Log", "Pow", "Sqrt", "Reciprocal", "Erf",
            "ReduceSum", "ReduceSumSquare", "ReduceL2", "ReduceLogSumExp", "ReduceProd",
            "LayerNormalization", "InstanceNormalization", "GroupNormalization")


def convert_fp16(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    fp16_io: bool = False,
    exclude_nodes: Sequence[str] = (),
) -> Any:
    """Write an FP16 copy of the FP32 ONNX model ``src`` to ``dst``; returns the ModelProto."""
    import onnx
    from onnxconverter_common import float16

    model = onnx.load(os.fspath(src))
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        raise ResdeployError(f"{src} already holds FP16 weights; convert the FP32 model instead")
    initializers_as_constants(model)  # IR 3 lists weights as inputs too: they would stay float32 inputs
    _own_initializers(model)
    block = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(FP32_OPS))
    try:
        with warnings.catch_warnings():
            # The converter warns once per tiny weight it rounds to FP16's smallest normal: noise.
            warnings.simplefilter("ignore", UserWarning)
            converted = float16.convert_float_to_float16(
                model, keep_io_types=not fp16_io, op_block_list=block,
                node_block_list=list(exclude_nodes) or None,
            )
    except Exception as exc:  # the converter raises bare Exceptions and ValueErrors
        raise ResdeployError(f"FP16 conversion of {src} failed: {str(exc).splitlines()[0][:300]}") from None
    _retarget_casts(converted)
    onnx.save(converted, os.fspath(dst))
    return converted


def _own_initializers(model: Any) -> None:
    """Replace each ``Identity`` of an initializer by a copy of it under the Identity's output name.

    torch.onnx's legacy exporter writes equal weights once and hands them to the other users
    through Identity nodes (an untrained network's LayerNorm weights, its zero biases). The
    converter keeps an initializer FP32 when one of its users stays FP32 (LayerNormalization)
    but still types the Identity's output FP16, a graph ONNX Runtime refuses to load.
    """
    inits = {i.name: i for i in model.graph.initializer}
    graph_outputs = {o.name for o in model.graph.output}
    kept = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in inits and node.output[0] not in graph_outputs:
            copy = model.graph.initializer.add()
            copy.CopyFrom(inits[node.input[0]])
            copy.name = node.output[0]
            inits[copy.name] = copy
        else:
            kept.append(node)
    if len(kept) < len(model.graph.node):
        del model.graph.node[:]
        model.graph.node.extend(kept)
        for vi in [v for v in model.graph.value_info if v.name in inits]:
            model.graph.value_info.remove(vi)


def _retarget_casts(model: Any) -> None:
    """Make the graph's own ``Cast(to=FLOAT)`` nodes cast to FLOAT16 where the converter typed their output FP16.

    A model that takes uint8 images and casts them to float in the graph: the converter
    retypes the Cast's output to FP16 but leaves its ``to`` attribute FLOAT, so the next
    FP16 op gets an FP32 tensor and ONNX Runtime refuses the graph.
    """
    from onnx import TensorProto

    half = {v.name for v in model.graph.value_info if v.type.tensor_type.elem_type == TensorProto.FLOAT16}
    for node in model.graph.node:
        if node.op_type != "Cast" or node.output[0] not in half:
            continue
        for attr in node.attribute:
            if attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16


def fp16_node_share(model: Any) -> float:
    """Fraction of compute nodes (not Casts) whose first output is FP16: how much ran converted."""
    from onnx import TensorProto, shape_inference

    inferred = shape_inference.infer_shapes(model)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in
             list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)}
    nodes = [n for n in model.graph.node if n.op_type not in ("Cast", "Constant", "Identity")]
    if not nodes:
        return 0.0
    half = sum(1 for n in nodes if n.output and types.get(n.output[0]) == TensorProto.FLOAT16)
    return half / len(nodes)


__all__ = ["FP32_OPS", "convert_fp16", "fp16_node_share"]
