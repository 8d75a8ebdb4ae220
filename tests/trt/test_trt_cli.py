# ruff: noqa: F811  (pytest fixtures are imported from trt_fixtures and named as arguments)
"""`resdeploy build` through the CLI: exit codes, one-line errors, table and --json.

Runs against the FAKE tensorrt module where a build should succeed; the
missing-TensorRT case runs against this machine as it is (no TensorRT here, only stubs).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from fake_tensorrt import FakeTensorRT
from trt_fixtures import fake_gpu, fake_trt, install_fake, run_cli, tiny_onnx, trt_runner  # noqa: F401


def test_build_without_tensorrt_exits_2_with_install_line(tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    try:
        import tensorrt

        if hasattr(tensorrt, "Builder"):
            pytest.skip("the real TensorRT is installed here")
    except ImportError:
        pass
    code, out, err = run_cli("build", str(tiny_onnx), "--precision", "fp16")
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "pip install" in lines[0] and "tensorrt" in lines[0] and "TensorRT 10" in lines[0]
    assert "Traceback" not in err and out == ""
    assert sorted(p.name for p in tiny_onnx.parent.iterdir()) == ["manifest.json", "model.onnx"]


def test_bench_engine_trt_without_tensorrt_is_one_line(tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner (used by bench and validate) fails the same way, before touching the GPU."""
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    from resdeploy.errors import MissingDependencyError
    from resdeploy.runners import RunnerConfig

    try:
        import tensorrt

        if hasattr(tensorrt, "Builder"):
            pytest.skip("the real TensorRT is installed here")
    except ImportError:
        pass
    with pytest.raises(MissingDependencyError, match="pip install tensorrt"):
        with trt_runner(RunnerConfig(engine="trt", model=str(tiny_onnx), device="cuda")):
            pass


def test_build_cli_table_then_cached_json(fake_trt: FakeTensorRT, tiny_onnx: Path) -> None:
    code, out, err = run_cli("build", str(tiny_onnx), "--batch", "1:4:16", "--workspace", "256", "-q")
    assert code == 0, err
    assert "model.fp32.engine" in out and "1:4:16" in out and "NVIDIA A10G" in out
    code, out, err = run_cli("build", str(tiny_onnx), "--batch", "1:4:16", "--workspace", "256", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["cached"] is True and result["profile"] == "1:4:16" and result["precision"] == "fp32"
    assert result["options"]["workspace_mib"] == 256
    assert fake_trt.record.builds == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--batch", "32:8:1"], "bad batch profile"),
    (["--precision", "int8"], "needs --calib-data"),
    (["--opt-level", "7"], "0..5"),
])
def test_build_cli_bad_flags_exit_2(fake_trt: FakeTensorRT, tiny_onnx: Path, args: list[str], message: str) -> None:
    code, out, err = run_cli("build", str(tiny_onnx), *args)
    assert code == 2 and message in err and "Traceback" not in err
    assert fake_trt.record.builds == 0


def test_build_cli_missing_file(fake_trt: FakeTensorRT, tmp_path: Path) -> None:
    code, _, err = run_cli("build", str(tmp_path / "nope.onnx"))
    assert code == 2 and "no such file" in err


def test_build_cli_verbose_shows_tensorrt_log(install_fake: object, tiny_onnx: Path) -> None:
    fake = install_fake(fail_build="Error Code 2: OutOfMemory")  # type: ignore[operator]
    code, _, err = run_cli("build", str(tiny_onnx), "-v")
    assert code == 2
    assert "[TensorRT ERROR] Error Code 2: OutOfMemory" in err  # TensorRT's own log line, on stderr
    assert "could not build an engine" in err
    assert fake.record.builds == 1


def test_bench_trt_on_the_cpu_device_fails_before_any_engine_is_timed(fake_trt: FakeTensorRT, tiny_onnx: Path) -> None:
    from resdeploy.benchmark import bench
    from resdeploy.errors import ResdeployError

    # ort would be timed first for a minute; the trt runner's device error must come first.
    with pytest.raises(ResdeployError, match="pass --device cuda"):
        bench(str(tiny_onnx), engines=["ort", "trt"], batches=[1], iterations=10_000, duration=60.0)
