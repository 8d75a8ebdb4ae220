"""TensorRT: build engines from ONNX (``build``) and check where a plan may run (``compat``).

Nothing here imports TensorRT at import time; :func:`resdeploy.trt.loader.require_tensorrt`
does, on first use, and turns its absence into one line naming what to install.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BatchProfile", "BuildConfig", "BuildResult", "EngineRecord", "build"]


def __getattr__(name: str) -> Any:
    if name in ("BuildConfig", "BuildResult", "build"):
        from resdeploy.trt import build as _build

        return getattr(_build, name)
    if name in ("BatchProfile", "EngineRecord"):
        from resdeploy.trt import compat

        return getattr(compat, name)
    raise AttributeError(f"module 'resdeploy.trt' has no attribute '{name}'")
