# ruff: noqa: F811  (pytest fixtures are imported from trt_fixtures and named as arguments)
"""The runner's CUDA plumbing on a real GPU, with the FAKE tensorrt module standing in for TensorRT.

Marked ``gpu``: runs where torch sees a CUDA device. Here the device memory, pinned host
buffers, the stream, the GPU name/compute-capability probe and CUDA-graph capture are all
real (PyTorch's), and only TensorRT is the fake: its execution context computes the
documented stand-in ``logits[i, j] = (j + 1) * mean(input[i])`` with torch on the stream
handle the runner passes to ``execute_async_v3``. This checks resdeploy's buffers, copies,
stream ordering and graph replay; it says nothing about TensorRT itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from fake_tensorrt import FakeTensorRT
from trt_fixtures import make_onnx, tiny_onnx, trt_runner  # noqa: F401

from resdeploy.runners import RunnerConfig
from resdeploy.runners.trt import CudaDevice

pytestmark = pytest.mark.gpu


@pytest.fixture
def cuda_fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeTensorRT:
    fake = FakeTensorRT(cuda=True)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setenv("RESDEPLOY_CACHE_DIR", str(tmp_path / "cache"))
    return fake


def _expected(batch: np.ndarray, classes: int = 10) -> np.ndarray:
    means = batch.reshape(len(batch), -1).astype(np.float64).mean(axis=1)
    return (means[:, None] * np.arange(1, classes + 1)[None, :]).astype(np.float32)


def test_cuda_buffers_stream_and_copies(cuda_fake: FakeTensorRT, tiny_onnx: Path) -> None:
    import torch

    rng = np.random.default_rng(0)
    with trt_runner(RunnerConfig(engine="trt", model=str(tiny_onnx), device="cuda", batch_size=8)) as runner:
        device = runner._device
        assert isinstance(device, CudaDevice)
        assert device.stream_handle not in (0, 1, 2)  # our own stream, not the legacy/per-thread default
        for n in (8, 1, 8, 5):
            x = rng.standard_normal((n, 3, 8, 8)).astype(np.float32)
            np.testing.assert_allclose(runner.infer(x), _expected(x), rtol=1e-5, atol=1e-6)
        assert all(h.is_pinned() for h in runner._host_in.values())
        assert all(h.is_pinned() for h in runner._host_out.values())
        staged = runner.stage(np.ones((4, 3, 8, 8), np.float32))
        out = runner.run_staged(staged, transfers=False)
        runner.synchronize()
        assert out.is_cuda
        np.testing.assert_allclose(out.cpu().numpy(), _expected(np.ones((4, 3, 8, 8), np.float32)), rtol=1e-6)
        gpu = runner.describe()["gpu"]
    assert gpu == torch.cuda.get_device_name(0)  # the real probe, recorded in the engine metadata
    assert set(cuda_fake.record.executes) == {device.stream_handle}


def test_cuda_graph_replays_with_new_inputs(cuda_fake: FakeTensorRT, tiny_onnx: Path) -> None:
    rng = np.random.default_rng(1)
    config = RunnerConfig(engine="trt", model=str(tiny_onnx), device="cuda", batch_size=2,
                          options={"cuda_graph": True})
    with trt_runner(config) as runner:
        for _ in range(4):
            x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
            np.testing.assert_allclose(runner.infer(x), _expected(x), rtol=1e-5, atol=1e-6)
        assert runner.cuda_graph is True  # capture worked, no fallback
        assert len(runner._graphs) == 1
    # One plain launch before capture, one inside it; replays do not call execute_async_v3.
    assert len(cuda_fake.record.executes) == 2


def test_cuda_fp16_io(cuda_fake: FakeTensorRT, tmp_path: Path) -> None:
    onnx_path = make_onnx(tmp_path / "h" / "model.onnx", precision="fp16")
    x = np.random.default_rng(2).standard_normal((3, 3, 8, 8)).astype(np.float32)
    with trt_runner(RunnerConfig(engine="trt", model=str(onnx_path), device="cuda", batch_size=3)) as runner:
        out = runner.infer(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, _expected(x.astype(np.float16)), rtol=3e-3, atol=3e-3)
