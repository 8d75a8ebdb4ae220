"""`resdeploy layers` on a real FP16 variant: float16 nodes compared with FP32, cumulative and alone, ranked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper
from PIL import Image

from resdeploy.artifacts import sha256_file
from resdeploy.precision import quantize
from resdeploy.precision.layers import analyze


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fp16-images")
    rng = np.random.default_rng(5)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


def test_fp16_report_measures_float16_nodes_and_ranks_a_damaged_one_first(tiny_artifact: Path, images: Path,
                                                                          tmp_path: Path) -> None:
    res = quantize(tiny_artifact, precision="fp16", output=str(tmp_path / "fp16"))
    report = analyze(res.output_dir, str(images), samples=8)
    assert report.precision == "fp16" and report.samples == 8
    ops = {r.op_type for r in report.layers}
    assert {"Conv", "Gemm"} <= ops and "Cast" not in ops and "Relu" not in ops
    # Plain FP16 is close to FP32 everywhere, alone and cumulative, but not equal to it (inf where ONNX
    # Runtime's CPU provider has no float16 kernel and runs the op in float, e.g. GlobalAveragePool).
    assert all(r.isolated_sqnr_db > 40 and 30 < r.sqnr_db < 200 for r in report.layers), report.to_dict()
    assert any(r.isolated_sqnr_db < 200 for r in report.layers if r.op_type == "Conv")

    # Damage one float16 weight of the variant (the second Conv): it must rank first, alone.
    model = onnx.load(str(res.model_path))
    conv2 = [n for n in model.graph.node if n.op_type == "Conv"][1]
    init = next(i for i in model.graph.initializer if i.name == conv2.input[1])
    assert init.data_type == TensorProto.FLOAT16
    w = numpy_helper.to_array(init).copy()
    w[0] = -w[0]  # one output channel flipped
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    onnx.save(model, str(res.model_path))
    manifest = json.loads((res.output_dir / "manifest.json").read_text())  # the file changed on purpose
    manifest["artifact"].update(sha256=sha256_file(res.model_path), bytes=res.model_path.stat().st_size)
    (res.output_dir / "manifest.json").write_text(json.dumps(manifest))
    damaged = analyze(res.output_dir, str(images), samples=8)
    assert damaged.layers[0].node == conv2.name
    assert damaged.layers[0].isolated_sqnr_db + 20 < damaged.layers[1].isolated_sqnr_db


def test_fp16_layers_cli_table_and_json(tiny_artifact: Path, images: Path, tmp_path: Path) -> None:
    from conftest import run_cli

    out = tmp_path / "fp16"
    quantize(tiny_artifact, precision="fp16", output=str(out))
    code, stdout, err = run_cli("layers", str(out), "--data", str(images), "--samples", "4", "--json", "-q")
    assert code == 0, err
    data = json.loads(stdout)
    assert data["precision"] == "fp16" and data["layers"] and data["layers"][0]["rank"] == 1
    code, stdout, err = run_cli("layers", str(out), "--data", str(images), "--samples", "4", "-q")
    assert code == 0 and "FP16 error per layer" in stdout, err
