"""Cross-layer equalization on real exported graphs: FP32 function unchanged, ranges evened, an outlier undone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from resdeploy.precision.equalize import equalize, find_pairs
from resdeploy.precision.int8 import pre_process


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _ranges(model: onnx.ModelProto, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    nodes = {n.name: n for n in model.graph.node}
    w1, w2 = inits[nodes[a].input[1]], inits[nodes[b].input[1]]
    return (np.abs(w1).reshape(w1.shape[0], -1).max(1), np.abs(np.swapaxes(w2, 0, 1)).reshape(w2.shape[1], -1).max(1))


@pytest.fixture(scope="module")
def pre(tiny_onnx, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: ANN001
    return pre_process(tiny_onnx[0], tmp_path_factory.mktemp("eq") / "pre.onnx")


def test_equalized_graph_computes_the_same_and_evens_the_ranges(pre: Path) -> None:
    model = onnx.load(str(pre))
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    before = _run(model, x)
    # Plant an outlier the way issue 12 does: one output channel of conv 1 x100, conv 2's input x1/100.
    inits = {i.name: i for i in model.graph.initializer}
    (a, b), = find_pairs(model)
    for name, idx, factor in ((a.input[1], np.s_[3], 100.0), (a.input[2], np.s_[3], 100.0),
                              (b.input[1], np.s_[:, 3], 0.01)):
        arr = numpy_helper.to_array(inits[name]).copy()
        arr[idx] *= factor
        inits[name].CopyFrom(numpy_helper.from_array(arr, name))
    planted = _run(model, x)
    np.testing.assert_allclose(planted, before, rtol=1e-4, atol=1e-4)
    r1, r2 = _ranges(model, a.name, b.name)
    assert r1[3] / np.median(r1) > 20  # the outlier is there

    result = equalize(model)
    assert result.pairs == [(a.name, b.name)] and result.max_scale > 10
    after = _run(model, x)
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4 * float(np.abs(before).max()))
    r1, r2 = _ranges(model, a.name, b.name)
    np.testing.assert_allclose(r1, r2, rtol=1e-3)
    assert r1[3] / np.median(r1) < 10


@pytest.mark.slow  # a ResNet-20 export
def test_pairs_stop_at_residual_adds(tmp_path: Path) -> None:
    """In an exported ResNet only the Conv -> Relu -> Conv inside a block pairs up; no Add is crossed."""
    import resdeploy
    from resdeploy.exporter import ExportConfig

    fp32 = resdeploy.export("resnet20", tmp_path / "fp32", ExportConfig(input_size=16)).model_path
    model = onnx.load(str(pre_process(fp32, tmp_path / "pre.onnx")))
    pairs = find_pairs(model)
    assert len(pairs) == 9  # one per basic block
    readers: dict[str, list[str]] = {}
    for n in model.graph.node:
        for t in n.input:
            readers.setdefault(t, []).append(n.op_type)
    for a, _ in pairs:
        relu_out = next(n for n in model.graph.node if n.op_type == "Relu" and n.input[0] == a.output[0]).output[0]
        assert readers[a.output[0]] == ["Relu"] and readers[relu_out] == ["Conv"]
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)
    before = _run(model, x)
    equalize(model)
    np.testing.assert_allclose(_run(model, x), before, rtol=1e-4, atol=1e-4 * float(np.abs(before).max()))


def test_convs_sharing_an_exported_bias_are_still_equalized(tmp_path: Path) -> None:
    """Equal biases are written once by the legacy exporter (Identity, then one initializer after ORT's optimizer)."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1),
                              torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1)).eval()
    with torch.no_grad():
        for conv in (net[0], net[2], net[4]):
            conv.bias.zero_()  # equal biases, as an untrained network's folded BatchNorms give
    src, dst = tmp_path / "shared.onnx", tmp_path / "pre.onnx"
    torch.onnx.export(net, (torch.randn(1, 3, 8, 8),), str(src), input_names=["x"], output_names=["y"], dynamo=False)
    assert "Identity" in {n.op_type for n in onnx.load(str(src)).graph.node}  # the case under test
    model = onnx.load(str(pre_process(src, dst)))
    assert len(find_pairs(model)) == 2  # was 0: no Conv had a bias of its own
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    before = _run(model, x)
    equalize(model)
    np.testing.assert_allclose(_run(model, x), before, rtol=1e-4, atol=1e-5)
