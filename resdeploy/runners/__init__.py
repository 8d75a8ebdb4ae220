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

# Device-specific implementations: "engine@device-kind" wins over "engine" when it applies.
DEVICE_RUNNERS: dict[str, str] = {
    "ort@cuda": "resdeploy.runners.ort_cuda:OrtCudaRunner",
}


def runner_class(engine: str, device: str = "cpu") -> type[Runner]:
    if engine not in RUNNERS:
        raise ResdeployError(f"unknown engine '{engine}'; choose from: {', '.join(RUNNERS)}")
    target = DEVICE_RUNNERS.get(f"{engine}@{device.split(':')[0]}", RUNNERS[engine])
    module, _, name = target.partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("resdeploy"):
            raise ResdeployError(f"engine '{engine}' on {device} is not available in this version of resdeploy") from exc
        raise
    cls: type[Runner] = getattr(mod, name)
    return cls


def create_runner(config: RunnerConfig) -> Runner:
    """Build (not yet load) the runner for ``config.engine``; use it as a context manager."""
    return runner_class(config.engine, config.device)(config)


__all__ = ["RUNNERS", "Runner", "RunnerConfig", "TensorMeta", "create_runner", "runner_class"]
