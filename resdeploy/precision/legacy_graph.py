"""Old ONNX files made fit for FP16 and INT8: weights as constants, opset 13 for per-channel Q/DQ.

The ONNX Model Zoo's ResNets (and many exports of their time) are opset 7 to 12, and the
oldest use IR version 3, which lists every initializer as a graph input too. Such inputs
are overridable: ONNX Runtime neither folds nor fuses them, and the FP16 converter types
them as float32 inputs. DequantizeLinear gained the ``axis`` of per-channel weights in
opset 13. Both variants start from the graph these functions return.
"""

from __future__ import annotations

from typing import Any

from resdeploy.artifacts import default_opset
from resdeploy.errors import ResdeployError

MIN_QDQ_OPSET = 13  # DequantizeLinear's per-channel ``axis``


def _ir_version_for(model: Any) -> int:
    """The lowest IR version the model's ai.onnx opset needs (an upgraded opset may need a newer IR)."""
    import onnx

    return int(onnx.helper.find_min_ir_version_for(
        [o for o in model.opset_import if (o.domain or "") in ("", "ai.onnx")]))


def initializers_as_constants(model: Any) -> int:
    """Drop the graph inputs that name initializers (IR 3's convention), in place; returns how many.

    The IR version is raised to the one the opsets need: from IR 4 on, an initializer that
    is not also an input is a constant.
    """
    weights = {i.name for i in model.graph.initializer}
    kept = [i for i in model.graph.input if i.name not in weights]
    dropped = len(model.graph.input) - len(kept)
    if dropped:
        del model.graph.input[:]
        model.graph.input.extend(kept)
        model.ir_version = max(model.ir_version, 4, _ir_version_for(model))
    return dropped


def upgrade_opset(model: Any, what: str) -> Any:
    """``model`` at opset 13 when it is older (ONNX's version converter), weights as constants; else ``model``."""
    import onnx
    from onnx import version_converter

    opset = default_opset(model) or 0
    if opset >= MIN_QDQ_OPSET:
        return model
    try:
        converted = version_converter.convert_version(model, MIN_QDQ_OPSET)
        initializers_as_constants(converted)
        converted.ir_version = max(converted.ir_version, _ir_version_for(converted))
        onnx.checker.check_model(converted)
    except Exception as exc:  # the converter has no adapter for some old op: say which, in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ResdeployError(f"{what} is opset {opset}; INT8 needs opset {MIN_QDQ_OPSET}, and ONNX's "
                             f"version converter could not convert it: {first}",
                             hint=f"re-export the model at opset {MIN_QDQ_OPSET} or later") from None
    return converted
