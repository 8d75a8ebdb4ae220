"""Calibration (``precision.int8.calibrate``) on graphs with awkward activations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from resdeploy.precision.int8 import calibrate


@pytest.fixture(scope="module")
def gate_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A squeeze-excite-like gate that is 0.5 give or take a few ulps, as in an untrained MobileNetV3."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.squeeze = torch.nn.Conv2d(8, 8, 1)
            self.fc = torch.nn.Linear(8, 4)
            with torch.no_grad():
                self.squeeze.weight.mul_(1e-6)
                self.squeeze.bias.zero_()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.conv(x))
            gate = torch.sigmoid(self.squeeze(y.mean(dim=(2, 3), keepdim=True)))
            return self.fc((y * gate).mean(dim=(2, 3)))

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("int8") / "gate.onnx"
    torch.onnx.export(Net().eval(), (torch.randn(1, 3, 8, 8),), str(path), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False)
    return path


def test_percentile_calibrates_a_nearly_constant_tensor(gate_model: Path) -> None:
    inputs = np.random.default_rng(0).standard_normal((8, 3, 8, 8)).astype(np.float32)
    ranges = calibrate(gate_model, inputs, method="percentile", batch_size=4)  # died: "Too many bins for data range"
    gates = [r for name, r in ranges.items() if "Sigmoid" in name]
    assert gates and all(abs(lo - 0.5) < 1e-5 and abs(hi - 0.5) < 1e-5 for lo, hi in gates), gates
    assert all(hi >= lo for lo, hi in ranges.values())


def test_a_softmax_at_the_end_stays_float(tmp_path: Path) -> None:
    """Probabilities in 1/255 steps lose every small class: --target cpu keeps Softmax (and its input) float."""
    import onnx
    import torch

    from resdeploy.precision import quantize

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(8, 10), torch.nn.Softmax(dim=1)).eval()
    src = tmp_path / "softmax.onnx"
    torch.onnx.export(net, (torch.randn(1, 3, 16, 16),), str(src), input_names=["x"], output_names=["probs"],
                      dynamic_axes={"x": {0: "b"}, "probs": {0: "b"}}, dynamo=False)
    arrays = tmp_path / "calib.npy"
    np.save(arrays, np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32))
    res = quantize(src, precision="int8", calib_data=str(arrays), output=str(tmp_path / "q"))
    graph = onnx.load(str(res.model_path)).graph
    made_by = {o: n.op_type for n in graph.node for o in n.output}
    softmax = next(n for n in graph.node if n.op_type == "Softmax")
    assert made_by[softmax.input[0]] != "DequantizeLinear"
    assert made_by["probs"] == "Softmax"
    assert any(n.op_type == "QuantizeLinear" for n in graph.node)  # the rest is quantized
