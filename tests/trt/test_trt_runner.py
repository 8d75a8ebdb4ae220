# ruff: noqa: F811  (pytest fixtures are imported from trt_fixtures and named as arguments)
"""TrtRunner logic against the FAKE tensorrt module and host memory standing in for the GPU.

What is checked: name-based I/O, input shapes per batch, tensor addresses, the stream
handle passed to execute_async_v3, output copy-back and row order, dtype conversion,
building (or reusing) an engine from an ONNX, and refusing incompatible engine files.
The fake's "logits" are a documented stand-in, not a model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fake_tensorrt import FakeTensorRT, HostDevice
from trt_fixtures import FakeGpu, fake_gpu, fake_trt, install_fake, make_onnx, tiny_onnx, trt_runner  # noqa: F401

from resdeploy import artifacts
from resdeploy.errors import ResdeployError
from resdeploy.runners import RunnerConfig
from resdeploy.runners.trt import TrtRunner
from resdeploy.trt.build import BuildConfig, build
from resdeploy.trt.compat import BatchProfile
from resdeploy.trt.loader import GpuInfo


def _expected(batch: np.ndarray, classes: int = 10) -> np.ndarray:
    """The fake context's documented stand-in output."""
    means = batch.reshape(len(batch), -1).astype(np.float64).mean(axis=1)
    return (means[:, None] * np.arange(1, classes + 1)[None, :]).astype(np.float32)


def test_runner_from_onnx_builds_then_runs(fake_trt: FakeTensorRT, tiny_onnx: Path) -> None:
    batch = np.random.default_rng(1).standard_normal((4, 3, 8, 8)).astype(np.float32)
    runner = trt_runner(RunnerConfig(engine="trt", model=str(tiny_onnx), device="cuda", batch_size=4))
    assert isinstance(runner, TrtRunner)
    with runner:
        assert runner.input_meta().name == "input" and runner.input_meta().shape == ("batch", 3, 8, 8)
        out = runner.infer(batch)
        desc = runner.describe()
    np.testing.assert_allclose(out, _expected(batch), rtol=1e-5)
    assert out.dtype == np.float32 and out.shape == (4, 10)
    assert fake_trt.record.profiles == [{"input": [[1, 3, 8, 8], [4, 3, 8, 8], [4, 3, 8, 8]]}]
    assert fake_trt.record.input_shapes == [(4, 3, 8, 8)]
    assert [name for name, _ in fake_trt.record.addresses] == ["input", "logits"]
    assert fake_trt.record.executes == [HostDevice.STREAM]
    assert desc["engine"] == "trt" and desc["tensorrt"] == "10.13.0.35" and desc["engine_cached"] is False
    assert desc["profile"] == "1:4:4" and desc["gpu"] == "NVIDIA A10G"
    # The runner keeps its engine in the cache: nothing written beside the user's ONNX.
    assert sorted(p.name for p in tiny_onnx.parent.iterdir()) == ["manifest.json", "model.onnx"]
    assert Path(desc["engine_path"]).parent.name == "engines"


def test_second_runner_reuses_cached_engine(fake_trt: FakeTensorRT, tiny_onnx: Path) -> None:
    config = RunnerConfig(engine="trt", model=str(tiny_onnx), device="cuda", batch_size=2)
    with trt_runner(config) as first:
        assert first.describe()["engine_cached"] is False
    with trt_runner(config) as second:
        assert second.describe()["engine_cached"] is True
    assert fake_trt.record.builds == 1 and fake_trt.record.deserialized == 2


def test_shape_set_once_per_batch_and_rows_stay_in_order(fake_trt: FakeTensorRT, tiny_onnx: Path) -> None:
    engine = build(tiny_onnx, BuildConfig(batch=BatchProfile(1, 4, 8))).engine_path
    rng = np.random.default_rng(2)
    with trt_runner(RunnerConfig(engine="trt", model=str(engine), device="cuda")) as runner:
        for n in (1, 8, 8, 3):
            x = rng.standard_normal((n, 3, 8, 8)).astype(np.float32)
            np.testing.assert_allclose(runner.infer(x), _expected(x), rtol=1e-5)
        with pytest.raises(ResdeployError, match="outside this engine's profile 1:4:8"):
            runner.infer(np.zeros((9, 3, 8, 8), np.float32))
        with pytest.raises(ResdeployError, match=r"does not fit the trt model .*expected \[N, 3, 8, 8\]"):
            runner.infer(np.zeros((2, 3, 9, 9), np.float32))
    assert fake_trt.record.input_shapes == [(1, 3, 8, 8), (8, 3, 8, 8), (3, 3, 8, 8)]


def test_staged_run_without_transfers_returns_device_output(fake_trt: FakeTensorRT, tiny_onnx: Path) -> None:
    x = np.full((2, 3, 8, 8), 0.5, np.float32)
    with trt_runner(RunnerConfig(engine="trt", model=str(tiny_onnx), device="cuda", batch_size=2)) as runner:
        staged = runner.stage(x)
        for _ in range(3):
            device_out = runner.run_staged(staged, transfers=False)
        runner.synchronize()
        assert not isinstance(device_out, np.ndarray)  # stays "on the device"
        np.testing.assert_allclose(device_out.numpy(), _expected(x), rtol=1e-6)
    assert len(fake_trt.record.executes) == 3


def test_fp16_engine_io_is_converted(fake_trt: FakeTensorRT, tmp_path: Path) -> None:
    onnx_path = make_onnx(tmp_path / "h" / "model.onnx", precision="fp16")
    x = np.random.default_rng(3).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with trt_runner(RunnerConfig(engine="trt", model=str(onnx_path), device="cuda", batch_size=2)) as runner:
        assert runner.input_meta().dtype == "float16"
        assert runner.describe()["precision"] == "fp16"
        out = runner.infer(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, _expected(x.astype(np.float16)), rtol=2e-3, atol=2e-3)


def test_cuda_graph_option_captures_once_per_batch(fake_trt: FakeTensorRT, tiny_onnx: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    devices: list[HostDevice] = []

    def backend(device: str) -> HostDevice:
        devices.append(HostDevice(device))
        return devices[-1]

    monkeypatch.setattr("resdeploy.runners.trt.device_backend", backend)
    config = RunnerConfig(engine="trt", model=str(tiny_onnx), device="cuda", batch_size=2,
                          options={"cuda_graph": True})
    rng = np.random.default_rng(4)
    with trt_runner(config) as runner:
        for _ in range(3):
            x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
            np.testing.assert_allclose(runner.infer(x), _expected(x), rtol=1e-5)
    assert devices[0].captures == 1
    # Graph replays read fixed buffers: every launch used the same input address.
    assert len({ptr for name, ptr in fake_trt.record.addresses if name == "input"}) == 1


def test_engine_file_from_other_gpu_is_refused(fake_trt: FakeTensorRT, fake_gpu: FakeGpu, tiny_onnx: Path) -> None:
    engine = build(tiny_onnx).engine_path
    fake_gpu.current = GpuInfo("NVIDIA H100 80GB HBM3", "9.0")
    with pytest.raises(ResdeployError, match="refusing to load .*built on NVIDIA A10G.*NVIDIA H100"):
        with trt_runner(RunnerConfig(engine="trt", model=str(engine), device="cuda")):
            pass
    assert fake_trt.record.deserialized == 0  # refused before TensorRT was asked


def test_engine_file_from_other_tensorrt_is_refused(install_fake: Callable[..., FakeTensorRT], tiny_onnx: Path) -> None:
    install_fake("10.13.0.35")
    engine = build(tiny_onnx).engine_path
    newer = install_fake("10.14.1.48")
    with pytest.raises(ResdeployError, match="built with TensorRT 10.13.0.35 and this machine has TensorRT 10.14.1.48"):
        with trt_runner(RunnerConfig(engine="trt", model=str(engine), device="cuda")):
            pass
    assert newer.record.deserialized == 0


def test_version_compatible_engine_allows_host_code(install_fake: Callable[..., FakeTensorRT],
                                                    tiny_onnx: Path) -> None:
    fake = install_fake()
    engine = build(tiny_onnx, BuildConfig(version_compatible=True)).engine_path
    with trt_runner(RunnerConfig(engine="trt", model=str(engine), device="cuda")):
        pass
    assert fake.record.engine_host_code_allowed == [True]


def test_engine_without_metadata_or_damaged(fake_trt: FakeTensorRT, tiny_onnx: Path, tmp_path: Path) -> None:
    stray = tmp_path / "stray.plan"
    stray.write_bytes(b"\x00plan")
    with pytest.raises(ResdeployError, match="no metadata beside .*stray.plan"):
        with trt_runner(RunnerConfig(engine="trt", model=str(stray), device="cuda")):
            pass
    engine = build(tiny_onnx).engine_path
    engine.write_bytes(b"not a plan")
    # changed after its manifest was written: refused before TensorRT is asked, naming both hashes
    with pytest.raises(ResdeployError, match="does not match .*model.fp32.engine.json.*records sha256"):
        with trt_runner(RunnerConfig(engine="trt", model=str(engine), device="cuda")):
            pass
    assert fake_trt.record.deserialized == 0
    manifest = artifacts.load_engine_manifest(engine, verify=False)
    manifest.artifact = artifacts.FileRecord.measure(engine)  # a manifest that records the bad bytes
    manifest.write_beside(engine)
    with pytest.raises(ResdeployError, match="TensorRT could not load .*not a plan"):
        with trt_runner(RunnerConfig(engine="trt", model=str(engine), device="cuda")):
            pass
    meta = json.loads((engine.parent / (engine.name + ".json")).read_text())
    assert meta["schema"] == artifacts.MANIFEST_SCHEMA and meta["engine"]["tensorrt_version"]


def test_trt_runner_needs_a_cuda_device(fake_trt: FakeTensorRT, tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the real gpu_info seam: no CUDA device on this machine
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", fake_trt)
    with pytest.raises(ResdeployError, match="runs on an NVIDIA GPU, not on 'cpu'"):
        with trt_runner(RunnerConfig(engine="trt", model=str(tiny_onnx), device="cpu")):
            pass
