"""OrtRunner on the CPU provider: real sessions on a real exported graph, checked against PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from resdeploy.errors import MissingDependencyError, ResdeployError
from resdeploy.runners import RunnerConfig, create_runner
from resdeploy.runners.ort import OrtRunner, graph_precision


def test_ort_matches_pytorch_and_describes_itself(tiny_onnx) -> None:
    import torch

    path, net = tiny_onnx
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32), dtype=np.float32)
    with create_runner(RunnerConfig("ort", str(path), threads=1)) as r:
        assert isinstance(r, OrtRunner)
        meta = r.input_meta()
        assert meta.name == "input" and meta.shape[1:] == (3, 32, 32) and meta.dtype == "float32"
        out = r.infer(x)
        staged = r.run_staged(r.stage(x))
        d = r.describe()
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    assert out.shape == (3, 10) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-4)
    np.testing.assert_array_equal(staged, out)
    assert d["engine"] == "ort" and d["providers"] == ["CPUExecutionProvider"]
    assert d["threads"] == 1 and d["precision"] == "fp32" and d["onnxruntime"]
    assert r.setup_seconds["load"] > 0


def test_artifact_dir_resolves_to_model_onnx(tiny_onnx) -> None:
    path, _ = tiny_onnx
    r = create_runner(RunnerConfig("ort", str(path.parent)))
    assert r.model_path == path


def test_precision_the_graph_does_not_hold_is_refused(tiny_onnx) -> None:
    path, _ = tiny_onnx
    assert graph_precision(path) == "fp32"
    with pytest.raises(ResdeployError, match="precision stored in the ONNX graph"):
        create_runner(RunnerConfig("ort", str(path), precision="int8"))
    create_runner(RunnerConfig("ort", str(path), precision="fp32"))  # matches: accepted


def test_bad_models_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ResdeployError, match="export it first"):
        create_runner(RunnerConfig("ort", "resnet50"))
    with pytest.raises(ResdeployError, match="no such file"):
        create_runner(RunnerConfig("ort", str(tmp_path / "missing.onnx")))
    garbage = tmp_path / "model.onnx"
    garbage.write_bytes(b"this is not a protobuf")
    (tmp_path / "manifest.json").write_text("{}")  # not a manifest: the graph itself is read
    with pytest.raises(ResdeployError) as exc:
        with create_runner(RunnerConfig("ort", str(garbage))):
            pass
    assert "\n" not in str(exc.value)


def test_missing_provider_names_the_package(tiny_onnx) -> None:
    path, _ = tiny_onnx
    import onnxruntime

    if "OpenVINOExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("the OpenVINO execution provider is installed here")
    with pytest.raises(MissingDependencyError, match="pip install onnxruntime-openvino"):
        with create_runner(RunnerConfig("ort", str(path), options={"ep": "openvino"})):
            pass
    with pytest.raises(ResdeployError, match="--device cuda"):
        create_runner(RunnerConfig("ort", str(path), options={"ep": "cuda"}))
    with pytest.raises(ResdeployError, match="unknown ONNX Runtime provider"):
        create_runner(RunnerConfig("ort", str(path), options={"ep": "directml"}))


@pytest.mark.parametrize("field", ["threads", "batch_size"])
@pytest.mark.parametrize("value", [0, -2, True])
def test_every_runner_refuses_non_positive_threads_and_batch(field: str, value: object) -> None:
    from resdeploy.errors import ResdeployError
    from resdeploy.runners import RunnerConfig, create_runner

    for engine in ("ort", "torch", "openvino"):
        with pytest.raises(ResdeployError, match="must be a positive integer"):
            create_runner(RunnerConfig(engine=engine, model="resnet18", **{field: value}))  # type: ignore[arg-type]


def test_describe_reads_back_the_session_settings(tiny_onnx) -> None:
    """What an onnxruntime_perf_test user sets (-o 99, sequential), as the session really has it."""
    path, _ = tiny_onnx
    with create_runner(RunnerConfig("ort", str(path))) as r:
        d = r.describe()
        so = r.session.get_session_options()
    assert d["graph_optimization_level"] == "ORT_ENABLE_ALL" == str(so.graph_optimization_level).split(".")[-1]
    assert d["execution_mode"] == "ORT_SEQUENTIAL"
