"""Models resdeploy did not export: plain ``torch.onnx.export`` of a zoo model, no manifest.

Built here, as a user would make them: other input/output names (``data``/``prob``), an
NHWC wrapper (``input_1`` ``[batch, H, W, 3]``, as Keras/TensorFlow exports are) and
dynamic spatial axes. Each goes through quantize, validate and bench without flags where
the graph fixes its input, and fails in one line (exit 2) where something does not fit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import nhwc_wrapper, one_line_error, run_cli

pytestmark = pytest.mark.slow

SIZE = 32
ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "calibration" / "sample"  # real photos, licence-clean, shipped with the project


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch

    from resdeploy.models.zoo import ModelSpec

    root = tmp_path_factory.mktemp("foreign")
    net = ModelSpec("resnet20", num_classes=10, input_size=SIZE).build().eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    paths = {"nchw": root / "nchw" / "classifier.onnx", "nhwc": root / "nhwc" / "classifier.onnx",
             "dynamic": root / "dyn" / "classifier.onnx"}
    for p in paths.values():
        p.parent.mkdir()
    torch.onnx.export(net, (x,), str(paths["nchw"]), input_names=["data"], output_names=["prob"],
                      dynamic_axes={"data": {0: "batch"}, "prob": {0: "batch"}}, dynamo=False)
    torch.onnx.export(nhwc_wrapper(net), (x.permute(0, 2, 3, 1),), str(paths["nhwc"]), input_names=["input_1"],
                      output_names=["predictions"], dynamic_axes={"input_1": {0: "batch"}, "predictions": {0: "batch"}},
                      dynamo=False)
    torch.onnx.export(net, (x,), str(paths["dynamic"]), input_names=["data"], output_names=["prob"],
                      dynamic_axes={"data": {0: "batch", 2: "height", 3: "width"}, "prob": {0: "batch"}},
                      dynamo=False)
    return paths


def _quantize_json(*args: str) -> dict:
    code, out, err = run_cli("quantize", *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_nchw_and_nhwc_quantize_without_flags_and_agree_alike(foreign: dict[str, Path]) -> None:
    results = {}
    for kind in ("nchw", "nhwc"):
        res = _quantize_json(str(foreign[kind]), "--calib-data", str(SAMPLE), "--calib-samples", "16")
        pre = res["manifest"]["preprocess"]
        assert pre["layout"] == kind.upper() and pre["crop"] == SIZE  # read from the graph, no flags
        # Named after the model, beside it: a second model in another folder cannot collide.
        assert res["output_dir"] == str(foreign[kind].parent / "classifier-int8-cpu")
        code, out, err = run_cli("validate", res["output_dir"], "--data", str(SAMPLE), "--json")
        assert code in (0, 1), err  # a random-init net need not pass; it must measure
        results[kind] = json.loads(out)
        assert results[kind]["samples"] == 32 and all(g["samples"] == 32 for g in results[kind]["gates"])
    # The target: NHWC INT8 agrees with its FP32 within 2 points of what NCHW INT8 reaches.
    a_nchw = results["nchw"]["parity"]["top1_agreement"]
    a_nhwc = results["nhwc"]["parity"]["top1_agreement"]
    assert abs(a_nchw - a_nhwc) <= 0.02, (a_nchw, a_nhwc)

    # The NHWC model against the same network in NCHW: same images, transposed for the reference.
    code, out, err = run_cli("validate", str(foreign["nhwc"]), "--reference", str(foreign["nchw"]),
                             "--data", str(SAMPLE), "--json")
    assert code == 0, err
    assert json.loads(out)["parity"]["max_abs_error"] < 1e-4


def test_fp16_asks_for_no_preprocessing(foreign: dict[str, Path]) -> None:
    res = _quantize_json(str(foreign["dynamic"]), "--precision", "fp16")  # even with dynamic H, W
    assert Path(res["model_path"]).exists() and res["output_dir"].endswith("classifier-fp16")


def test_dynamic_spatial_axes_need_input_size_then_take_non_square(foreign: dict[str, Path], tmp_path: Path) -> None:
    code, out, err = run_cli("quantize", str(foreign["dynamic"]), "--calib-data", str(SAMPLE))
    one_line_error(code, out, err, "leaves height and width dynamic", "--input-size")
    res = _quantize_json(str(foreign["dynamic"]), "--calib-data", str(SAMPLE), "--calib-samples", "8",
                         "--input-size", "32,24", "-o", str(tmp_path / "ns"))
    assert res["manifest"]["preprocess"]["crop"] == [32, 24]
    code, out, err = run_cli("bench", str(foreign["dynamic"]), "--input-size", "32,24", "-n", "2", "--duration", "0",
                             "--batch", "2", "--json")
    assert code == 0, err
    assert json.loads(out)["runs"][0]["input_shape"] == [2, 3, 32, 24]


def test_layout_and_shape_mismatches_are_one_line(foreign: dict[str, Path], tmp_path: Path) -> None:
    code, out, err = run_cli("validate", str(foreign["nhwc"]), "--layout", "nchw", "--data", str(SAMPLE),
                             "--reference", str(foreign["nchw"]))
    one_line_error(code, out, err, "--layout nchw does not match", "NHWC")
    arrays = tmp_path / "wrong.npy"
    np.save(arrays, np.zeros((4, 3, 20, 20), dtype=np.float32))
    code, out, err = run_cli("validate", str(foreign["nchw"]), "--reference", str(foreign["nchw"]),
                             "--data", str(arrays))
    one_line_error(code, out, err, "holds tensors of shape (3, 20, 20)", "(3, 32, 32)")
    # Deeper down, the runner itself: one ResdeployError, not ONNX Runtime's INVALID_ARGUMENT.
    from resdeploy.errors import ResdeployError
    from resdeploy.runners import RunnerConfig, create_runner

    with create_runner(RunnerConfig(engine="ort", model=str(foreign["nchw"]))) as runner, \
            pytest.raises(ResdeployError, match=r"takes input of shape \('\?', 3, 32, 32\).*layout mismatch"):
        runner.infer(np.zeros((2, SIZE, SIZE, 3), dtype=np.float32))


def test_reference_below_chance_is_exit_2_naming_the_class_order(foreign: dict[str, Path], tmp_path: Path) -> None:
    import onnxruntime as ort

    from resdeploy.data import open_data
    from resdeploy.onnx_io import read_graph_input, spec_without_manifest

    spec, _ = spec_without_manifest(read_graph_input(foreign["nchw"]))
    x, _ = open_data(SAMPLE, spec).load()
    sess = ort.InferenceSession(str(foreign["nchw"]), providers=["CPUExecutionProvider"])
    pred = sess.run(None, {"data": x})[0].argmax(1)
    data = tmp_path / "shifted.npz"
    np.savez(data, x=x, y=(pred + 1) % 10)  # every label is some other class: the reference scores 0%
    code, out, err = run_cli("validate", str(foreign["nchw"]), "--reference", str(foreign["nchw"]),
                             "--data", str(data), "--junit", str(tmp_path / "gate.xml"))
    one_line_error(code, out, err, "0.0% top-1 on 32 labelled samples", "class order")
    assert not (tmp_path / "gate.xml").exists()  # never a JUnit pass
    np.savez(data, x=x, y=pred)
    code, out, err = run_cli("validate", str(foreign["nchw"]), "--reference", str(foreign["nchw"]),
                             "--data", str(data))
    assert code == 0, err


def test_bench_checks_every_engine_first_and_memory(foreign: dict[str, Path]) -> None:
    code, out, err = run_cli("bench", str(foreign["nchw"]), "--engine", "ort,torch", "-n", "2", "--duration", "0")
    one_line_error(code, out, err, "torch engine needs a PyTorch model", "--engine ort")
    assert "p50" not in err  # nothing was measured before the refusal
    code, out, err = run_cli("bench", str(foreign["nchw"]), "--batch", "100000000")
    one_line_error(code, out, err, "GiB", "available", "smaller --batch")
    code, out, err = run_cli("validate", str(foreign["nchw"]), "--reference", "torch", "--data", str(SAMPLE))
    one_line_error(code, out, err, "--reference torch needs a PyTorch model")
