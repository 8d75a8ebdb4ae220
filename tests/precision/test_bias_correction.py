"""Bias correction on a real quantized graph: INT8 output means move to FP32's, for float and INT32 biases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from resdeploy.precision import quantize


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bc-images")
    rng = np.random.default_rng(3)
    for i in range(24):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


def _logits(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("target", ["trt", "cpu"])  # float biases; INT32 biases behind a DequantizeLinear
def test_bias_correction_moves_int8_means_to_fp32(tiny_artifact: Path, images: Path, tmp_path: Path,
                                                  target: str) -> None:
    from resdeploy.data import open_data
    from resdeploy.preprocess import PreprocessSpec

    common = dict(precision="int8", target=target, method="minmax", calib_data=str(images), calib_samples=24,
                  equalize=False)
    raw = quantize(tiny_artifact, output=str(tmp_path / "raw"), bias_correction=False, **common)
    fixed = quantize(tiny_artifact, output=str(tmp_path / "bc"), **common)
    bc = fixed.manifest["quantization"]["bias_correction"]
    assert raw.manifest["quantization"]["bias_correction"] == {"applied": False}
    assert bc["applied"] and bc["layers"] == 3 and bc["skipped"] == 0 and bc["max_shift"] > 0

    x, _ = open_data(images, PreprocessSpec.from_dict(fixed.manifest["preprocess"])).load()
    ref = _logits(tiny_artifact / "model.onnx", x).mean(axis=0)
    err_raw = np.abs(_logits(raw.model_path, x).mean(axis=0) - ref).mean()
    err_bc = np.abs(_logits(fixed.model_path, x).mean(axis=0) - ref).mean()
    assert err_bc < 0.5 * err_raw, (err_raw, err_bc)

    # Saved ranges carry the corrections: the same model again without the images.
    again = quantize(tiny_artifact, precision="int8", target=target, ranges=str(fixed.ranges_path),
                     output=str(tmp_path / "again"), equalize=False)
    assert again.manifest["artifact"]["sha256"] == fixed.manifest["artifact"]["sha256"]


def test_flags_turn_each_technique_off_and_the_manifest_says_so(tiny_artifact: Path, images: Path,
                                                                tmp_path: Path) -> None:
    from conftest import run_cli

    out = tmp_path / "off"
    code, _, err = run_cli("quantize", str(tiny_artifact), "--calib-data", str(images), "--calib-samples", "8",
                           "--no-equalize", "--no-bias-correction", "-o", str(out), "-q")
    assert code == 0, err
    m = json.loads((out / "manifest.json").read_text())
    assert m["quantization"]["equalization"] == {"applied": False}
    assert m["quantization"]["bias_correction"] == {"applied": False}
    assert m["settings"]["equalize"] is False and m["settings"]["bias_correction"] is False
    # Ranges calibrated without equalization do not fit an equalized graph: one line, exit 2, nothing written.
    code, _, err = run_cli("quantize", str(tiny_artifact), "--ranges", str(out / "calibration_ranges.json"),
                           "-o", str(tmp_path / "mismatch"), "-q")
    assert code == 2 and "without cross-layer equalization" in err and "--no-equalize" in err, err
    assert not (tmp_path / "mismatch").exists()

    code, _, err = run_cli("quantize", str(tiny_artifact), "--precision", "fp16", "--no-equalize",
                           "-o", str(tmp_path / "fp16"), "-q")
    assert code == 2 and "apply to --precision int8 only" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "fp16").exists()

    on = tmp_path / "on"
    code, _, err = run_cli("quantize", str(tiny_artifact), "--calib-data", str(images), "--calib-samples", "8",
                           "-o", str(on), "-q")
    assert code == 0, err
    q = json.loads((on / "manifest.json").read_text())["quantization"]
    assert q["equalization"]["applied"] and q["equalization"]["pairs"] == 1
    assert q["bias_correction"]["applied"] and q["bias_correction"]["layers"] == 3
    # Rebuilt from its saved ranges: the corrections come from the file, and the table says so.
    code, stdout, err = run_cli("quantize", str(tiny_artifact), "--ranges", str(on / "calibration_ranges.json"),
                                "-o", str(tmp_path / "rebuilt"))
    assert code == 0 and "from the saved ranges" in stdout, err
