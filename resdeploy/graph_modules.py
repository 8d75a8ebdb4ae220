"""Which PyTorch module an ONNX node came from, read from the exported graph itself.

Used by the exporter (the ``node_modules`` map in the FP32 manifest), by ``--exclude``
(module paths as patterns) and by the per-layer report. No other resdeploy imports, so
any stage can use it without an import cycle.
"""

from __future__ import annotations

from typing import Any


def module_scopes(node: Any) -> list[str]:
    """The PyTorch module paths a node came from ('layer4', 'layer4.1', 'layer4.1.bn2'), where recorded.

    The dynamo exporter names nodes after ops (``node_Conv_374``) and records the module
    hierarchy in the node's ``pkg.torch.onnx.name_scopes`` metadata; the last entry is the
    op itself, not a module.
    """
    import ast

    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return []
            if isinstance(scopes, list):
                return [str(s) for s in scopes[:-1] if s]
    return []


def node_module_map(model: Any) -> dict[str, str]:
    """Node name -> the PyTorch module it came from, for every node where that can be told.

    Three sources, most reliable first: a Conv/Gemm's weight initializer, which both
    exporters name after the parameter ('layer1.0.conv1.weight' -> 'layer1.0.conv1',
    also after BatchNorm was fused into it, when the node's own metadata names the
    BatchNorm); the dynamo exporter's ``name_scopes`` metadata (deepest module); and
    the TorchScript exporter's node names ('/layer1/layer1.0/conv1/Conv').
    """
    inits = {i.name for i in model.graph.initializer}
    out: dict[str, str] = {}
    for node in model.graph.node:
        if not node.name:
            continue
        weight = node.input[1] if len(node.input) > 1 else ""
        if node.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul") and weight in inits and weight.endswith(".weight"):
            out[node.name] = weight[: -len(".weight")]
            continue
        scopes = module_scopes(node)
        if scopes:
            out[node.name] = scopes[-1]
        elif node.name.startswith("/") and node.name.count("/") >= 2:
            parts = [p for p in node.name.split("/")[1:-1] if p]
            if parts:
                deepest = parts[-1]
                prefix = next((p for p in reversed(parts[:-1]) if "." in p or p.isidentifier()), "")
                out[node.name] = deepest if deepest.startswith(prefix + ".") or not prefix else f"{prefix}.{deepest}"
    return out
