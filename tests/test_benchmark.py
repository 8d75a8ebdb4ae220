"""bench: real runners on a real exported graph, measured through the library API."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from resdeploy.benchmark import RESULT_SCHEMA, BenchConfig, bench, make_inputs
from resdeploy.errors import MissingDependencyError, ResdeployError
from resdeploy.stats import LatencyStats

FAST = {"iterations": 8, "duration": 0.0, "warmup_iterations": 2}


def test_bench_two_engines_two_batches(tiny_onnx) -> None:
    path, _ = tiny_onnx
    res = bench(BenchConfig(model=str(path), engines=["ort", "openvino"], batches=[1, 4], threads=1, **FAST))
    d = json.loads(json.dumps(res.to_dict()))
    assert d["schema"] == RESULT_SCHEMA and d["machine"]["cpu"]["model"]
    assert [(r["engine"], r["batch"]) for r in d["runs"]] == [("ort", 1), ("ort", 4), ("openvino", 1), ("openvino", 4)]
    for run in d["runs"]:
        s = LatencyStats.from_dict(run["stats"])
        assert s.count == 8 == len(run["latencies_ms"])
        assert s.images == 8 * run["batch"]
        assert run["throughput"] == pytest.approx(s.images / s.wall_seconds)
        assert s.p50_ms == pytest.approx(np.median(run["latencies_ms"]), rel=1e-3)
        assert run["input_shape"] == [run["batch"], 3, 32, 32]
        assert run["timer"] == "perf_counter" and run["transfers"] is None  # CPU: no copies to include
        assert run["warmup_iterations"] == 2 and run["setup_seconds"]["load"] > 0
        assert run["peak_rss_mb"] > 10 and run["peak_gpu_mb"] is None
        assert run["runner"]["engine"] == run["engine"] and run["emulation"] is None
        assert run["model_sha256"] and len(run["model_sha256"]) == 64
    assert d["config"]["batches"] == [1, 4]


def test_duration_minimum_extends_the_run(tiny_onnx) -> None:
    path, _ = tiny_onnx
    res = bench(str(path), engines=["ort"], batches=[1], iterations=1, duration=0.2, warmup_iterations=0)
    s = res.runs[0].latency
    assert s.wall_seconds >= 0.2 and s.count > 1


def test_inputs_are_random_distinct_and_seeded() -> None:
    a = make_inputs((2, 3, 8, 8), 3, seed=5)
    b = make_inputs((2, 3, 8, 8), 3, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], a[1]) and np.count_nonzero(a[0]) == a[0].size
    assert a[0].dtype == np.float32 and abs(float(a[0].std()) - 1.0) < 0.3


def test_torch_engine_by_zoo_name() -> None:
    res = bench("resnet20", engines=["torch"], batches=[2], threads=1, **FAST)
    run = res.runs[0]
    assert run.engine == "torch" and run.input_shape == [2, 3, 32, 32] and run.latency.count == 8
    assert run.model_sha256 is None


def test_server_and_single_stream_and_offline(tiny_onnx) -> None:
    path, _ = tiny_onnx
    srv = bench(str(path), engines=["ort"], scenario="server", qps=200, slo_ms=50, iterations=20, duration=0.1,
                warmup_iterations=2).runs[0]
    assert srv.batch == 1 and srv.scenario_summary is not None
    assert srv.scenario_summary["target_qps"] == 200 and srv.scenario_summary["achieved_qps"] > 50
    assert srv.scenario_summary["slo_met"] in (True, False) and srv.scenario_summary["p99_ms"] == srv.latency.p99_ms
    ss = bench(str(path), engines=["ort"], scenario="single-stream", **FAST).runs
    assert [r.batch for r in ss] == [1] and ss[0].scenario_summary == {"metric": "p90_ms", "value": ss[0].latency.p90_ms}
    off = bench(str(path), engines=["ort"], scenario="offline", batches=[1, 8], **FAST).runs
    best = [r for r in off if r.scenario_summary and r.scenario_summary["best"]]
    assert len(best) == 1 and best[0].throughput == max(r.throughput for r in off)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU pinning needs Linux")
def test_cpu_pinning_is_labelled_emulation_and_restored(tiny_onnx) -> None:
    path, _ = tiny_onnx
    before = os.sched_getaffinity(0)
    cpu = min(before)
    run = bench(str(path), engines=["ort"], batches=[1], cpus=[cpu], **FAST).runs[0]
    assert os.sched_getaffinity(0) == before
    assert run.emulation is not None and run.emulation["cpus"] == [cpu] and run.emulation["threads"] == 1
    assert "emulates" in run.emulation["note"] and run.runner["threads"] == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"batches": [0]}, "positive integers"),
        ({"iterations": 0, "duration": 0.0}, "zero iterations and zero duration"),
        ({"engines": ["tensorflow"]}, "unknown engine"),
        ({"engines": ["ort", "ort"]}, "listed twice"),
        ({"scenario": "single-stream", "batches": [8]}, "single-stream"),
        ({"scenario": "server"}, "needs --qps"),
        ({"qps": 10.0}, "server only"),
        ({"scenario": "batch"}, "unknown scenario"),
        ({"threads": 0}, "--threads"),
        ({"cpus": [10_000]}, "not available"),
        ({"cpus": [0, 0]}, "twice"),
        ({"batches": [4, 4]}, "twice"),
        # options no chosen engine reads would be silently ignored: the run would not be what was asked
        ({"options": {"compile": True}}, "--compile is read by torch only"),
        ({"engines": ["openvino"], "options": {"ep": "openvino"}}, "--ep is read by ort only"),
        ({"options": {"cuda_graph": True}}, "needs --device cuda"),
    ],
)
def test_bad_configs_are_one_line_errors(tiny_onnx, overrides, message) -> None:  # noqa: ANN001
    path, _ = tiny_onnx
    with pytest.raises(ResdeployError, match=message):
        bench(BenchConfig(model=str(path), **{**FAST, **overrides}))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter, the fast one
def test_a_fixed_batch_model_is_timed_at_its_batch_by_default(tiny_onnx, tmp_path) -> None:  # noqa: ANN001
    """As trtexec and benchmark_app time a static model: the default batches (1, 8) refused it."""
    import torch

    _, net = tiny_onnx
    path = tmp_path / "b3.onnx"
    torch.onnx.export(net, (torch.randn(3, 3, 32, 32),), str(path), input_names=["data"], output_names=["prob"],
                      dynamo=False)
    result = bench(str(path), engines=["ort"], iterations=2, duration=0.0, warmup_iterations=0)
    assert [r.batch for r in result.runs] == [3] and result.config["batches"] == [3]
    with pytest.raises(ResdeployError, match="cannot run batch 8"):  # asked for: refused, not changed
        bench(str(path), engines=["ort"], batches=[8], iterations=1, duration=0.0)
    with pytest.raises(ResdeployError, match="single-stream scenario runs batch 1.*fixes a batch of 3"):
        bench(str(path), engines=["ort"], scenario="single-stream", iterations=1, duration=0.0)


def test_bad_pair_fails_before_any_engine_is_timed(tiny_onnx) -> None:
    path, _ = tiny_onnx
    # ort would be measured first; the error for the second engine must come before that.
    with pytest.raises(ResdeployError, match="precision"):
        bench(str(path), engines=["ort", "openvino"], precision="int8", iterations=10_000, duration=60.0)
    with pytest.raises((MissingDependencyError, ResdeployError), match="not available"):
        bench(str(path), engines=["ort", "trt"], iterations=10_000, duration=60.0)
    import onnxruntime

    if "OpenVINOExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(MissingDependencyError, match="onnxruntime-openvino"):
            bench(str(path), engines=["openvino", "ort"], options={"ep": "openvino"}, iterations=10_000,
                  duration=60.0)


def test_cpu_harness_compares_the_same_session(tiny_onnx) -> None:  # noqa: ANN001
    """Smoke test of benchmarks/cpu_harness.py's check (the 3% verdict itself needs a quiet machine)."""
    import importlib.util
    from pathlib import Path

    from resdeploy.console import QUIET

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "cpu_harness.py"
    spec = importlib.util.spec_from_file_location("cpu_harness", script)
    assert spec and spec.loader
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    path, _ = tiny_onnx
    res = harness.harness_check("tiny", path, 2, threads=1, rounds=2, iterations=5, rep=QUIET)
    assert res["samples"] == [10, 10]
    assert res["resdeploy_p50_ms"] > 0 and res["bare_p50_ms"] > 0
    assert res["difference"] == pytest.approx(res["resdeploy_p50_ms"] / res["bare_p50_ms"] - 1)
    assert res["passed"] == (abs(res["difference"]) <= harness.TOLERANCE)


@pytest.mark.gpu
@pytest.mark.parametrize("transfers", [True, False])
def test_bench_on_cuda_times_with_events(transfers: bool) -> None:
    res = bench("resnet20", engines=["torch"], device="cuda", batches=[4], transfers=transfers, **FAST)
    run = res.runs[0]
    assert run.timer == "cuda_events" and run.transfers is transfers
    assert run.peak_gpu_mb is not None and run.peak_gpu_mb > 0
    assert run.latency.count == 8 and run.latency.p50_ms > 0
    assert res.machine["cuda"]["available"] is True
