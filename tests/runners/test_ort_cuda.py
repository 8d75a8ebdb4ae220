"""OrtCudaRunner: provider options and bad input on any machine; the I/O-binding logic against a
real ONNX Runtime session bound to host memory; the CUDA provider itself where a GPU is (gpu)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from resdeploy.errors import MissingDependencyError, ResdeployError
from resdeploy.runners import RunnerConfig, create_runner
from resdeploy.runners.ort_cuda import OrtCudaRunner, cuda_provider_options, device_index


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 5),
    ).eval()
    path = tmp_path_factory.mktemp("tiny") / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, 16, 16),), str(path), input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          dynamo=False)
    return path, model


def test_provider_options_ask_for_the_fast_paths() -> None:
    opts = cuda_provider_options(1, cuda_graph=True, stream=1234)
    assert opts["device_id"] == "1" and opts["cudnn_conv_algo_search"] == "EXHAUSTIVE"
    assert opts["prefer_nhwc"] == "1" and opts["enable_cuda_graph"] == "1"
    assert opts["user_compute_stream"] == "1234" and opts["has_user_compute_stream"] == "1"
    assert all(isinstance(v, str) for v in opts.values())
    plain = cuda_provider_options(0, nhwc=False, cudnn_search="heuristic")
    assert plain["prefer_nhwc"] == "0" and plain["enable_cuda_graph"] == "0"
    assert plain["cudnn_conv_algo_search"] == "HEURISTIC" and "user_compute_stream" not in plain
    assert "has_user_compute_stream" not in plain
    with pytest.raises(ResdeployError, match="cuDNN search"):
        cuda_provider_options(0, cudnn_search="fastest")


def test_device_index() -> None:
    assert device_index("cuda") == 0 and device_index("cuda:3") == 3
    for bad in ("cpu", "cuda:x"):
        with pytest.raises(ResdeployError):
            device_index(bad)


def test_registry_picks_the_cuda_runner_and_checks_flags(tiny_onnx: tuple[Path, Any]) -> None:
    path, _ = tiny_onnx
    runner = create_runner(RunnerConfig(engine="ort", model=str(path), device="cuda:0"))
    assert isinstance(runner, OrtCudaRunner) and runner.ep == "cuda" and runner.device_id == 0
    with pytest.raises(ResdeployError, match="--ep openvino"):
        create_runner(RunnerConfig(engine="ort", model=str(path), device="cuda", options={"ep": "openvino"}))
    with pytest.raises(ResdeployError, match="cuDNN search"):
        create_runner(RunnerConfig(engine="ort", model=str(path), device="cuda", options={"cudnn_search": "x"}))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where ONNX Runtime has no CUDA provider")
def test_without_the_cuda_provider_the_error_names_the_package(tiny_onnx: tuple[Path, Any]) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here")
    with pytest.raises(MissingDependencyError, match="onnxruntime-gpu"):
        with create_runner(RunnerConfig(engine="ort", model=str(tiny_onnx[0]), device="cuda")):
            pass


class _HostBound(OrtCudaRunner):
    """The runner's binding, staging and warm-up code, bound to host memory on the CPU provider.

    Not a stand-in for the GPU: it exercises the same ``io_binding`` calls (bind by pointer
    into torch tensors, or OrtValues) on a real session, so their bookkeeping is tested here.
    """

    _io_device = "cpu"
    use_torch = True

    def _providers(self) -> list[Any]:
        return ["CPUExecutionProvider"]

    def _expected_provider(self) -> str:
        return "CPUExecutionProvider"

    def _buffer_torch(self) -> Any:
        return torch if self.use_torch else None


class _HostBoundOrtValue(_HostBound):
    use_torch = False


@pytest.mark.parametrize("cls", [_HostBound, _HostBoundOrtValue])
def test_bound_buffers_give_the_models_outputs(cls: type, tiny_onnx: tuple[Path, Any]) -> None:
    path, model = tiny_onnx
    rng = np.random.default_rng(0)
    with cls(RunnerConfig(engine="ort", model=str(path), device="cuda", batch_size=2)) as r:
        assert {"load", "autotune", "warmup"} <= set(r.setup_seconds)
        for n in (2, 3, 2):  # a new batch size gets its own binding; the old one is reused
            x = rng.standard_normal((n, 3, 16, 16)).astype(np.float32)
            with torch.no_grad():
                ref = model(torch.from_numpy(x)).numpy()
            np.testing.assert_allclose(r.infer(x), ref, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(np.asarray(r.run_staged(r.stage(x), transfers=True)), ref,
                                       rtol=1e-4, atol=1e-5)
        assert sorted(r._bindings) == [2, 3]
        with pytest.raises(ResdeployError, match="does not fit"):
            r.infer(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
        d = r.describe()
        assert d["io_binding"] and d["device_buffers"] == ("torch" if cls.use_torch else "ortvalue")


@pytest.mark.gpu
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_cuda_provider_with_bound_device_buffers(tiny_onnx: tuple[Path, Any], cuda_graph: bool) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("needs onnxruntime-gpu")
    path, model = tiny_onnx
    x = np.random.default_rng(1).standard_normal((4, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    cfg = RunnerConfig(engine="ort", model=str(path), device="cuda", batch_size=4, options={"cuda_graph": cuda_graph})
    with create_runner(cfg) as r:
        assert r.describe()["providers"][0] == "CUDAExecutionProvider"
        np.testing.assert_allclose(r.infer(x), ref, rtol=1e-3, atol=1e-3)
        y = r.run_staged(r.stage(x), transfers=False)
        r.synchronize()
        assert y.is_cuda
        if cuda_graph:
            with pytest.raises(ResdeployError, match="batch 4"):
                r.infer(x[:2])
