"""`resdeploy quantize` in-process: output layout, --json, --ranges, exit codes, one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

SIZE = 16


def _one_line_error(code: int, out: str, err: str, match: str) -> None:
    assert code == 2, (out, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and match in " ".join(err.split()), err


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import resdeploy
    from resdeploy.exporter import ExportConfig

    root = tmp_path_factory.mktemp("qcli")
    rng = np.random.default_rng(0)
    (root / "imgs" / "nested").mkdir(parents=True)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(root / "imgs" / "nested" / f"{i}.jpg")
    fp32 = resdeploy.export("resnet20", root / "r20" / "fp32", ExportConfig(input_size=SIZE)).model_path
    return {"root": root, "imgs": root / "imgs", "fp32": Path(fp32)}


def test_int8_trt_json_then_rebuild_from_ranges(setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = run_cli("quantize", str(setup["fp32"].parent), "--precision", "int8", "--target", "trt",
                             "--calib-data", str(setup["imgs"]), "--calib-samples", "4", "--seed", "3", "--json")
    assert code == 0, err
    res = json.loads(out)  # stdout is only JSON, even with ORT's calibrators around
    out_dir = setup["fp32"].parent.parent / "int8-trt"
    assert res["output_dir"] == str(out_dir) and (out_dir / "calibration_ranges.json").exists()
    cal = res["manifest"]["calibration"]
    from resdeploy.precision.int8 import DEFAULT_METHOD

    assert (cal["method"], cal["samples"], cal["seed"], cal["source"]) == (DEFAULT_METHOD["trt"], 4, 3, str(setup["imgs"]))
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["stage"] == "quantize" and manifest["precision"] == "int8" and manifest["target"] == "trt"

    # A narrow $COLUMNS must not cut the table when stdout is not a terminal (a CI log).
    monkeypatch.setenv("COLUMNS", "40")
    code, out, err = run_cli("quantize", str(setup["fp32"]), "--ranges", str(out_dir / "calibration_ranges.json"),
                             "--target", "cpu")
    assert code == 0, err
    assert "saved ranges" in out and (out_dir.parent / "int8-cpu" / "model.onnx").exists()
    assert str(out_dir.parent / "int8-cpu" / "model.onnx") in out and "…" not in out
    assert "exact on" in out and "x86-avx2" in out  # the portable default says where it is right
    code, out, err = run_cli("quantize", str(setup["fp32"]), "--ranges", str(out_dir / "calibration_ranges.json"),
                             "--target", "cpu")
    _one_line_error(code, out, err, "already exists; pass --force")


def test_fp16_table(setup: dict[str, Path]) -> None:
    code, out, err = run_cli("quantize", str(setup["fp32"]), "-p", "fp16", "-o", str(setup["root"] / "f16"))
    assert code == 0, err
    assert "FP16 variant" in out and "inputs/outputs" in out
    assert json.loads((setup["root"] / "f16" / "manifest.json").read_text())["quantization"]["io"] == "fp32"


def test_paths_with_brackets_are_printed_as_typed(setup: dict[str, Path]) -> None:
    # "out [v2]/model.onnx" was printed "out /model.onnx": rich read "[v2]" as markup.
    out_dir = setup["root"] / "runs [v2]" / "fp16 [bold]"
    code, out, err = run_cli("quantize", str(setup["fp32"]), "-p", "fp16", "-o", str(out_dir))
    assert code == 0, err
    assert (out_dir / "model.onnx").exists()
    assert str(out_dir / "model.onnx") in out  # the table's model row
    assert f"wrote {out_dir / 'model.onnx'}" in " ".join(err.split())  # the progress line


@pytest.mark.slow
def test_zoo_name_is_exported_first(tmp_path: Path) -> None:
    out = tmp_path / "resnet20" / "int8-cpu"
    code, stdout, err = run_cli("quantize", "resnet20", "-o", str(out), "--calib-data", "synthetic",
                                "--calib-samples", "4", "--json")
    assert code == 0, err
    assert (tmp_path / "resnet20" / "fp32" / "manifest.json").exists()
    assert json.loads(stdout)["parent_path"] == str(tmp_path / "resnet20" / "fp32" / "model.onnx")
    assert "synthetic data" in err and "meaningless" in err


def test_bad_input_exit_2(setup: dict[str, Path], tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01garbage")
    _one_line_error(*run_cli("quantize", str(junk), "-p", "fp16"), "not a readable ONNX model")
    bare = tmp_path / "bare.onnx"
    shutil.copy(setup["fp32"], bare)
    # No manifest: the graph fixes 16x16, so a different --input-size is a contradiction, not a guess.
    _one_line_error(*run_cli("quantize", str(bare), "--calib-data", str(setup["imgs"]), "--input-size", "24"),
                    "does not match")
    _one_line_error(*run_cli("quantize", str(setup["fp32"]), "--calib-data", str(tmp_path / "none"),
                             "-o", str(tmp_path / "o1")), "data source not found")
    _one_line_error(*run_cli("quantize", str(bare), "--input-size", "16", "--mean", "1,2",
                             "--calib-data", str(setup["imgs"])), "--mean takes three")
    _one_line_error(*run_cli("quantize", "no_such_model_xyz", "--calib-data", "synthetic",
                             "-o", str(tmp_path / "o2")), "no_such_model_xyz")
    _one_line_error(*run_cli("quantize", str(setup["fp32"]), "--method", "magic", "--calib-data", "synthetic"),
                    "unknown calibration method")
    _one_line_error(*run_cli("quantize", str(setup["fp32"]), "--target", "trt", "--reduce-range",
                             "--calib-data", "synthetic", "-o", str(tmp_path / "o3")), "TensorRT takes full INT8")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


def test_input_errors_come_before_graph_work(setup: dict[str, Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # Pre-processing the graph takes seconds on a ResNet-50: a typo must not wait for it.
    from resdeploy.precision import int8

    def never(*_a: object, **_k: object) -> None:
        raise AssertionError("graph work started before the input was checked")

    monkeypatch.setattr(int8, "pre_process", never)
    fp32 = str(setup["fp32"])
    not_json = tmp_path / "ranges.json"
    not_json.write_bytes(b"\xff\xd8 a jpeg")
    ro = tmp_path / "ro"
    ro.write_text("a file, not a directory")
    _one_line_error(*run_cli("quantize", fp32, "--calib-data", str(tmp_path / "none"), "-o", str(tmp_path / "a")),
                    "data source not found")
    _one_line_error(*run_cli("quantize", fp32, "--ranges", str(not_json), "-o", str(tmp_path / "b")),
                    "cannot read")
    _one_line_error(*run_cli("quantize", fp32, "--calib-data", "synthetic", "-o", str(ro / "out")), "cannot write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ranges.json", "ro"]


def test_synthetic_n_is_not_called_too_few(setup: dict[str, Path], tmp_path: Path) -> None:
    # synthetic:4 asks for 4 samples; only the folder/array case can fall short of --calib-samples.
    code, _, err = run_cli("quantize", str(setup["fp32"]), "--calib-data", "synthetic:4", "-o", str(tmp_path / "q"))
    assert code == 0, err
    assert "usable calibration samples" not in err and "synthetic" in err
