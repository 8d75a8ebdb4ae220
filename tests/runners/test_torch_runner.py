"""TorchRunner: real zoo models on the CPU; the CUDA paths run where a GPU is (marked gpu)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from resdeploy.artifacts import write_manifest
from resdeploy.compare import parity_metrics
from resdeploy.errors import MissingDependencyError, ResdeployError
from resdeploy.models.zoo import ModelSpec, create_model
from resdeploy.runners import RunnerConfig, create_runner
from resdeploy.runners.torch_runner import TorchRunner, compile_mode

MODEL = "resnet20"  # CIFAR ResNet, 32x32: a real network that runs in milliseconds


def _x(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32)


def test_registry_gives_torch_runner_and_matches_the_zoo_model() -> None:
    runner = create_runner(RunnerConfig(engine="torch", model=MODEL, device="cpu", threads=1, batch_size=2))
    assert isinstance(runner, TorchRunner)
    x = _x(2)
    with runner:
        assert runner.input_meta().shape == ("batch", 3, 32, 32)
        out = runner.infer(x)
        staged = runner.stage(x)
        assert np.array_equal(runner.run_staged(staged, transfers=True), out)
        assert isinstance(runner.run_staged(staged, transfers=False), torch.Tensor)
        assert runner.describe()["model"]["weights"] == "random, seed 0"
        assert "load" in runner.setup_seconds
    with torch.no_grad():
        ref = create_model(MODEL, seed=0)(torch.from_numpy(x)).numpy()
    assert out.dtype == np.float32 and out.shape == (2, 10)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    # a different seed is a different model: the comparison above could fail
    with create_runner(RunnerConfig(engine="torch", model=MODEL, options={"seed": 1})) as other:
        assert not np.allclose(other.infer(x), out, atol=1e-3)


def test_artifact_dir_rebuilds_the_manifest_model(tmp_path) -> None:
    spec = ModelSpec(MODEL, seed=3)
    write_manifest(tmp_path, {"stage": "export", "model": {"name": MODEL, "source": "zoo", "spec": spec.to_dict()},
                              "inputs": [{"name": "input", "shape": ["batch", 3, 32, 32], "dtype": "float32"}]})
    (tmp_path / "model.onnx").write_bytes(b"not an ONNX graph")  # torch reads the manifest only
    x = _x(3, seed=1)
    with create_runner(RunnerConfig(engine="torch", model=str(tmp_path / "model.onnx"))) as r:
        out = r.infer(x)
        assert r.describe()["model"]["from"].endswith("model.onnx")
    with torch.no_grad():
        ref = spec.build()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_bf16_on_cpu_is_close_to_fp32_and_threads_are_restored() -> None:
    before = torch.get_num_threads()
    x = _x(4, seed=2)
    with create_runner(RunnerConfig(engine="torch", model=MODEL, threads=1)) as r32:
        ref = r32.infer(x)
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with create_runner(RunnerConfig(engine="torch", model=MODEL, precision="bf16")) as r16:
        out = r16.infer(x)
    m = parity_metrics(ref, out)
    assert m.cosine_min > 0.99 and m.max_abs_error > 0  # really ran in bf16, and stayed close


@pytest.mark.parametrize(
    ("config", "match"),
    [
        (RunnerConfig(engine="torch", model=MODEL, precision="fp16"), "CUDA only"),
        (RunnerConfig(engine="torch", model=MODEL, precision="int4"), "no precision 'int4'"),
        (RunnerConfig(engine="torch", model=MODEL, options={"cuda_graph": True}), "needs --device cuda"),
        (RunnerConfig(engine="torch", model=MODEL, options={"compile": "fast"}), "unknown torch.compile mode"),
        (RunnerConfig(engine="torch", model=MODEL, options={"compile": "reduce-overhead"}), "uses CUDA graphs"),
        (RunnerConfig(engine="torch", model=MODEL, device="tpu"), "runs on cpu or cuda"),
        (RunnerConfig(engine="torch", model=MODEL, threads=0), "threads must be a positive integer"),
    ],
)
def test_bad_configs_are_one_line_errors(config: RunnerConfig, match: str) -> None:
    with pytest.raises(ResdeployError, match=match):
        TorchRunner(config)


def test_bad_inputs_and_missing_files() -> None:
    with create_runner(RunnerConfig(engine="torch", model=MODEL)) as r:
        with pytest.raises(ResdeployError, match=r"expected \[N, 3, 32, 32\]"):
            r.infer(_x(1, size=64))
        with pytest.raises(ResdeployError, match="numpy array"):
            r.stage([1, 2, 3])  # type: ignore[arg-type]
    # One "path or name" rule with build and the ORT runner: a missing weights.pth is a file
    # that is not there, not an unknown zoo model; a timm name with a dotted tag is a name.
    for missing in ("missing/dir/model.onnx", "weights.pth"):
        with pytest.raises(ResdeployError, match="no such file"):
            with create_runner(RunnerConfig(engine="torch", model=missing)):
                pass
    with pytest.raises(ResdeployError, match="timm"):
        with create_runner(RunnerConfig(engine="torch", model="timm:resnet50.a1_in1k")):
            pass


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_without_a_gpu_names_what_to_install() -> None:
    with pytest.raises(MissingDependencyError, match="CUDA"):
        with create_runner(RunnerConfig(engine="torch", model=MODEL, device="cuda", precision="fp16")):
            pass


def test_compile_mode_normalisation() -> None:
    assert compile_mode(None, "cuda") is None and compile_mode(False, "cpu") is None
    assert compile_mode(True, "cuda") == "reduce-overhead"
    assert compile_mode(True, "cpu") == "default"
    assert compile_mode("max-autotune-no-cudagraphs", "cpu") == "max-autotune-no-cudagraphs"
    r = TorchRunner(RunnerConfig(engine="torch", model=MODEL, device="cuda", options={"compile": True}))
    assert r.freeze is False  # CUDA-graph modes do not freeze (frozen weights are re-copied per replay)
    r = TorchRunner(RunnerConfig(engine="torch", model=MODEL, options={"compile": "default"}))
    assert r.freeze is True


def test_cuda_graph_over_compiled_kernels_keeps_the_mode_and_freezes() -> None:
    # Our own CUDAGraph over Inductor's kernels: the mode stays graph-free and freezing stays on
    # (frozen weights are constants inside a manually captured graph, not per-replay copies).
    r = TorchRunner(RunnerConfig(engine="torch", model=MODEL, device="cuda",
                                 options={"compile": "default", "cuda_graph": True}))
    assert (r.compile_mode, r.cuda_graph, r.freeze) == ("default", True, True)
    # In a mode with Inductor's own CUDA graphs a second capture would be redundant.
    r = TorchRunner(RunnerConfig(engine="torch", model=MODEL, device="cuda",
                                 options={"compile": "reduce-overhead", "cuda_graph": True}))
    assert (r.compile_mode, r.cuda_graph, r.freeze) == ("reduce-overhead", False, False)
    with pytest.raises(ResdeployError, match="CUDA-graph replay needs --device cuda"):
        TorchRunner(RunnerConfig(engine="torch", model=MODEL, options={"compile": "default", "cuda_graph": True}))


# --- on a GPU ------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("options", [{}, {"cuda_graph": True}, {"channels_last": False}])
def test_cuda_fp16_matches_fp32_reference(options: dict) -> None:
    x = _x(8, seed=5)
    with create_runner(RunnerConfig(engine="torch", model=MODEL, device="cuda")) as ref_runner:
        ref = ref_runner.infer(x)
    cfg = RunnerConfig(engine="torch", model=MODEL, device="cuda", precision="fp16", batch_size=8, options=options)
    with create_runner(cfg) as r:
        out = r.infer(x)
        y = r.run_staged(r.stage(x), transfers=False)
        r.synchronize()
        assert y.is_cuda
        assert r.setup_seconds.get("autotune") is not None
        if options.get("cuda_graph"):
            assert "capture" in r.setup_seconds
            with pytest.raises(ResdeployError, match="batch 8"):
                r.infer(_x(4))
    m = parity_metrics(ref, out)
    assert m.cosine_min > 0.999, m


@pytest.mark.gpu
@pytest.mark.slow
def test_cuda_compile_reduce_overhead_matches_eager() -> None:
    x = _x(4, seed=6)
    with create_runner(RunnerConfig(engine="torch", model=MODEL, device="cuda", precision="fp16")) as eager:
        ref = eager.infer(x)
    cfg = RunnerConfig(engine="torch", model=MODEL, device="cuda", precision="fp16", batch_size=4,
                       options={"compile": True})
    with create_runner(cfg) as r:
        out = r.infer(x)
        assert r.setup_seconds["compile"] > 0 and r.describe()["compile"] == "reduce-overhead"
    assert parity_metrics(ref, out).cosine_min > 0.999


@pytest.mark.gpu
@pytest.mark.slow
def test_cuda_graph_over_compiled_kernels_matches_eager() -> None:
    with create_runner(RunnerConfig(engine="torch", model=MODEL, device="cuda", precision="fp16")) as eager:
        ref = eager.infer(_x(4, seed=7))
        ref2 = eager.infer(_x(4, seed=8))
    cfg = RunnerConfig(engine="torch", model=MODEL, device="cuda", precision="fp16", batch_size=4,
                       options={"compile": "default", "cuda_graph": True})
    with create_runner(cfg) as r:
        out = r.infer(_x(4, seed=7))
        out2 = r.infer(_x(4, seed=8))  # a replay must read the new input, not the captured one
        d = r.describe()
        assert d["graph_replay"] == "torch.cuda.CUDAGraph" and d["freeze"] is True
        assert r.setup_seconds["compile"] > 0 and "capture" in r.setup_seconds
    assert parity_metrics(ref, out).cosine_min > 0.999
    assert parity_metrics(ref2, out2).cosine_min > 0.999


def test_a_variant_of_a_plain_onnx_file_is_refused_plainly(tiny_onnx, tmp_path) -> None:  # noqa: ANN001
    # Its manifest (from quantize) has no model entry: the error was "the manifest has no model
    # spec; it was not written by `resdeploy export`", naming no file and no way out.
    import shutil

    from resdeploy.precision import quantize

    src = tmp_path / "net.onnx"
    shutil.copyfile(tiny_onnx[0], src)
    variant = quantize(src, precision="fp16", input_size=32).model_path.parent
    with pytest.raises(ResdeployError, match="torch engine needs a PyTorch model.*plain ONNX file") as err:
        with create_runner(RunnerConfig(engine="torch", model=str(variant))):
            pass
    assert str(variant) in str(err.value) and "--engine ort" in (err.value.hint or "")
