"""`resdeploy validate` in-process: table, --json, --junit, exit 0 / 1 / 2."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

SIZE = 16


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import resdeploy
    from resdeploy.exporter import ExportConfig

    root = tmp_path_factory.mktemp("vcli")
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / "data" / cls).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(root / "data" / cls / f"{i}.png")
    fp32 = resdeploy.export("resnet20", root / "r20" / "fp32", ExportConfig(input_size=SIZE)).model_path
    fp16 = resdeploy.quantize(fp32, precision="fp16").model_path
    # A random-init net scores 0% on arbitrary labels, and a gate cannot pass on that: map each
    # folder to the class the FP32 model gives its first image, so the reference gets some right.
    from resdeploy.artifacts import read_manifest
    from resdeploy.data import open_data
    from resdeploy.precision import preprocess_from
    from resdeploy.runners import RunnerConfig, create_runner

    spec = preprocess_from(read_manifest(fp32))
    with create_runner(RunnerConfig(engine="ort", model=str(fp32))) as runner:
        labels = {cls: int(runner.infer(open_data(root / "data" / cls / "0.png", spec).load()[0]).argmax())
                  for cls in ("cat", "dog")}
    (root / "labels.json").write_text(json.dumps(labels))
    return {"root": root, "data": root / "data", "fp32": Path(fp32), "fp16": Path(fp16),
            "labels": root / "labels.json"}


def test_pass_table_and_junit(setup: dict[str, Path]) -> None:
    junit = setup["root"] / "reports" / "v.xml"
    code, out, err = run_cli("validate", str(setup["fp16"].parent), "--data", str(setup["data"]), "--junit", str(junit),
                             "--labels", str(setup["labels"]))
    assert code == 0, err
    assert "top-1 accuracy" in out and "top1_ratio" in out and "PASSED" in out
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("failures") == "0" and suite.get("tests") == "1"


def test_failing_gate_exit_1_with_json_and_junit(setup: dict[str, Path]) -> None:
    junit = setup["root"] / "fail.xml"
    code, out, err = run_cli("validate", str(setup["fp16"]), "--data", str(setup["data"]), "--max-abs-error", "0",
                             "--json", "--junit", str(junit))
    assert code == 1, err
    res = json.loads(out)
    assert res["passed"] is False and res["gates"][0]["name"] == "max_abs_error"
    assert res["accuracy"]["reference"]["top1"] == pytest.approx(res["accuracy"]["reference"]["top1"])
    assert ET.parse(junit).getroot().find("testsuite").get("failures") == "1"
    assert "validation failed: max_abs_error" in err and "Traceback" not in err


def test_torch_reference(setup: dict[str, Path]) -> None:
    code, out, err = run_cli("validate", str(setup["fp32"]), "--reference", "torch", "--data", str(setup["data"]),
                             "--min-agreement", "1.0", "--max-abs-error", "1e-3", "--json")
    assert code == 0, err
    assert json.loads(out)["reference"]["engine"] == "torch"


def test_bad_input_exit_2(setup: dict[str, Path], tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"x{i}" for i in range(20)) + "\ncat\ndog\n")  # cat=20, dog=21: beyond 10 classes
    junit = tmp_path / "never.xml"
    code, out, err = run_cli("validate", str(setup["fp16"]), "--data", str(setup["data"]), "--labels", str(labels),
                             "--junit", str(junit))
    assert code == 2 and "Traceback" not in err
    assert "labels do not match the model" in " ".join(err.split())
    assert not junit.exists()  # nothing half-written on bad input
    code, out, err = run_cli("validate", str(setup["fp16"]), "--data", str(tmp_path / "missing"))
    assert code == 2 and "data source not found" in err
    code, out, err = run_cli("validate", str(setup["fp16"]))
    assert code == 2 and "--data" in err


def test_junit_path_that_cannot_be_written_is_refused_before_the_run(setup: dict[str, Path], tmp_path: Path) -> None:
    code, out, err = run_cli("validate", str(setup["fp16"]), "--data", str(setup["data"]), "--junit", str(tmp_path))
    assert code == 2 and "Traceback" not in err and "is a directory" in err and out == ""
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary sibling left behind
