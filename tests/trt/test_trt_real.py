"""Real TensorRT: build ResNet-18 engines (FP32, FP16, INT8 Q/DQ) and compare with ONNX Runtime.

Marked ``trt`` and ``gpu``: these run only where the real ``tensorrt`` package imports and
a CUDA GPU is present, and are skipped elsewhere with the reason (tests/conftest.py).
As of 2026-11-23 they have NOT run anywhere: no machine this project reaches has TensorRT.

The reference is ONNX Runtime (CPU) on the very ONNX graph that was compiled, so the
tolerances measure what the TensorRT compile changes, not what quantization changes
(that is the quantize stage's own check).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from resdeploy.compare import parity_metrics
from resdeploy.prepare import prepare_runner_config
from resdeploy.runners import RunnerConfig, create_runner
from resdeploy.trt.build import BuildConfig, build
from resdeploy.trt.compat import BatchProfile

pytestmark = [pytest.mark.trt, pytest.mark.gpu, pytest.mark.slow]

# precision -> (min cosine per sample, min top-1 agreement) against ONNX Runtime on the same graph.
# FP32 engines use TF32 by default on Ampere+, hence not 0.99999.
TOLERANCES = {"fp32": (0.9995, 0.99), "fp16": (0.995, 0.95), "int8": (0.98, 0.85)}


@pytest.fixture(scope="module")
def resnet18_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from resdeploy.exporter import export

    result = export("resnet18", tmp_path_factory.mktemp("resnet18") / "fp32")
    return Path(result.model_path)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_real_engine_matches_onnxruntime(resnet18_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         precision: str) -> None:
    monkeypatch.setenv("RESDEPLOY_CACHE_DIR", str(tmp_path / "cache"))
    config = BuildConfig(precision=precision, calib_data="synthetic" if precision == "int8" else None,
                         batch=BatchProfile(1, 4, 8), output=str(tmp_path / f"resnet18.{precision}.engine"))
    result = build(resnet18_onnx, config)
    assert result.engine_path.stat().st_size > 1_000_000 and not result.cached

    x = np.random.default_rng(0).standard_normal((8, 3, 224, 224)).astype(np.float32)
    with create_runner(RunnerConfig(engine="ort", model=str(result.onnx_path))) as ort:
        reference = ort.infer(x)
    with trt_runner(RunnerConfig(engine="trt", model=str(result.engine_path), device="cuda")) as runner:
        out = runner.infer(x)
        single = runner.infer(x[:1])  # another profile shape in the same context
        staged = runner.stage(x[:4])
        runner.run_staged(staged, transfers=False)
        runner.synchronize()
        four = runner.run_staged(staged, transfers=True)
    min_cos, min_top1 = TOLERANCES[precision]
    metrics = parity_metrics(reference, out)
    assert metrics.cosine_min >= min_cos and metrics.top1_agreement >= min_top1, metrics
    assert parity_metrics(out[:1], single).cosine_min > 0.999
    assert parity_metrics(out[:4], four).cosine_min > 0.999

    again = build(resnet18_onnx, config)  # unchanged inputs: the cached engine, no rebuild
    assert again.cached and again.engine_path.read_bytes() == result.engine_path.read_bytes()


def test_real_runner_from_onnx_with_cuda_graph(resnet18_onnx: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESDEPLOY_CACHE_DIR", str(tmp_path / "cache"))
    x = np.random.default_rng(1).standard_normal((2, 3, 224, 224)).astype(np.float32)
    config = RunnerConfig(engine="trt", model=str(resnet18_onnx), device="cuda", batch_size=2)
    with trt_runner(config) as plain:
        expected = plain.infer(x)
    graph_config = RunnerConfig(engine="trt", model=str(resnet18_onnx), device="cuda", batch_size=2,
                                options={"cuda_graph": True})
    with trt_runner(graph_config) as graphed:
        assert graphed.describe()["engine_cached"] is True
        for _ in range(3):
            np.testing.assert_allclose(graphed.infer(x), expected, rtol=1e-3, atol=1e-3)


def trt_runner(config: RunnerConfig):  # noqa: ANN201 - a TrtRunner
    """The TensorRT runner is given an engine: build (and cache) it from the ONNX first."""
    return create_runner(prepare_runner_config(config))
