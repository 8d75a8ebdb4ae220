"""The conventions peer tools' users expect: --version, help in words with examples, repeated flags."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from resdeploy.cli import COMMAND_MODULES
from tests.conftest import run_cli


def test_version() -> None:
    from resdeploy import __version__

    code, out, _ = run_cli("--version")
    assert code == 0 and out.strip() == f"resdeploy {__version__}"


@pytest.mark.parametrize("command", COMMAND_MODULES)
def test_help_is_in_words_and_has_an_example(command: str) -> None:
    code, out, _ = run_cli(command, "--help")
    assert code == 0
    assert not re.search(r"<(bool|str|int|float|list\[[a-z]+\])>", out), out
    assert "Example:" in out


def test_a_counter_says_it_repeats() -> None:
    _, out, _ = run_cli("build", "--help")
    assert "(repeat: -vv)" in out


def test_list_flags_accumulate_when_repeated() -> None:
    import typer

    from resdeploy.cli import app
    from resdeploy.cli.conventions import apply, check_arguments

    group = apply(typer.main.get_command(app))
    args = check_arguments(group, ["bench", "m", "--engine", "ort", "-e", "openvino", "--batch=1", "-b", "8"])
    assert args == ["bench", "m", "--engine", "ort,openvino", "--batch", "1,8"]


@pytest.mark.parametrize("args, words", [
    (["bench", "m", "--duration", "1", "--duration", "2"], "--duration is given more than once"),
    (["validate", "m", "--json", "--json"], "--json is given more than once"),
    (["quantize", "m", "-p", "fp16", "--calib-data", "x"], "--calib-data does nothing with --precision fp16"),
    (["quantize", "m", "--precision=fp16", "--target", "trt", "--method", "entropy"],
     "--target, --method do nothing with --precision fp16"),
])
def test_repeated_or_ignored_flags_are_refused(args: list[str], words: str) -> None:
    code, _, err = run_cli(*args)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1


def test_int8_keeps_its_calibration_flags() -> None:
    import typer

    from resdeploy.cli import app
    from resdeploy.cli.conventions import apply, check_arguments

    group = apply(typer.main.get_command(app))
    args = ["quantize", "m", "-p", "int8", "--calib-data", "x", "--exclude", "a", "--exclude", "b"]
    assert check_arguments(group, args) == ["quantize", "m", "--precision", "int8", "--calib-data", "x",
                                            "--exclude", "a", "--exclude", "b"]


def test_server_scenario_with_a_missed_slo_exits_1(tiny_onnx: tuple[Path, object], tmp_path: Path) -> None:
    model, _ = tiny_onnx
    out = tmp_path / "server.json"
    code, _, err = run_cli("bench", str(model), "--scenario", "server", "--qps", "20", "--slo-ms", "0.000001",
                           "--duration", "0.3", "--iterations", "3", "--warmup", "1", "-o", str(out), "-q")
    assert code == 1, err
    assert "missed the p99 SLO" in err
    run = json.loads(out.read_text())["runs"][0]
    assert run["scenario_summary"]["slo_met"] is False  # the result is written before the exit


def test_bench_progress_says_iterations_done_and_time_left() -> None:
    from resdeploy.benchmark import loop_progress

    shown: list[str] = []
    show = loop_progress(shown.append, iterations=100, seconds=5.0)
    show(10, 1.0)  # the duration still needs 4 s, the iterations 9 s at this rate
    show(100, 6.0)
    assert shown == ["10 iterations, 9.0 s left", "100 iterations, 0.0 s left"]


def test_bench_times_real_data_and_adds_a_percentile(tiny_onnx: tuple[Path, object], tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    model, _ = tiny_onnx
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    code, out, err = run_cli("bench", str(model), "--data", str(tmp_path), "--input-size", "32", "--batch", "2",
                             "--percentile", "99.9", "--duration", "0", "--iterations", "30", "--warmup", "1",
                             "--json")
    assert code == 0, err
    run = json.loads(out)["runs"][0]
    assert run["scenario_summary"]["inputs"] == {"source": str(tmp_path), "samples": 3, "skipped": 0,
                                                 "reused": True}
    s = run["stats"]
    assert s["p99_ms"] <= s["extra_percentiles"]["p99.9"] <= s["max_ms"]
    code, _, err = run_cli("bench", str(model), "--data", str(tmp_path / "missing"), "--input-size", "32")
    assert code == 2 and "not found" in err


@pytest.mark.parametrize("terminal, json_out, quiet, silent", [
    (True, True, False, False),   # --json at a terminal: progress stays on stderr
    (False, True, False, True),   # --json in a script: stdout is the JSON, stderr quiet too
    (True, False, True, True),    # -q always wins
    (False, False, False, False),
])
def test_json_keeps_progress_on_a_terminal(monkeypatch: pytest.MonkeyPatch, terminal: bool, json_out: bool,
                                           quiet: bool, silent: bool) -> None:
    import io

    from rich.console import Console

    import resdeploy.console as console

    monkeypatch.setattr(console, "stderr", Console(file=io.StringIO(), force_terminal=terminal))
    assert console.Reporter.for_command(quiet, json_out).quiet is silent
