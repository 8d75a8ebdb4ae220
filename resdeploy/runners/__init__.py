"""Runner registry: engine name -> where its class lives, imported only when asked for.

A plain dict (no import-time registration): ``resdeploy info`` can list every engine
without importing torch, onnxruntime, openvino or tensorrt.
"""

from __future__ import annotations

import importlib

from resdeploy.errors import ResdeployError
from resdeploy.runners.base import Runner, RunnerConfig, TensorMeta

RUNNERS: dict[str, str] = {
    "torch": "resdeploy.runners.torch_runner:TorchRunner",
    "ort": "resdeploy.runners.ort:OrtRunner",
    "openvino": "resdeploy.runners.openvino:OpenVinoRunner",
    "trt": "resdeploy.runners.trt:TrtRunner",
}


def runner_class(engine: str) -> type[Runner]:
    if engine not in RUNNERS:
        raise ResdeployError(f"unknown engine '{engine}'; choose from: {', '.join(RUNNERS)}")
    module, _, name = RUNNERS[engine].partition(":")
    cls: type[Runner] = getattr(importlib.import_module(module), name)
    return cls


def create_runner(config: RunnerConfig) -> Runner:
    """Build (not yet load) the runner for ``config.engine``; use it as a context manager."""
    return runner_class(config.engine)(config)


__all__ = ["RUNNERS", "Runner", "RunnerConfig", "TensorMeta", "create_runner", "runner_class"]
