"""`resdeploy models`: the zoo table and JSON, computed from the models."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli


def test_models_json_filter_and_input_size() -> None:
    code, out, err = run_cli("models", "resnet5*", "--json", "--input-size", "112")
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)["models"]}
    assert set(rows) == {"resnet50", "resnet56"}
    assert rows["resnet50"]["params"] == 25_557_032 and rows["resnet50"]["input_size"] == 112
    assert 1.0 < rows["resnet50"]["gmacs"] < 1.2  # about a quarter of 4.09 at half the side
    assert rows["resnet56"]["family"] == "cifar"


@pytest.mark.slow
def test_models_table_lists_the_zoo() -> None:
    code, out, err = run_cli("models")
    assert code == 0, err
    for text in ("resnet18", "11,689,512", "resnet50", "25,557,032", "wide_resnet101_2", "resnext101_32x8d",
                 "resnet110", "1,727,962", "126,886,696", "GMACs", "GFLOPs"):
        assert text in out, text


def test_models_bad_input() -> None:
    code, out, err = run_cli("models", "vgg*")
    assert code == 2 and "no model matches 'vgg*'" in err and "Traceback" not in err
    code, out, err = run_cli("models", "--input-size", "0")
    assert code == 2 and "--input-size must be a positive integer" in err
