"""Make what a runner is given: before bench or validate create a runner, its model is prepared.

Most engines load the ONNX graph themselves. TensorRT is given an engine plan, and
building one is the build stage's work, so the runner class names the function that
does it (``Runner.prepare``, e.g. ``resdeploy.trt.build:engine_config``) and the stages
call it here. The runner never imports the stage that builds for it: no cycle
runners -> trt.build -> precision -> runners.
"""

from __future__ import annotations

import importlib
from typing import Any

from resdeploy.runners import RunnerConfig, runner_class


def prepare_runner_config(config: RunnerConfig, reporter: Any = None) -> RunnerConfig:
    """``config`` with its model made loadable by its runner (built and cached where needed)."""
    target = runner_class(config.engine, config.device).prepare
    if not target:
        return config
    module, _, name = target.partition(":")
    func = getattr(importlib.import_module(module), name)
    prepared: RunnerConfig = func(config, reporter=reporter)
    return prepared


__all__ = ["prepare_runner_config"]
