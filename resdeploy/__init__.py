"""resdeploy: ResNets from PyTorch to deployment.

The library behind the ``resdeploy`` command. Each pipeline stage is one function,
``stage(source, config=None, *, reporter=None) -> Result`` (configs check themselves in
``check()``, results have ``to_dict()`` with a ``schema`` tag)::

    import resdeploy
    art = resdeploy.export("resnet50", output_dir="out/resnet50")  # FP32 ONNX + manifest + parity
    q = resdeploy.quantize(art.model_path, precision="int8", calib_data="calibration/sample")
    report = resdeploy.validate(q.model_path, reference=art.model_path, data="images/")
    result = resdeploy.bench(art.model_path, engines=["torch", "ort"], batches=[1, 8])

Heavy libraries (torch, onnxruntime, openvino, tensorrt) are imported on first use, so
``import resdeploy`` and ``resdeploy --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> "module:attribute"; resolved lazily on first access.
_API: dict[str, str] = {
    "ResdeployError": "resdeploy.errors:ResdeployError",
    "GateFailure": "resdeploy.errors:GateFailure",
    "create_model": "resdeploy.models.zoo:create_model",
    "list_models": "resdeploy.models.zoo:list_models",
    "ModelSpec": "resdeploy.models.zoo:ModelSpec",
    "export": "resdeploy.exporter:export",
    "ExportConfig": "resdeploy.exporter:ExportConfig",
    "quantize": "resdeploy.precision:quantize",
    "QuantizeConfig": "resdeploy.precision:QuantizeConfig",
    "validate": "resdeploy.validation:validate",
    "ValidateConfig": "resdeploy.validation:ValidateConfig",
    "bench": "resdeploy.benchmark:bench",
    "BenchConfig": "resdeploy.benchmark:BenchConfig",
    "report": "resdeploy.reporting:report",
    "build": "resdeploy.trt.build:build",
    "BuildConfig": "resdeploy.trt.build:BuildConfig",
    "create_runner": "resdeploy.runners:create_runner",
    "RunnerConfig": "resdeploy.runners.base:RunnerConfig",
    "PreprocessSpec": "resdeploy.preprocess:PreprocessSpec",
    "parity_metrics": "resdeploy.compare:parity_metrics",
    "sweep": "resdeploy.scale.sweep:sweep",
    "compare_runners": "resdeploy.compare:compare_runners",
    "Gate": "resdeploy.compare:Gate",
    "Manifest": "resdeploy.artifacts:Manifest",
    "load_manifest": "resdeploy.artifacts:load_manifest",
    "Artifact": "resdeploy.resolve:Artifact",
    "resolve_artifact": "resdeploy.resolve:resolve_artifact",
    "ReportConfig": "resdeploy.reporting:ReportConfig",
}


def __getattr__(name: str) -> Any:
    target = _API.get(name)
    if target is None:
        raise AttributeError(f"module 'resdeploy' has no attribute '{name}'")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))


__all__ = sorted(_API)
