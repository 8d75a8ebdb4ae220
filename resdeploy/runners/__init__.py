"""Runner registry: engine name -> the class that runs it, imported only when asked for.

The registry maps a name to a class and nothing else; everything about an engine (its
options, availability probe, install hint, precisions, the subclass for a device) is on
the class (see ``runners.base.Runner``). Classes are named as "module:Class" strings,
so ``resdeploy info`` and ``--help`` do not import every runtime's module.
Adding an engine: one module under runners/ with a ``Runner`` subclass, one line here.
"""

from __future__ import annotations

import importlib

from resdeploy.errors import ResdeployError
from resdeploy.runners.base import Runner, RunnerConfig, RunnerOptions, TensorMeta

RUNNERS: dict[str, str] = {
    "torch": "resdeploy.runners.torch_runner:TorchRunner",
    "ort": "resdeploy.runners.ort:OrtRunner",
    "openvino": "resdeploy.runners.openvino:OpenVinoRunner",
    "trt": "resdeploy.runners.trt:TrtRunner",
}


def runner_class(engine: str, device: str = "cpu") -> type[Runner]:
    """The class that runs ``engine`` on ``device`` (a class's ``device_classes`` name a device's subclass)."""
    if engine not in RUNNERS:
        raise ResdeployError(f"unknown engine '{engine}'; choose from: {', '.join(RUNNERS)}")
    cls = _load(RUNNERS[engine], engine, device)
    target = cls.device_classes.get(device.split(":")[0])
    return _load(target, engine, device) if target else cls


def _load(target: str, engine: str, device: str) -> type[Runner]:
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


__all__ = ["RUNNERS", "Runner", "RunnerConfig", "RunnerOptions", "TensorMeta", "create_runner", "runner_class"]
