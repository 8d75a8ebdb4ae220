"""Every graph resdeploy writes, as peer tools read it: onnx.checker, unoptimised ONNX Runtime, Polygraphy.

Users check our files with ``onnx.checker``, with ONNX Runtime at
``ORT_DISABLE_ALL`` (the graph as written, no fusions to hide a problem) and with
Polygraphy's comparator; these tests hold every variant (FP32, FP16 with FP32 and FP16
I/O, INT8 for the CPU and for TensorRT) to all of them, at the default opset and at an
opset >= 21, where QuantizeLinear gained ``output_dtype`` and ONNX Runtime's QDQ
propagation once broke our TensorRT graphs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

import resdeploy
from resdeploy.compare import parity_metrics

pytestmark = pytest.mark.slow

SIZE = 16
VARIANTS = {
    "fp16": {"precision": "fp16"},
    "fp16-io": {"precision": "fp16", "fp16_io": True},
    "int8-cpu": {"precision": "int8", "target": "cpu"},
    "int8-trt": {"precision": "int8", "target": "trt"},
}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("peer-images")
    rng = np.random.default_rng(0)
    for i in range(8):  # smooth gradients plus noise: real PNG files, varied statistics
        base = np.linspace(0, 255, 24 * 20 * 3).reshape(20, 24, 3) * rng.uniform(0.3, 1.0)
        img = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / f"{i}.png")
    return root


def _variants(root: Path, opset: int, images: Path) -> dict[str, Path]:
    from resdeploy.exporter import ExportConfig

    fp32 = resdeploy.export("resnet20", root / "fp32", ExportConfig(input_size=SIZE, opset=opset, exporter="dynamo"))
    paths = {"fp32": Path(fp32.model_path)}
    for name, kw in VARIANTS.items():
        calib = {"calib_data": str(images), "calib_samples": 8} if kw["precision"] == "int8" else {}
        paths[name] = Path(resdeploy.quantize(fp32.model_path, output=str(root / name), **kw, **calib).model_path)
    return paths


@pytest.fixture(scope="module", params=[18, 21], ids=["opset18", "opset21"])
def graphs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, images: Path) -> dict[str, Path]:
    return _variants(tmp_path_factory.mktemp(f"peer-{request.param}"), request.param, images)


def _session(path: Path, level: str, keep_qdq: bool = False):  # noqa: ANN202 - an onnxruntime.InferenceSession
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    if keep_qdq:
        so.add_session_config_entry("session.disable_quant_qdq", "1")
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _feed(sess, x: np.ndarray) -> dict[str, np.ndarray]:  # noqa: ANN001
    inp = sess.get_inputs()[0]
    return {inp.name: x.astype(np.float16 if inp.type == "tensor(float16)" else np.float32)}


@pytest.mark.parametrize("variant", ["fp32", *VARIANTS])
def test_checker_full_check_and_unoptimised_ort_accept_every_graph(graphs: dict[str, Path], variant: str) -> None:
    path = graphs[variant]
    onnx.checker.check_model(str(path), full_check=True)  # raises on any violation
    x = np.random.default_rng(3).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)
    # The TensorRT variant has full-range weights: ORT's fused INT8 kernels saturate on x86 without
    # VNNI (precision/isa.py), which is the CPU, not the optimiser. Keep its Q/DQ unfused there so the
    # check means the same on every host; the portable int8-cpu variant covers the QDQ fusions.
    raw_sess = _session(path, "ORT_DISABLE_ALL")
    opt_sess = _session(path, "ORT_ENABLE_ALL", keep_qdq=variant == "int8-trt")
    raw = raw_sess.run(None, _feed(raw_sess, x))[0].astype(np.float32)
    opt = opt_sess.run(None, _feed(opt_sess, x))[0].astype(np.float32)
    assert raw.shape == (2, 10) and np.isfinite(raw).all()
    # The optimiser fuses (Conv+BN, QDQ folding) but must not change what the graph computes
    # beyond rounding: INT8 kernels round differently from DQ->float->Q, by a few steps.
    scale = float(np.abs(raw).max())
    tol = 1e-4 if variant == "fp32" else (1e-2 if variant.startswith("fp16") else 0.15)
    assert float(np.abs(raw - opt).max()) <= tol * scale, (variant, float(np.abs(raw - opt).max()), scale)


def test_int8_graphs_declare_only_the_opsets_they_use(graphs: dict[str, Path]) -> None:
    for variant in ("int8-cpu", "int8-trt"):
        model = onnx.load(str(graphs[variant]))
        declared = {o.domain for o in model.opset_import}
        used = {n.domain for n in model.graph.node}
        assert declared == used | {""}, (variant, sorted(declared))


def test_polygraphy_comparator_agrees_with_our_parity_metrics(graphs: dict[str, Path], images: Path) -> None:
    """Same max abs error as Polygraphy; our relative error is a different (documented) quantity."""
    pytest.importorskip("polygraphy", reason="Polygraphy is not installed (pip install polygraphy) - optional peer check")
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx
    from polygraphy.comparator import Comparator, CompareFunc

    from resdeploy.artifacts import read_manifest
    from resdeploy.data import open_data
    from resdeploy.preprocess import PreprocessSpec

    spec = PreprocessSpec.from_dict(read_manifest(graphs["fp32"])["preprocess"])
    x, _ = open_data(images, spec).load()
    # Candidate first, reference second: the order `polygraphy run CAND --load-outputs REF` uses,
    # so Polygraphy's relative difference divides by the reference's outputs.
    runners = [OnnxrtRunner(SessionFromOnnx(str(graphs["int8-cpu"])), name="int8"),
               OnnxrtRunner(SessionFromOnnx(str(graphs["fp32"])), name="fp32")]
    results = Comparator.run(runners, data_loader=[{"input": x}])
    import polygraphy.comparator as pgc

    simple = pgc.SimpleCompareFunc if hasattr(pgc, "SimpleCompareFunc") else CompareFunc.simple  # >= 0.53 / older
    accuracy = Comparator.compare_accuracy(results, compare_func=simple(atol=1e-5, rtol=1e-5))
    # 0.53 returns a list (one result per compare function) of {runner pair: per-iteration results}
    per_func = accuracy if hasattr(accuracy, "values") else accuracy[0]  # older releases: the dict itself
    (pair_results,) = per_func.values()
    pg = pair_results[0]["logits"]
    cand, ref = (np.asarray(results[i][1][0]["logits"], dtype=np.float64) for i in (0, 1))

    ours = parity_metrics(ref, cand)
    diff = np.abs(cand - ref)
    assert ours.max_abs_error == pytest.approx(pg.max_absdiff, rel=1e-6)
    assert ours.mean_abs_error == pytest.approx(pg.mean_absdiff, rel=1e-5)
    # Polygraphy: element-wise |cand - ref| / |ref| (2e-16 added to zeros), then its max.
    assert pg.max_reldiff == pytest.approx(float(np.max(diff / np.abs(ref))), rel=1e-5)
    # Ours: max |cand - ref| over max |ref|: the error against the logits' scale, bounded by
    # Polygraphy's (which explodes on logits near zero and fails any INT8 model at 1e-5).
    assert ours.max_rel_error == pytest.approx(float(diff.max() / np.abs(ref).max()), rel=1e-9)
    assert ours.max_rel_error <= pg.max_reldiff
    assert not bool(pg)  # INT8 misses Polygraphy's default 1e-5 tolerances by design


def test_a_variant_ort_cannot_load_is_one_line_and_writes_nothing(tmp_path: Path, images: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The opset-21 failure as it was: bare Slice/Pad in a TensorRT graph. The error must name no temp file."""
    from resdeploy.errors import ResdeployError
    from resdeploy.exporter import ExportConfig
    from resdeploy.precision import int8

    fp32 = resdeploy.export("resnet20", tmp_path / "fp32", ExportConfig(input_size=SIZE, opset=21, exporter="dynamo"))
    monkeypatch.setattr(int8, "TRT_OP_TYPES", [t for t in int8.TRT_OP_TYPES if t not in ("Slice", "Pad")])
    out = tmp_path / "int8-trt"
    with pytest.raises(ResdeployError, match="does not run in ONNX Runtime, so nothing was written") as info:
        resdeploy.quantize(fp32.model_path, precision="int8", target="trt", calib_data=str(images), calib_samples=8,
                           output=str(out))
    assert "resdeploy-quantize-" not in str(info.value) and "\n" not in str(info.value)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["fp32"]
