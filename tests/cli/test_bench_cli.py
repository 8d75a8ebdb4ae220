"""`resdeploy bench` from the command line: table, JSON, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_cli

FAST = ["--iterations", "5", "--duration", "0", "--warmup", "1"]


def test_bench_prints_table_and_writes_json(tiny_onnx, tmp_path: Path) -> None:  # noqa: ANN001
    path, _ = tiny_onnx
    out = tmp_path / "res" / "result.json"
    code, stdout, stderr = run_cli("bench", str(path), "--engine", "ort,openvino", "--batch", "1,2", *FAST,
                                   "-o", str(out), "--threads", "1")
    assert code == 0, stderr
    for word in ("engine", "p50", "p99", "img/s", "speed-up", "ort", "openvino", "1.00×"):
        assert word in stdout
    data = json.loads(out.read_text())
    assert data["schema"] == "resdeploy.bench/1"
    assert [(r["engine"], r["batch"]) for r in data["runs"]] == [("ort", 1), ("ort", 2), ("openvino", 1),
                                                                ("openvino", 2)]
    assert data["config"]["threads"] == 1 and len(data["runs"][0]["latencies_ms"]) == 5


def test_bench_json_on_stdout_is_parseable(tiny_onnx) -> None:  # noqa: ANN001
    path, _ = tiny_onnx
    code, stdout, _ = run_cli("bench", str(path), "--batch", "1", *FAST, "--json")
    assert code == 0
    data = json.loads(stdout)
    assert data["runs"][0]["engine"] == "ort" and data["runs"][0]["stats"]["count"] == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch", "0"], "positive integers"),
        (["--batch", "1,x"], "positive integers"),
        (["--iterations", "0", "--duration", "0"], "zero iterations and zero duration"),
        (["--engine", "trt"], "not available"),
        (["--engine", "ort", "--precision", "int8"], "precision stored in the ONNX graph"),
        (["--engine", "torch", "--precision", "fp16"], "CUDA only"),
        (["--engine", "mxnet"], "unknown engine"),
        (["--scenario", "server"], "--qps"),
        (["--cpus", "a,b"], "--cpus"),
        (["--batch", "1,,8"], "positive integers"),  # a malformed list, not silently [1, 8]
        (["--batch", "8,"], "positive integers"),
        (["--cpus", "0,,1"], "--cpus"),
        (["--cpus", "0,0"], "twice"),  # pins one CPU: must not be labelled a 2-core emulation
        (["--batch", "1,1"], "twice"),
        (["--engine", "ort", "--precision", "fp8"], "unknown precision 'fp8'"),
        (["--engine", "torch", "--compile-mode", "fastest"], "unknown torch.compile mode 'fastest'"),
        (["--engine", "torch", "--compile-mode", "reduce-overhead"], "need --device cuda"),
        (["--engine", "ort", "--compile-mode", "default"], "--compile is read by torch only"),
        (["--seed", "-3"], "--seed must be a non-negative integer"),
        # the graph fixes [batch, 3, 32, 32]: a flag contradicting it was silently ignored
        (["--input-size", "24"], "--input-size 24,24 does not match"),
        (["--layout", "nhwc"], "--layout nhwc does not match"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tiny_onnx, tmp_path: Path, args, message) -> None:  # noqa: ANN001
    path, _ = tiny_onnx
    out = tmp_path / "result.json"
    given = {a for a in args if a.startswith("--")}  # a flag given twice is refused: the case's own value wins
    fast = [v for i, v in enumerate(FAST) if v not in given and (i == 0 or FAST[i - 1] not in given)]
    code, stdout, stderr = run_cli("bench", str(path), *fast, *args, "-o", str(out))
    assert code == 2, (stdout, stderr)
    assert message in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing half-written


def test_unreadable_model_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x00not onnx")
    code, _, stderr = run_cli("bench", str(bad), *FAST)
    assert code == 2 and "cannot" in stderr and "Traceback" not in stderr


def test_emulated_run_is_labelled_in_the_bench_table(tiny_onnx) -> None:  # noqa: ANN001
    path, _ = tiny_onnx
    cpu = min(os.sched_getaffinity(0))
    code, stdout, stderr = run_cli("bench", str(path), "--batch", "1", *FAST, "--cpus", str(cpu))
    assert code == 0, stderr
    title, *body = stdout.splitlines()
    # Not "on <CPU> (2 cpus)": the run used one pinned CPU, and its row carries the dagger.
    assert "pinned to 1 cpu(s) †" in title
    assert any(line.split()[:2] == ["ort", "†"] for line in body)


def test_error_messages_with_brackets_are_text_not_markup(tmp_path: Path) -> None:
    code, _, stderr = run_cli("bench", str(tmp_path / "x[/]y.onnx"), *FAST)
    assert code == 2 and "Traceback" not in stderr and "x[/]y.onnx" in stderr
