"""cli/common.py: the flag parsers and the preprocessing flags quantize and validate share."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

from resdeploy.cli.common import finite_float, parse_channel_values, positive_int
from resdeploy.errors import ResdeployError


def test_parse_channel_values() -> None:
    assert parse_channel_values("0.485, 0.456,0.406", "--mean") == (0.485, 0.456, 0.406)
    assert parse_channel_values("0.1307", "--mean") == (0.1307,)  # a grayscale model's, or every channel's
    assert parse_channel_values(None, "--mean") is None
    for bad in ("1,,2,3", "1,2", "1,2,3,4", "a,b,c", "nan,0,0", "1,inf,1", "", "nan"):
        with pytest.raises(ResdeployError, match="--std takes three comma-separated numbers"):
            parse_channel_values(bad, "--std")


def test_finite_float_and_positive_int() -> None:
    assert finite_float("2.5") == 2.5 and finite_float(0.0) == 0.0
    for bad in ("nan", "inf", "-inf", "abc"):
        with pytest.raises(ValueError):
            finite_float(bad)
    assert positive_int("3") == 3
    for bad in ("0", "-1", "1.5", "x"):
        with pytest.raises(ValueError, match="positive integer"):
            positive_int(bad)


def test_preprocessing_flags_are_declared_once_for_both_commands() -> None:
    import typer

    from resdeploy.cli import app

    group = typer.main.get_command(app)
    declared = {}
    for command in ("quantize", "validate"):
        params = group.commands[command].params  # type: ignore[attr-defined]
        declared[command] = {tuple(p.opts): p.help for p in params
                             if p.name in ("input_size", "resize", "mean", "std")}
    assert list(declared["quantize"]) == [("--input-size",), ("--resize",), ("--mean",), ("--std",)]
    assert declared["quantize"] == declared["validate"]


@pytest.fixture
def bare(tiny_onnx, tmp_path: Path) -> dict[str, Path]:  # noqa: ANN001
    """A model.onnx with no manifest (so the flags are needed) and a labelled folder of real PNGs."""
    import numpy as np
    from PIL import Image

    model = tmp_path / "bare" / "model.onnx"
    model.parent.mkdir()
    shutil.copy(tiny_onnx[0], model)
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "data" / cls / f"{i}.png")
    return {"model": model, "data": tmp_path / "data", "root": tmp_path}


FLAGS = ["--input-size", "32", "--resize", "36", "--mean", "0.1,0.2,0.3", "--std", "0.5,0.6,0.7"]


def test_quantize_receives_the_preprocessing_flags(bare: dict[str, Path]) -> None:
    out_dir = bare["root"] / "fp16"
    code, out, err = run_cli("quantize", str(bare["model"]), "-p", "fp16", "-o", str(out_dir), *FLAGS, "--json")
    assert code == 0, err
    pre = json.loads(out)["manifest"]["preprocess"]
    assert (pre["crop"], pre["resize"], pre["mean"], pre["std"]) == (32, 36, [0.1, 0.2, 0.3], [0.5, 0.6, 0.7])


def test_validate_receives_the_preprocessing_flags(bare: dict[str, Path]) -> None:
    args = ["validate", str(bare["model"]), "--reference", str(bare["model"]), "--data", str(bare["data"]), "-q"]
    code, _, err = run_cli(*args, "--input-size", "24")  # the graph fixes 32x32: a contradiction is one line
    assert code == 2 and "does not match" in " ".join(err.split())
    code, out, err = run_cli(*args, *FLAGS, "--json", "--min-agreement", "1")
    assert code == 0, err
    assert json.loads(out)["samples"] == 6
    code, out, err = run_cli(*args, "--input-size", "32", "--mean", "1,2")  # parsed by the shared helper
    assert code == 2 and out == "" and err.strip() == ("error: --mean takes three comma-separated numbers (R,G,B), "
                                                     "or one for every channel, got '1,2'")
