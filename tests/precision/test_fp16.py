"""FP16 conversion of graphs that resdeploy did not export: shared initializers, casts inside the graph.

Both are plain ``torch.onnx.export`` (legacy exporter) output of small modules; each used to
convert into a graph ONNX Runtime refused to load ("Type (tensor(float16)) of output arg ...
does not match expected type (tensor(float))").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from resdeploy.precision.fp16 import convert_fp16


def _export(module: object, example: object, path: Path) -> Path:
    import torch

    assert isinstance(module, torch.nn.Module)
    torch.onnx.export(module.eval(), (example,), str(path), input_names=["x"], output_names=["y"], dynamo=False)
    return path


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {"x": x})[0])


@pytest.fixture(scope="module")
def shared_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two LayerNorms with equal (fresh) weights: the exporter writes them once, the second through Identity."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.norm1 = torch.nn.LayerNorm(8)
            self.norm2 = torch.nn.LayerNorm(8)
            self.fc = torch.nn.Linear(8, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.norm2(self.norm1(self.conv(x).mean(dim=(2, 3)))))

    torch.manual_seed(0)
    return _export(Net(), torch.randn(1, 3, 8, 8), tmp_path_factory.mktemp("fp16") / "shared.onnx")


def test_initializers_shared_through_identity_convert(shared_weights: Path, tmp_path: Path) -> None:
    assert "Identity" in {n.op_type for n in onnx.load(str(shared_weights)).graph.node}  # the case under test
    out = tmp_path / "fp16.onnx"
    converted = convert_fp16(shared_weights, out)
    assert "Identity" not in {n.op_type for n in converted.graph.node}
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(_run(out, x), _run(shared_weights, x), atol=2e-2)


def test_a_cast_inside_the_graph_follows_the_conversion(tmp_path: Path) -> None:
    """uint8 images in, normalisation in the graph: the graph's Cast must now produce FP16."""
    import torch
    from conftest import uint8_pixel_net

    src = _export(uint8_pixel_net(), torch.zeros(1, 3, 8, 8, dtype=torch.uint8), tmp_path / "u8.onnx")
    out = tmp_path / "fp16.onnx"
    converted = convert_fp16(src, out)
    casts = [n for n in converted.graph.node if n.op_type == "Cast" and n.input[0] == "x"]
    assert [a.i for n in casts for a in n.attribute if a.name == "to"] == [onnx.TensorProto.FLOAT16]
    x = np.random.default_rng(0).integers(0, 256, (1, 3, 8, 8)).astype(np.uint8)
    np.testing.assert_allclose(_run(out, x), _run(src, x), atol=2e-2)
