"""Precision variants of an exported FP32 model: an FP16 graph, or an INT8 Q/DQ graph.

A facade: the quantize stage is ``precision.pipeline``; the graph rewrites are
``fp16`` and ``int8`` (with ``entropy`` and ``ranges`` for calibration). Precision lives
in the ONNX graph (see DESIGN.md), so every variant runs under ONNX Runtime on a CPU.
"""

from __future__ import annotations

from resdeploy.precision.pipeline import (
    PRECISIONS,
    QuantizeConfig,
    QuantizeResult,
    SourceModel,
    _check_onnx,
    default_output,
    parent_model_path,
    quantize,
    resolve_source,
)
from resdeploy.resolve import preprocess_from

__all__ = ["PRECISIONS", "QuantizeConfig", "QuantizeResult", "SourceModel", "_check_onnx", "default_output",
           "parent_model_path", "preprocess_from", "quantize", "resolve_source"]
