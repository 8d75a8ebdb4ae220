"""Mixed precision on a real exported ResNet-20: Q/DQ removal, the trial search, the estimator, bad input.

The accuracy targets on trained weights (planted outlier layer) are in
tests/precision/test_mixed_accuracy.py (slow); these run in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import run_cli
from PIL import Image

import resdeploy
from resdeploy.errors import ResdeployError
from resdeploy.precision import Budget, quantize
from resdeploy.precision.budget import Trial, search
from resdeploy.precision.estimators import PerSampleMinMaxCollector
from resdeploy.precision.revert import fusable_groups, quantized_nodes, revert

SIZE = 16


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from resdeploy.exporter import ExportConfig

    root = tmp_path_factory.mktemp("mixed")
    fp32 = Path(resdeploy.export("resnet20", root / "m" / "fp32", ExportConfig(input_size=SIZE)).model_path)
    imgs = root / "imgs"
    val = root / "val"
    rng = np.random.default_rng(0)
    for folder, n in ((imgs, 8), (val / "a", 3), (val / "b", 3)):
        folder.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    trt = quantize(fp32, precision="int8", target="trt", calib_data=str(imgs), calib_samples=8, method="minmax")
    return {"fp32": fp32, "imgs": imgs, "val": val, "trt": trt.model_path, "root": root}


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("target", ["trt", "cpu"])
def test_reverting_every_group_gives_fp32_and_one_group_changes_only_it(setup: dict[str, Path], target: str,
                                                                        tmp_path: Path) -> None:
    from resdeploy.precision.int8 import pre_process

    path = setup["trt"] if target == "trt" else quantize(
        setup["fp32"], precision="int8", target="cpu", calib_data=str(setup["imgs"]), calib_samples=8,
        method="minmax", output=str(tmp_path / "cpu")).model_path
    int8 = onnx.load(path)
    pre_process(setup["fp32"], tmp_path / "pre.onnx")
    fp32 = onnx.load(tmp_path / "pre.onnx")
    groups = fusable_groups(int8)
    assert groups and all(g.nodes[0] == g.lead for g in groups)
    # A Conv feeding a residual Add takes the Add with it (the fusion engines make).
    assert any(len(g.nodes) == 2 and g.nodes[0].startswith("node_Conv") and "add" in g.nodes[1] for g in groups)
    x = np.random.default_rng(1).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)
    everything = revert(int8, fp32, [n for g in groups for n in g.nodes])
    ops = {n.op_type for n in everything.graph.node}
    assert not ops & {"QuantizeLinear", "DequantizeLinear"}
    np.testing.assert_allclose(_run(everything, x), _run(fp32, x), rtol=1e-4, atol=1e-4)
    one = revert(int8, fp32, groups[0].nodes)
    left = {n.name for n in quantized_nodes(one)}
    assert groups[0].lead not in left and len(left) >= len(quantized_nodes(int8)) - len(groups[0].nodes)
    assert np.all(np.isfinite(_run(one, x)))
    with pytest.raises(ResdeployError, match="no node named"):
        revert(int8, fp32, ["nope"])


@pytest.mark.parametrize("needed", [1, 3, 6])
def test_search_finds_the_smallest_prefix_then_prunes(needed: int) -> None:
    groups = [[f"g{i}"] for i in range(12)]
    # Passing needs groups 0 and needed-1 (the ones in between are not needed): prune must find that.
    must = {0, needed - 1}

    def evaluate(index: int, kept: list[int], step: str) -> Trial:
        ok = must <= set(kept)
        return Trial(index, step, [groups[i][0] for i in kept], ok, 0.0 if ok else 5.0, [], 0.0)

    kept, chosen, trials = search(groups, evaluate, max_trials=20)
    assert set(kept) == must and chosen is not None and chosen.passed
    assert trials[0].step == "plain" and len(trials) <= 2 + 2 * int(np.ceil(np.log2(needed + 1))) + needed
    kept, chosen, trials = search(groups, evaluate, max_trials=2)
    assert len(trials) == 2 and (chosen is not None and chosen.passed) == (needed == 1)


def test_search_plain_pass_runs_one_trial() -> None:
    seen: list[list[int]] = []

    def evaluate(index: int, kept: list[int], step: str) -> Trial:
        seen.append(kept)
        return Trial(index, step, [], True, 0.0, [], 0.0)

    kept, chosen, trials = search([["a"], ["b"]], evaluate, max_trials=8)
    assert kept == [] and len(trials) == 1 and seen == [[]]


def test_per_sample_minmax_averages_each_samples_extremes() -> None:
    c = PerSampleMinMaxCollector()
    a = np.array([[[0.0, 1.0]], [[-2.0, 3.0]]], dtype=np.float32)  # samples: (0, 1) and (-2, 3)
    c.collect({"t": [a]})
    c.collect({"t": [np.array([[[-1.0, 100.0]]], dtype=np.float32)]})  # one outlier sample
    lo, hi = c.ranges()["t"]
    assert lo == pytest.approx(-1.0) and hi == pytest.approx(104.0 / 3)


def test_default_estimator_is_recorded(setup: dict[str, Path], tmp_path: Path) -> None:
    from resdeploy.precision.int8 import DEFAULT_METHOD

    r = quantize(setup["fp32"], precision="int8", target="cpu", calib_data=str(setup["imgs"]), calib_samples=8,
                 output=str(tmp_path / "d"))
    assert r.manifest["calibration"]["method"] == DEFAULT_METHOD["cpu"] == "percentile"
    assert r.manifest["calibration"]["method_chosen"] == "default for --target cpu"


def test_export_records_node_modules(setup: dict[str, Path]) -> None:
    man = json.loads((setup["fp32"].parent / "manifest.json").read_text())
    mods = man["node_modules"]
    conv_names = [n.name for n in onnx.load(setup["fp32"]).graph.node if n.op_type == "Conv"]
    assert {mods[n] for n in conv_names} >= {"conv1", "layer1.0.conv1", "layer3.2.conv2"}


@pytest.mark.slow
def test_layers_report_cli_table_json_plot(setup: dict[str, Path], tmp_path: Path) -> None:
    plot = tmp_path / "layers.svg"
    code, out, err = run_cli("layers", str(setup["trt"].parent), "--data", str(setup["imgs"]), "--samples", "4",
                             "--json", "--plot", str(plot))
    assert code == 0, err
    rep = json.loads(out)
    assert rep["schema"] == "resdeploy.layers/1" and rep["samples"] == 4
    rows = rep["layers"]
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    sq = [r["isolated_sqnr_db"] for r in rows]
    assert sq == sorted(sq) and len(rows) >= 19 and all(r["module"] for r in rows if r["op_type"] == "Conv")
    assert plot.read_text().lstrip().startswith("<?xml")
    code, out, err = run_cli("layers", str(setup["trt"].parent), "--data", str(setup["imgs"]), "--samples", "4")
    assert code == 0 and "alone" in out


def test_bad_input_one_line_exit_2_nothing_written(setup: dict[str, Path], tmp_path: Path) -> None:
    fp32 = str(setup["fp32"])
    out = tmp_path / "o"
    cases = [
        (["--max-top1-drop", "0.5"], "needs held-out data"),
        (["--val-data", str(setup["val"]), "--max-trials", "0"], "--max-trials must be a positive"),
        (["--val-data", str(tmp_path / "missing")], "not found"),
    ]
    for extra, msg in cases:
        code, _, err = run_cli("quantize", fp32, "--calib-data", str(setup["imgs"]), "-o", str(out), *extra)
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()
    # Labels that are not the model's: 11 class folders for a 10-class model.
    bad = tmp_path / "bad"
    for i in range(11):
        (bad / f"c{i:02d}").mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(bad / f"c{i:02d}" / "x.png")
    code, _, err = run_cli("quantize", fp32, "--calib-data", str(setup["imgs"]), "--calib-samples", "4",
                           "--val-data", str(bad), "--max-top1-drop", "1", "-o", str(out))
    assert code == 2 and "labels do not match the model" in err and not out.exists(), err
    assert not list(tmp_path.glob(".o*"))  # no temporary sibling left behind
    # A candidate with no FP32 parent: an INT8 graph copied away from its manifest.
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "model.onnx").write_bytes(setup["trt"].read_bytes())
    code, _, err = run_cli("layers", str(lone), "--data", str(setup["imgs"]))
    assert code == 2 and "no FP32 parent" in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(ResdeployError, match="applies to --precision int8 only"):
        quantize(setup["fp32"], precision="fp16", budget=Budget(val_data=str(setup["val"]), max_top1_drop=1.0))
