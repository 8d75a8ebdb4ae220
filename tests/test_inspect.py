"""`inspect` on real exported and quantized graphs, a plan without TensorRT, and bad paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli


def test_plain_onnx_without_manifest(tiny_onnx: tuple[Path, object]) -> None:
    from resdeploy.inspect import inspect

    path, _ = tiny_onnx
    r = inspect(path, check_engines=False)
    assert r.kind == "onnx" and r.precision == "fp32" and r.qdq is None
    assert r.inputs[0].shape == ["batch", 3, 32, 32] and r.inputs[0].layout == "NCHW"
    assert r.outputs[0].shape[-1] == 10 and r.op_counts["Conv"] == 2
    assert r.file_bytes == path.stat().st_size and r.lineage == []


def test_plan_without_tensorrt_says_what_cannot_be_read(tmp_path: Path) -> None:
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"\0" * 64)
    code, out, err = run_cli("inspect", str(plan), "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["kind"] == "tensorrt-plan" and r["file_bytes"] == 64
    assert any("model.plan.json" in u for u in r["unreadable"])
    assert r["engines"][0]["engine"] == "trt" and r["engines"][0]["can_run"] is False


@pytest.mark.parametrize("name", ["missing.onnx", "weights.txt", "garbage.onnx"])
def test_bad_paths_are_one_line_exit_2(tmp_path: Path, name: str) -> None:
    p = tmp_path / name
    if name != "missing.onnx":
        p.write_text("not a model")
    code, _, err = run_cli("inspect", str(p))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import resdeploy
    from resdeploy.exporter import ExportConfig

    root = tmp_path_factory.mktemp("inspect")
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(images / f"{i}.png")
    fp32 = resdeploy.export("resnet20", root / "resnet20" / "fp32", ExportConfig(input_size=8))
    int8 = resdeploy.quantize(fp32.model_path, precision="int8", target="trt", calib_data=str(images), calib_samples=8)
    return {"fp32": Path(fp32.model_path), "int8": Path(int8.model_path)}


@pytest.mark.slow
def test_int8_coverage_lineage_and_engines(variants: dict[str, Path]) -> None:
    from resdeploy.inspect import inspect

    r = inspect(variants["int8"].parent)  # the artifact folder
    assert r.precision == "int8" and r.qdq is not None
    assert r.qdq.ops["Conv"]["quantized"] == r.qdq.ops["Conv"]["total"] == r.op_counts["Conv"]
    assert r.qdq.targets["trt"]["complete"] and r.qdq.targets["cpu"]["complete"]
    assert [e["stage"] for e in r.lineage] == ["quantize", "export"]
    assert r.lineage[0]["target"] == "trt" and r.lineage[1]["parity_passed"] is True
    engines = {e["engine"]: e for e in r.engines}
    assert engines["ort"]["can_run"] and engines["trt"]["can_run"] is False


@pytest.mark.slow
def test_a_residual_add_without_qdq_fails_the_trt_target_only(variants: dict[str, Path], tmp_path: Path) -> None:
    import onnx

    from resdeploy.inspect import qdq_coverage

    model = onnx.load(str(variants["int8"]))
    producers = {o: n for n in model.graph.node for o in n.output}
    add = next(n for n in model.graph.node if n.op_type == "Add"
               and all(i in producers and producers[i].op_type == "DequantizeLinear" for i in n.input))
    dq = producers[add.input[1]]
    add.input[1] = producers[dq.input[0]].input[0]  # bypass the Q/DQ pair: the float tensor again
    cov = qdq_coverage(model)
    assert cov.residual_adds["one"] == 1
    assert cov.targets["cpu"]["complete"] and not cov.targets["trt"]["complete"]
    assert "residual Add" in cov.targets["trt"]["missing"][0]
