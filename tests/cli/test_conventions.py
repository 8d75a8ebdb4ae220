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
