"""Fixtures and helpers for the TensorRT tests: tiny real ONNX files, and the FAKE tensorrt module.

Test modules import the fixtures by name (``from trt_fixtures import fake_trt``) rather than
through a ``tests/trt/conftest.py``: conftest files outside packages share the module name
``conftest``, and a second one would shadow ``tests/conftest.py`` for ``from conftest import``.

``fake_trt`` installs ``tests/trt/fake_tensorrt.FakeTensorRT`` as ``sys.modules["tensorrt"]``,
points the GPU seam (``resdeploy.trt.loader.gpu_info``) at a made-up GPU and the runner's
device seam at host memory. It tests resdeploy's logic, not TensorRT.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from resdeploy import artifacts
from resdeploy.trt.loader import GpuInfo

sys.path.insert(0, str(Path(__file__).parent))
from fake_tensorrt import FakeTensorRT, HostDevice  # noqa: E402


def _root_conftest() -> ModuleType:
    """tests/conftest.py under a name of its own, for its ``run_cli`` helper."""
    spec = importlib.util.spec_from_file_location("resdeploy_tests_root_conftest", Path(__file__).parents[1] / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run_cli: Callable[..., tuple[int, str, str]] = _root_conftest().run_cli

GPU_A10G = GpuInfo("NVIDIA A10G", "8.6")


def make_onnx(
    path: Path, *, batch: int | str = "batch", precision: str = "fp32", size: int = 8, classes: int = 10,
    extra_op: str | None = None,
) -> Path:
    """A tiny real ONNX image classifier: Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm.

    ``precision`` fp16 makes every tensor FP16; int8 puts a Q/DQ pair on the input, as the
    quantize stage does for TensorRT. ``extra_op`` inserts an identity-like node of that op type
    (for the parser-error tests).
    """
    rng = np.random.default_rng(0)
    ftype = TensorProto.FLOAT16 if precision == "fp16" else TensorProto.FLOAT
    npf = np.float16 if precision == "fp16" else np.float32
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(npf), "conv.w"),
        numpy_helper.from_array(rng.standard_normal(4).astype(npf), "conv.b"),
        numpy_helper.from_array(rng.standard_normal((classes, 4)).astype(npf), "fc.w"),
        numpy_helper.from_array(rng.standard_normal(classes).astype(npf), "fc.b"),
    ]
    nodes = []
    x = "input"
    if precision == "int8":
        inits += [numpy_helper.from_array(np.array(0.02, np.float32), "in.scale"),
                  numpy_helper.from_array(np.array(0, np.int8), "in.zp")]
        nodes += [helper.make_node("QuantizeLinear", ["input", "in.scale", "in.zp"], ["in.q"], name="in_q"),
                  helper.make_node("DequantizeLinear", ["in.q", "in.scale", "in.zp"], ["in.dq"], name="in_dq")]
        x = "in.dq"
    if extra_op:
        nodes.append(helper.make_node(extra_op, [x], ["custom.out"], name="my_custom_node", domain="custom"))
        x = "custom.out"
    nodes += [
        helper.make_node("Conv", [x, "conv.w", "conv.b"], ["c"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c"], ["r"], name="relu1"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["logits"], transB=1, name="fc"),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", ftype, [batch, 3, size, size])],
        [helper.make_tensor_value_info("logits", ftype, [batch, classes])], inits,
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("custom", 1)] if extra_op else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    if not extra_op:
        onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def tiny_onnx(tmp_path: Path) -> Path:
    """``<tmp>/tiny/model.onnx`` (dynamic batch) with a manifest recording its preprocessing."""
    path = make_onnx(tmp_path / "tiny" / "model.onnx")
    artifacts.write_manifest(path.parent, {"stage": "export", "preprocess": {"resize": 10, "crop": 8}})
    return path


class FakeGpu:
    """The GPU the seam reports; tests change ``current`` to move the "machine"."""

    def __init__(self) -> None:
        self.current = GPU_A10G

    def __call__(self, device: str = "cuda") -> GpuInfo:
        return self.current


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> FakeGpu:
    gpu = FakeGpu()
    monkeypatch.setattr("resdeploy.trt.loader.gpu_info", gpu)
    return gpu


@pytest.fixture
def install_fake(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_gpu: FakeGpu
) -> Callable[..., FakeTensorRT]:
    """Install a (new) fake tensorrt module; call again to "upgrade" TensorRT mid-test."""
    monkeypatch.setenv("RESDEPLOY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("resdeploy.runners.trt.device_backend", HostDevice)

    def install(version: str = "10.13.0.35", **kwargs: object) -> FakeTensorRT:
        fake = FakeTensorRT(version, **kwargs)  # type: ignore[arg-type]
        monkeypatch.setitem(sys.modules, "tensorrt", fake)
        return fake

    return install


@pytest.fixture
def fake_trt(install_fake: Callable[..., FakeTensorRT]) -> FakeTensorRT:
    return install_fake()


def trt_runner(config: Any) -> Any:
    """A TensorRT runner for ``config``, its ONNX built into a plan first (the runner is given an engine)."""
    from resdeploy.prepare import prepare_runner_config
    from resdeploy.runners import create_runner

    return create_runner(prepare_runner_config(config))
