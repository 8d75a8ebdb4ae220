"""Per-layer error of an FP16 variant against its FP32 parent: the FP16 half of ``resdeploy layers``.

The same two measurements as for INT8 (``layers.py``), for every node the variant runs in
float16 (its output is float16; Casts, constants and pure data movement left out):

* **cumulative**: the variant's float16 output of the node against the FP32 parent's output
  of the node with the same name. By node, not by tensor name: the converter renames the
  tensors around the Casts it inserts (graph inputs/outputs, blocked ops), not the nodes.
* **alone**: a copy of the node run in float16 beside the FP32 graph, its activation inputs
  the exact FP32 tensors cast to float16, its weights the variant's own float16 initializers,
  its output cast back to float; every other node FP32.

Two passes over the data, as for INT8: the variant with the nodes' outputs as graph
outputs, and the FP32 graph with the isolated copies (statistics batch by batch).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from resdeploy.console import QUIET, Reporter
from resdeploy.errors import ResdeployError
from resdeploy.precision.layer_stats import ISO as _ISO
from resdeploy.precision.layer_stats import LayerError, iso_copy, rank_layers
from resdeploy.precision.layer_stats import plain_session as _session
from resdeploy.precision.layer_stats import with_outputs as _with_outputs
from resdeploy.precision.revert import PASSTHROUGH_OPS

_SKIP_OPS = frozenset({"Cast", "Constant", "Identity", "Shape", "ConstantOfShape", *PASSTHROUGH_OPS})


def _types(model: Any) -> dict[str, int]:
    """Element type of every tensor (shape inference, plus initializers and graph I/O)."""
    from onnx import shape_inference

    inferred = shape_inference.infer_shapes(model)
    g = inferred.graph
    out = {vi.name: vi.type.tensor_type.elem_type for vi in list(g.value_info) + list(g.input) + list(g.output)}
    out.update({i.name: i.data_type for i in g.initializer})
    return out


def fp16_nodes(fp16: Any, fp32: Any) -> list[Any]:
    """The variant's nodes that compute in float16 and have an FP32 twin of the same name, in graph order."""
    from onnx import TensorProto

    types = _types(fp16)
    twins = {n.name for n in fp32.graph.node if n.name}
    return [n for n in fp16.graph.node
            if n.name in twins and n.op_type not in _SKIP_OPS and n.output
            and types.get(n.output[0]) == TensorProto.FLOAT16]


def isolation_model_fp16(fp16: Any, fp32: Any, nodes: list[str]) -> tuple[Any, dict[str, str]]:
    """The FP32 graph plus, for each named node, a float16 copy fed the FP32 tensors cast to float16."""
    from onnx import TensorProto, helper, numpy_helper

    model = copy.deepcopy(fp32)
    graph = model.graph
    types = _types(fp32)
    fp32_inits = {i.name: i for i in fp32.graph.initializer}
    half_inits = {i.name: i for i in fp16.graph.initializer}
    twins = {n.name: n for n in fp32.graph.node}
    made: dict[str, str] = {}

    def half(tensor: str) -> str:
        """The float16 twin of an FP32-graph tensor (a cast activation or a float16 weight)."""
        if not tensor:
            return tensor
        if tensor in made:
            return made[tensor]
        if types.get(tensor) != TensorProto.FLOAT:
            return tensor  # shapes, indices: as they are
        out = _ISO + tensor
        if tensor in fp32_inits:
            own = half_inits.get(tensor)
            arr = (numpy_helper.to_array(own) if own is not None and own.data_type == TensorProto.FLOAT16
                   else numpy_helper.to_array(fp32_inits[tensor]).astype(np.float16))
            graph.initializer.append(numpy_helper.from_array(arr, out))
        else:
            graph.node.append(helper.make_node("Cast", [tensor], [out], name=_ISO + "cast::" + tensor,
                                               to=TensorProto.FLOAT16))
        made[tensor] = out
        return out

    outputs: dict[str, str] = {}
    for name in nodes:
        node = twins[name]
        ins = [half(i) for i in node.input]
        outs = [_ISO + name + "::" + o for o in node.output]
        graph.node.append(iso_copy(node, ins, outs, name))
        back = _ISO + name + "::float"
        graph.node.append(helper.make_node("Cast", [outs[0]], [back], name=_ISO + name + "::cast", to=TensorProto.FLOAT))
        outputs[name] = back
    return model, outputs


def fp16_layer_errors(fp16: Any, fp32: Any, inputs: np.ndarray, *, node_modules: dict[str, str] | None = None,
                      batch_size: int = 16, reporter: Reporter = QUIET) -> list[LayerError]:
    """Rank the float16 nodes of ``fp16`` by the error running each alone in float16 adds, against ``fp32``."""
    from onnx import TensorProto

    nodes = fp16_nodes(fp16, fp32)
    if not nodes:
        raise ResdeployError("the FP16 variant has no float16 node with a twin in its FP32 parent: "
                             "it was not converted from this parent")
    names = [n.name for n in nodes]
    twin = {n.name: n for n in fp32.graph.node}
    outs = [n.output[0] for n in nodes]
    refs = [twin[n].output[0] for n in names]
    v_model = _with_outputs(copy.deepcopy(fp16), outs, elem_type=TensorProto.FLOAT16)
    iso_model, iso_out = isolation_model_fp16(fp16, fp32, names)
    f_keys = list(dict.fromkeys(refs + [iso_out[n] for n in names]))
    _with_outputs(iso_model, f_keys)
    v_sess, f_sess = _session(v_model), _session(iso_model)
    v_dtype = np.float16 if "float16" in v_sess.get_inputs()[0].type else np.float32
    return rank_layers(v_sess, f_sess, inputs, nodes=nodes, outs=outs, refs=refs, iso_out=iso_out,
                       node_modules=node_modules, batch_size=batch_size, reporter=reporter,
                       description=f"comparing {len(names)} FP16 layers", variant_dtype=v_dtype)


__all__ = ["fp16_layer_errors", "fp16_nodes", "isolation_model_fp16"]
