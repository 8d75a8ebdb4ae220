"""Issue 12's targets on real trained weights: the digits ResNet-20 with a planted outlier layer.

One module-scoped model (trained as tests/test_accuracy_digits.py does, outlier planted
by benchmarks/planted_case.py): FP32 outputs unchanged, INT8 from the raw quantizer
(``--method minmax --no-equalize --no-bias-correction``; equalization alone undoes the
planted scale) loses more than 5 points with ``--target trt``. The report must rank the planted layer first; the budget search
must reach a drop <= 0.5 point keeping <= 3 layers in FP32 within <= 8 validations; a
model that already passes keeps nothing and runs one validation.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import resdeploy
from resdeploy.precision import Budget, quantize

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
PLANTED = "layer1.0.conv2"  # reads the outlier channel


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import planted_case

    return planted_case.build(tmp_path_factory.mktemp("planted"))


def _minmax(case: dict[str, Path], which: str, target: str, out: Path, budget: Budget | None = None):  # noqa: ANN202
    """The raw quantizer, which the planted damage needs: global min/max, no equalization, no bias correction."""
    return quantize(case[which] / "model.onnx", precision="int8", target=target, method="minmax", equalize=False,
                    bias_correction=False, calib_data=str(case["train"]), calib_samples=256, output=str(out),
                    budget=budget)


@pytest.mark.parametrize("target", ["trt", "cpu"])
def test_report_ranks_the_planted_layer_first_and_budget_fixes_it(case: dict[str, Path], target: str,
                                                                  tmp_path: Path) -> None:
    from resdeploy.precision.layers import analyze

    plain = _minmax(case, "planted", target, tmp_path / "int8")
    report = analyze(plain.output_dir, str(case["train"]), samples=32)
    assert report.layers[0].module == PLANTED, [(r.module, r.isolated_sqnr_db) for r in report.layers[:3]]
    assert report.layers[0].isolated_sqnr_db + 10 < report.layers[1].isolated_sqnr_db

    res = _minmax(case, "planted", target, tmp_path / "mixed",
                  Budget(val_data=str(case["val"]), max_top1_drop=0.5))
    b = res.manifest["quantization"]["accuracy_budget"]
    assert b["trials"][0]["step"] == "plain" and b["met"] and b["top1_drop_points"] <= 0.5
    if target == "cpu":
        # Measured after the portable default landed (7-bit weights, u8 activations, the same on
        # every CPU): plain --target cpu already keeps the planted model within 0.5 point, so the
        # budget is the one-validation no-op. --target trt (s8 activations) shows the damage.
        assert b["trials"][0]["top1_drop_points"] <= 0.5 and b["kept_fp32"] == [] and b["full_validations"] == 1
    else:
        assert b["trials"][0]["top1_drop_points"] > 5.0  # the planted damage
        assert 1 <= len(b["kept_fp32"]) <= 3 and b["full_validations"] <= 8
        assert PLANTED in [k["module"] for k in b["kept_fp32"]]
        assert b["speed_cost"]["int8_p50_ms"] > 0 and b["speed_cost"]["mixed_p50_ms"] > 0
    # The written variant is what was validated: validate agrees on its own.
    again = resdeploy.validate(res.model_path, data=str(case["val"]), max_top1_drop=0.5)
    assert again.passed and again.top1_drop_points == pytest.approx(b["top1_drop_points"], abs=1e-3)


def test_model_that_passes_keeps_nothing_after_one_validation(case: dict[str, Path], tmp_path: Path) -> None:
    plain = _minmax(case, "plain", "trt", tmp_path / "plain")
    res = _minmax(case, "plain", "trt", tmp_path / "budget", Budget(val_data=str(case["val"]), max_top1_drop=1.0))
    b = res.manifest["quantization"]["accuracy_budget"]
    assert b["met"] and b["kept_fp32"] == [] and b["full_validations"] == 1 and b["speed_cost"] is None
    assert res.manifest["artifact"]["sha256"] == plain.manifest["artifact"]["sha256"]  # the very same INT8 graph


def test_unmet_budget_keeps_the_best_variant_and_exits_1(case: dict[str, Path], tmp_path: Path) -> None:
    from conftest import run_cli

    out = tmp_path / "unmet"
    code, _, err = run_cli("quantize", str(case["planted"]), "--target", "trt", "--method", "minmax",
                           "--no-equalize", "--no-bias-correction",
                           "--calib-data", str(case["train"]), "--calib-samples", "64", "--val-data", str(case["val"]),
                           "--min-cosine", "1.0", "--max-trials", "2", "-o", str(out), "-q")
    lines = err.strip().splitlines()
    # One error line; on an AVX2-only host it follows quantize's note that ORT cannot judge a --target trt graph.
    assert code == 1 and "accuracy budget not met" in lines[-1], err
    assert all("made for TensorRT" in line for line in lines[:-1]) and len(lines) <= 2, err
    b = json.loads((out / "manifest.json").read_text())["quantization"]["accuracy_budget"]
    assert not b["met"] and b["full_validations"] == 2 and len(b["trials"]) == 2
    # The one kept is the closest trial: the highest worst-case cosine (cosine 1.0 needs no INT8 at all).
    assert b["gates"] == max((t["gates"] for t in b["trials"]), key=lambda g: g[0]["value"])


@pytest.mark.parametrize("target", ["trt", "cpu"])
def test_default_int8_survives_the_planted_outlier(case: dict[str, Path], target: str, tmp_path: Path) -> None:
    """Item 0: with the defaults (equalization, bias correction) plain INT8 keeps the planted model, no budget.

    NNCF's plain ``nncf.quantize`` reached a 0.84-point drop on this recipe
    (benchmarks/calibration_estimators.py, docs/precision.md); the raw quantizer above loses > 5.
    """
    from resdeploy.precision.layers import analyze

    res = quantize(case["planted"] / "model.onnx", precision="int8", target=target, calib_data=str(case["train"]),
                   calib_samples=256, output=str(tmp_path / "int8"))
    q = res.manifest["quantization"]
    assert q["equalization"]["applied"] and q["equalization"]["max_channel_scale"] > 10  # the planted x100 undone
    assert q["bias_correction"]["applied"] and q["bias_correction"]["layers"] > 0
    r = resdeploy.validate(res.model_path, data=str(case["val"]))
    assert r.top1_drop_points is not None and r.top1_drop_points <= 0.84
    # `layers` compares against the same equalized FP32 graph: no layer looks broken.
    report = analyze(res.output_dir, str(case["train"]), samples=32)
    assert min(row.sqnr_db for row in report.layers) > 10, [(x.module, x.sqnr_db) for x in report.layers[:3]]
