"""OpenVinoRunner: OpenVINO's runtime on the same ONNX file, with its precision pinned and recorded."""

from __future__ import annotations

import numpy as np
import pytest

from resdeploy.errors import ResdeployError
from resdeploy.runners import RunnerConfig, create_runner

pytestmark = pytest.mark.openvino


def test_openvino_matches_pytorch_with_f32_pinned(tiny_onnx) -> None:
    import torch

    path, net = tiny_onnx
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32), dtype=np.float32)
    with create_runner(RunnerConfig("openvino", str(path), threads=1, batch_size=2)) as r:
        meta = r.input_meta()
        out = r.infer(x)
        d = r.describe()
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    # bf16 (OpenVINO's default on AVX512-BF16/AMX CPUs) would miss this tolerance by far.
    np.testing.assert_allclose(out, ref, atol=1e-4)
    assert meta.shape == (2, 3, 32, 32)  # reshaped to the static batch it will run
    assert d["inference_precision_hint"] == "f32" and d["precision"] == "fp32"
    assert d["inference_num_threads"] == 1 and d["openvino"]


def test_bf16_hint_where_the_cpu_supports_it(tiny_onnx) -> None:
    import openvino

    path, net = tiny_onnx
    if "BF16" not in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        with pytest.raises(ResdeployError, match="cannot run bf16"):
            with create_runner(RunnerConfig("openvino", str(path), precision="bf16")):
                pass
        return
    x = np.random.default_rng(2).standard_normal((1, 3, 32, 32), dtype=np.float32)
    with create_runner(RunnerConfig("openvino", str(path), precision="bf16", batch_size=1)) as r:
        out = r.infer(x)
        assert r.describe()["inference_precision_hint"] == "bf16"
    assert np.all(np.isfinite(out)) and out.shape == (1, 10)


def test_int8_request_on_fp32_graph_is_refused(tiny_onnx) -> None:
    path, _ = tiny_onnx
    with pytest.raises(ResdeployError, match="precision stored in the ONNX graph"):
        create_runner(RunnerConfig("openvino", str(path), precision="int8"))


def test_unavailable_device_is_one_line(tiny_onnx) -> None:
    path, _ = tiny_onnx
    with pytest.raises(ResdeployError, match="OpenVINO device NPU"):
        with create_runner(RunnerConfig("openvino", str(path), device="npu")):
            pass


def test_cuda_device_is_refused_with_the_alternative(tiny_onnx) -> None:
    path, _ = tiny_onnx
    with pytest.raises(ResdeployError, match="--device cpu"):
        create_runner(RunnerConfig("openvino", str(path), device="cuda"))


def test_static_batch_mismatch_is_a_clear_error_and_dynamic_takes_any(tiny_onnx) -> None:
    path, _ = tiny_onnx
    x3 = np.zeros((3, 3, 32, 32), dtype=np.float32)
    with create_runner(RunnerConfig("openvino", str(path), batch_size=2)) as r:
        with pytest.raises(ResdeployError, match="does not fit"):
            r.infer(x3)
    with create_runner(RunnerConfig("openvino", str(path))) as r:  # as validate uses it: batches vary
        assert r.infer(x3).shape == (3, 10) and r.infer(x3[:1]).shape == (1, 10)


def test_describe_records_what_a_benchmark_app_user_checks(tiny_onnx) -> None:
    """The settings benchmark_app prints in its step 8, read back from the compiled model."""
    import json
    import os

    path, _ = tiny_onnx
    with create_runner(RunnerConfig("openvino", str(path), batch_size=1)) as r:
        d = r.describe()
        compiled = r._compiled
        assert d["num_streams"] == int(compiled.get_property("NUM_STREAMS"))
        assert d["inference_num_threads"] == int(compiled.get_property("INFERENCE_NUM_THREADS"))
    assert d["performance_hint"] == "LATENCY"  # as `benchmark_app -hint latency`
    assert d["num_streams"] == 1  # the latency hint's single stream
    assert d["compiled_precision_hint"] == "f32" == d["inference_precision_hint"]
    assert d["input_element_type"] == "float32"  # not benchmark_app's default u8 image input
    assert d["api"].startswith("sync, 1 infer request")
    assert 1 <= d["inference_num_threads"] <= (os.cpu_count() or 1)
    json.dumps(d)  # goes into the result JSON as is
