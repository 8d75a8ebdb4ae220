"""``bench --data``: real samples through the same preprocessing as quantize and validate.

Models without a manifest are built here as a user would have them: an NHWC wrapper, a
uint8-pixel model that normalises in its graph, dynamic height and width.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import _tiny_net, nhwc_wrapper, run_cli, uint8_pixel_net

SAMPLE = Path(__file__).resolve().parent.parent / "calibration" / "sample"  # real photos


def _export(net, x, path: Path, name: str = "input", dynamic: dict | None = None) -> Path:  # noqa: ANN001
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (x,), str(path), input_names=[name], output_names=["out"],
                          dynamic_axes=dynamic or {name: {0: "batch"}, "out": {0: "batch"}}, dynamo=False)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch

    root = tmp_path_factory.mktemp("bench-inputs")
    net = _tiny_net()
    return {
        "nchw": _export(net, torch.randn(1, 3, 32, 32), root / "nchw" / "m.onnx"),
        "nhwc": _export(nhwc_wrapper(net), torch.randn(1, 32, 32, 3), root / "nhwc" / "m.onnx", "input_1"),
        "pixels": _export(uint8_pixel_net(), torch.zeros(1, 3, 32, 32, dtype=torch.uint8), root / "u8" / "m.onnx"),
        "gray": _export(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                                            torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval(),
                        torch.zeros(1, 1, 32, 32), root / "gray" / "m.onnx"),
        "dynamic": _export(net, torch.randn(1, 3, 32, 32), root / "dyn" / "m.onnx",
                           dynamic={"input": {0: "batch", 2: "h", 3: "w"}, "out": {0: "batch"}}),
    }


def _inputs(model: Path, shape: tuple[int, ...], **flags: object) -> np.ndarray:
    from resdeploy.bench_inputs import real_inputs
    from resdeploy.onnx_io import read_graph_input

    batches, record = real_inputs(SAMPLE, str(model), shape, 2, 0, graph=read_graph_input(model), flags=flags)
    assert record["samples"] == shape[0] * 2
    return np.concatenate(batches)


def test_an_nhwc_model_gets_the_samples_its_nchw_twin_gets(models: dict[str, Path]) -> None:
    nchw = _inputs(models["nchw"], (4, 3, 32, 32))
    nhwc = _inputs(models["nhwc"], (4, 32, 32, 3))  # its size was read as 3 (the channel axis) before
    assert nhwc.shape == (8, 32, 32, 3)
    np.testing.assert_array_equal(nhwc.transpose(0, 3, 1, 2), nchw)


def test_preprocessing_flags_apply_to_a_model_without_a_manifest(models: dict[str, Path]) -> None:
    from resdeploy.data import open_data
    from resdeploy.preprocess import spec_for

    caffe = _inputs(models["nchw"], (4, 3, 32, 32), preset="caffe")
    expected, _ = open_data(SAMPLE, spec_for((32, 32), preset="caffe"), samples=8, seed=0).load()
    np.testing.assert_array_equal(caffe, expected)
    assert np.abs(caffe).max() > 50 > np.abs(_inputs(models["nchw"], (4, 3, 32, 32))).max()


def test_a_uint8_pixel_model_gets_raw_pixels_as_uint8(models: dict[str, Path]) -> None:
    pixels = _inputs(models["pixels"], (4, 3, 32, 32))
    assert pixels.dtype == np.uint8 and pixels.max() > 200  # the 0-255 crop, not normalised values cast


def test_bench_data_on_uint8_nhwc_and_grayscale_models(models: dict[str, Path]) -> None:
    for kind, shape in (("pixels", [2, 3, 32, 32]), ("nhwc", [2, 32, 32, 3]), ("gray", [2, 1, 32, 32])):
        code, out, err = run_cli("bench", str(models[kind]), "--data", str(SAMPLE), "--batch", "2", "-n", "2",
                                 "--duration", "0", "--warmup", "1", "--json")
        assert code == 0, err
        run = json.loads(out)["runs"][0]
        assert run["input_shape"] == shape and run["scenario_summary"]["inputs"]["samples"] == 8


def test_bench_says_what_its_flags_do_not_decide(models: dict[str, Path], tiny_artifact: Path) -> None:
    quick = ("--batch", "1", "-n", "1", "--duration", "0", "--warmup", "0")
    code, out, err = run_cli("bench", str(models["dynamic"]), *quick)
    assert code == 0 and "dynamic" in err and "timed at 224x224" in err and "--input-size" in err
    code, out, err = run_cli("bench", str(models["dynamic"]), *quick, "--input-size", "32")
    assert code == 0 and "timed at" not in err
    code, out, err = run_cli("bench", str(models["nchw"]), *quick, "--preprocess", "caffe")
    assert code == 0 and "--preprocess changes only the tensors --data loads" in err
    code, out, err = run_cli("bench", str(tiny_artifact), *quick, "--preprocess", "caffe", "--data", str(SAMPLE))
    assert code == 0 and "--preprocess ignored: the manifest records" in err
