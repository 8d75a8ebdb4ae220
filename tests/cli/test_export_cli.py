"""`resdeploy export` end to end in-process: output, --json, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import run_cli

from resdeploy.models.zoo import MODELS


def _one_line_error(code: int, out: str, err: str, match: str) -> None:
    assert code == 2, (out, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and match in lines[0], err


@pytest.mark.slow
def test_export_json_and_table(tmp_path: Path) -> None:
    out = tmp_path / "r20"
    code, stdout, stderr = run_cli("export", "resnet20", "-o", str(out), "--json", "--num-classes", "5")
    assert code == 0, stderr
    result = json.loads(stdout)  # stdout holds only JSON (exporter chatter kept off it)
    assert result["passed"] is True and result["model_path"] == str(out / "model.onnx")
    assert result["manifest"]["outputs"][0]["shape"] == ["batch", 5]
    assert "randomly initialised" in stderr  # said even in --json mode
    assert json.loads((out / "manifest.json").read_text())["parity"]["passed"] is True

    code, stdout, stderr = run_cli("export", "resnet20", "-o", str(out), "--force", "--opset", "17", "--seed", "3")
    assert code == 0, stderr
    assert "Parity: ONNX Runtime (CPU) vs PyTorch FP32" in stdout and "pass" in stdout
    assert "random, seed 3" in stdout
    assert "✓ export onnx" in stderr and "✓ parity" in stderr  # step timings on stderr

    code, stdout, stderr = run_cli("export", "resnet20", "-o", str(tmp_path / "q"), "--quiet", "--opset", "17")
    assert code == 0 and "✓" not in stderr


def test_parity_gate_exit_code_1_keeps_artifact(tmp_path: Path) -> None:
    out = tmp_path / "strict"
    code, stdout, stderr = run_cli("export", "resnet20", "-o", str(out), "--opset", "17", "--json",
                                   "--max-abs-error", "1e-12")
    assert code == 1
    assert json.loads(stdout)["passed"] is False
    assert "parity failed" in stderr and "kept for inspection" in stderr
    assert json.loads((out / "manifest.json").read_text())["parity"]["passed"] is False


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["resnet5O"], "unknown model 'resnet5O' (did you mean"),
        (["resnet20", "--opset", "5"], "unsupported opset 5"),
        (["resnet20", "--input-size", "0"], "--input-size must be a positive integer"),
        (["resnet20", "--input-size", "-8"], "--input-size must be a positive integer"),
        (["resnet20", "--batch", "0"], "--batch takes 'dynamic' or a positive integer"),
        (["resnet20", "--batch", "lots"], "--batch takes 'dynamic' or a positive integer"),
        (["resnet20", "--num-classes", "0"], "--num-classes must be a positive integer"),
        (["resnet20", "--parity-batch", "1"], "parity batch must be an integer >= 2"),
        (["resnet20", "--max-abs-error", "-1"], "--max-abs-error must be >= 0"),
        (["resnet20", "--weights", "missing.pth"], "weights file not found"),
    ],
)
def test_bad_input_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], match: str) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("export", *args, "-o", "out")
    _one_line_error(code, out, err, match)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_bad_files_and_outputs(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    code, out, err = run_cli("export", "resnet20", "--weights", str(junk), "-o", str(tmp_path / "o1"))
    _one_line_error(code, out, err, "cannot read")
    wrong = tmp_path / "r56.pth"
    torch.save(MODELS["resnet56"](10).state_dict(), wrong)
    code, out, err = run_cli("export", "resnet20", "--weights", str(wrong), "-o", str(tmp_path / "o2"))
    _one_line_error(code, out, err, "do not fit resnet20")
    (tmp_path / "file").write_text("x")
    code, out, err = run_cli("export", "resnet20", "-o", str(tmp_path / "file" / "sub"))
    _one_line_error(code, out, err, "cannot write to")
    (tmp_path / "exists").mkdir()
    code, out, err = run_cli("export", "resnet20", "-o", str(tmp_path / "exists"))
    _one_line_error(code, out, err, "already exists; pass --force")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists", "file", "junk.pth", "r56.pth"]
    assert list((tmp_path / "exists").iterdir()) == []


def test_unknown_flag_is_a_usage_error() -> None:
    code, out, err = run_cli("export", "resnet20", "--bogus")
    assert code == 2 and "No such option" in err and "Traceback" not in err


def test_default_output_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("export", "resnet20", "--opset", "17", "--quiet")
    assert code == 0, err
    assert (tmp_path / "artifacts" / "resnet20" / "fp32" / "model.onnx").is_file()


@pytest.mark.parametrize("name", ["missing.pth", "photo.jpg", "folder"])
def test_weights_errors_come_before_any_progress_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      name: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8")
    (tmp_path / "folder").mkdir()
    code, out, err = run_cli("export", "resnet20", "--weights", name, "-o", "out")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:"), err  # no progress line first
    assert not (tmp_path / "out").exists()


def test_progress_line_prints_the_weights_path_as_typed(tmp_path: Path) -> None:
    # "(weights w [v2].pth)" was printed "(weights w .pth)": rich read "[v2]" as markup.
    weights = tmp_path / "w [v2].pth"
    torch.save(MODELS["resnet20"](10).state_dict(), weights)
    code, out, err = run_cli("export", "resnet20", "--weights", str(weights), "--num-classes", "5",
                             "-o", str(tmp_path / "out"))  # misfit: fails after the first progress line
    _one_line_error(code, out, err, "do not fit resnet20")
    assert "(weights w [v2].pth)" in err.split("error:")[0]
