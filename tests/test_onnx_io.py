"""Reading a bare classifier's input from its graph (resdeploy/onnx_io.py)."""

from __future__ import annotations

import numpy as np
import pytest

from resdeploy.errors import ResdeployError
from resdeploy.onnx_io import (
    GraphInput,
    check_batch_shape,
    layout_of,
    parse_input_size,
    parse_layout,
    spec_without_manifest,
    to_layout,
)


@pytest.mark.parametrize("dims, layout", [
    ((None, 3, 224, 224), "NCHW"), ((None, 224, 224, 3), "NHWC"), ((1, 1, 28, 28), "NCHW"),
    ((None, 3, None, None), "NCHW"), ((None, None, None, 3), "NHWC"),
    ((None, 3, 3, 3), None), ((None, None, None, None), None), ((None, 10), None),
])
def test_layout_of(dims: tuple, layout: str | None) -> None:
    assert layout_of(dims) == layout


def test_flags_parse_and_refuse_in_one_line() -> None:
    assert parse_input_size("224") == (224, 224) and parse_input_size("224,160") == (224, 160)
    assert parse_input_size("224x160") == (224, 160) and parse_input_size(None) is None
    for bad in ("0", "a", "1,2,3", "224,"):
        with pytest.raises(ResdeployError, match="--input-size takes H or H,W"):
            parse_input_size(bad)
    assert parse_layout("nhwc") == "NHWC"
    with pytest.raises(ResdeployError, match="--layout takes nchw or nhwc"):
        parse_layout("chw")


def test_spec_from_the_graph_and_what_flags_may_add() -> None:
    nhwc = GraphInput("input_1", "float32", (None, 64, 48, 3), "NHWC")
    spec, note = spec_without_manifest(nhwc, preset="caffe")
    assert (spec.crop_hw, spec.layout, spec.color, spec.scale) == ((64, 48), "NHWC", "BGR", 1.0)
    assert "from the graph" in note
    with pytest.raises(ResdeployError, match="does not match"):
        spec_without_manifest(nhwc, input_size=(32, 32))
    with pytest.raises(ResdeployError, match="--layout nchw does not match"):
        spec_without_manifest(nhwc, layout="nchw")
    dynamic = GraphInput("x", "float32", (None, None, None, None), None)
    with pytest.raises(ResdeployError, match="does not tell NCHW from NHWC"):
        spec_without_manifest(dynamic, input_size=(32, 32))
    with pytest.raises(ResdeployError, match="leaves height and width dynamic"):
        spec_without_manifest(dynamic, layout="nhwc")
    spec, _ = spec_without_manifest(dynamic, layout="nhwc", input_size=(32, 24))
    assert spec.crop_hw == (32, 24) and spec.layout == "NHWC"
    spec, _ = spec_without_manifest(dynamic, required=False)  # FP16: no images, so no flags needed
    assert spec.crop_hw == (224, 224)


def test_a_uint8_input_gets_raw_pixels() -> None:
    """A graph that takes uint8 and normalises itself is fed the cropped 0-255 pixels, not normalised floats."""
    u8 = GraphInput("input", "uint8", (None, 3, 32, 32), "NCHW")
    spec, note = spec_without_manifest(u8)
    assert (spec.scale, spec.mean, spec.std, spec.crop_hw) == (1.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (32, 32))
    assert "uint8" in note and "raw 0-255" in note
    assert spec_without_manifest(u8, preset="caffe")[0].color == "BGR"  # the colour order still comes from the preset
    with pytest.raises(ResdeployError, match="takes uint8 pixels"):
        spec_without_manifest(u8, mean=(0.5, 0.5, 0.5))


def test_batch_shape_check_and_layout_transpose() -> None:
    check_batch_shape(("batch", 3, 8, 8), (2, 3, 8, 8), "m.onnx")
    with pytest.raises(ResdeployError, match=r"m\.onnx takes input of shape \('\?', 3, 8, 8\).*layout mismatch"):
        check_batch_shape(("batch", 3, 8, 8), (2, 8, 8, 3), "m.onnx")
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    assert to_layout(x, "NCHW", "NHWC").shape == (2, 4, 5, 3)
    assert np.array_equal(to_layout(to_layout(x, "NCHW", "NHWC"), "NHWC", "NCHW"), x)
    assert to_layout(x, "NCHW", None) is x


def test_a_graph_with_two_outputs_is_read_by_its_first_and_says_so(tmp_path) -> None:  # noqa: ANN001
    import torch

    from resdeploy.onnx_io import outputs_note

    class TwoHeads(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(3 * 8 * 8, 5)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits = self.fc(x.flatten(1))
            return logits, torch.softmax(logits, dim=1)

    torch.manual_seed(0)
    two = tmp_path / "two.onnx"
    torch.onnx.export(TwoHeads().eval(), (torch.randn(1, 3, 8, 8),), str(two), input_names=["x"],
                      output_names=["logits", "probs"], dynamo=False)
    note = outputs_note(two)
    assert note is not None and "2 outputs (logits, probs)" in note and "the first, 'logits'" in note
    from resdeploy.runners import RunnerConfig, create_runner

    with create_runner(RunnerConfig(engine="ort", model=str(two))) as runner:  # what "the first" means
        scores = runner.infer(np.zeros((1, 3, 8, 8), dtype=np.float32))
    assert scores.shape == (1, 5) and not np.allclose(scores.sum(axis=1), 1.0)  # logits, not the softmax


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter, the fast one
def test_one_cast_to_the_input_dtype_rounds_and_clips_pixels(tmp_path) -> None:  # noqa: ANN001
    import torch
    from conftest import uint8_pixel_net

    from resdeploy.onnx_io import cast_input
    from resdeploy.runners import RunnerConfig, create_runner

    x = np.array([-1.0, 0.4, 127.5, 254.7, 300.0], dtype=np.float32)
    np.testing.assert_array_equal(cast_input(x, "uint8"), [0, 0, 128, 255, 255])  # astype: 255, 0, 127, 254, 44
    same = cast_input(x, np.float32)
    assert same.dtype == np.float32 and np.array_equal(same, x)
    # The runners stage through it: float pixels reach a uint8 model as the nearest pixel value.
    path = tmp_path / "pixels.onnx"
    torch.onnx.export(uint8_pixel_net(), (torch.zeros(1, 3, 8, 8, dtype=torch.uint8),), str(path),
                      input_names=["pixels"], output_names=["out"], dynamo=False)
    pixels = np.random.default_rng(0).integers(0, 256, (1, 3, 8, 8)).astype(np.float32)
    with create_runner(RunnerConfig(engine="ort", model=str(path))) as runner:
        exact = runner.infer(pixels.astype(np.uint8))
        np.testing.assert_array_equal(runner.infer(np.clip(pixels - 0.3, 0, 255)), exact)
