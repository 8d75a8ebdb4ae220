"""Export to ONNX: real exports, real ONNX Runtime sessions, a planted mismatch, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from resdeploy import artifacts
from resdeploy.compare import ParityTolerances
from resdeploy.errors import GateFailure, ResdeployError
from resdeploy.exporter import ExportConfig, check_parity, export
from resdeploy.models.weights import STREAM_PARITY_INPUTS, synthetic_images
from resdeploy.models.zoo import MODELS, ModelSpec, model_from_manifest


@pytest.fixture(scope="module")
def resnet20_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "resnet20"
    export("resnet20", out, ExportConfig(seed=1))
    return out


def _ort(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(["logits"], {"input": x})[0]


def test_export_writes_verified_artifact_and_manifest(resnet20_artifact: Path) -> None:
    out = resnet20_artifact
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.onnx"]
    assert [p.name for p in out.parent.iterdir()] == ["resnet20"]  # no temporary leftovers
    m = artifacts.read_manifest(out, required=True)
    assert m is not None and m["stage"] == "export" and m["precision"] == "fp32"
    assert m["model"]["name"] == "resnet20" and m["model"]["source"] == "zoo"
    assert m["model"]["weights"] == "random, seed 1"
    assert m["model"]["init"]["procedure"] == "random-init calibration"
    assert m["artifact"]["sha256"] == artifacts.sha256_file(out / "model.onnx")
    assert m["inputs"] == [{"name": "input", "shape": ["batch", 3, 32, 32], "dtype": "float32"}]
    assert m["outputs"] == [{"name": "logits", "shape": ["batch", 10], "dtype": "float32"}]
    assert m["dynamic_axes"] == {"input": {"0": "batch"}, "logits": {"0": "batch"}}
    assert m["opset"] == 18 and m["exporter"]["dynamo"] is True
    assert set(m["versions"]) == {"torch", "onnx", "onnxruntime", "onnxscript"}
    assert m["preprocess"]["crop"] == 32 and m["preprocess"]["mean"][0] == pytest.approx(0.4914)
    assert m["graph"]["batchnorm_folded"] and "BatchNormalization" not in m["graph"]["ops"]
    assert "Dropout" not in m["graph"]["ops"]
    p = m["parity"]
    assert p["passed"] is True and p["failures"] == [] and set(p["batches"]) == {"1", "4"}
    for r in p["batches"].values():
        assert r["max_abs_error"] < 1e-3 and r["top1_agreement"] == 1.0 and r["cosine_min"] > 0.9999
        assert r["reference_logit_std"] > 1.0  # realistic spread, not near-zero logits
    assert p["distinct_top1"] >= 2
    assert p["inputs"]["seed"] == [1, STREAM_PARITY_INPUTS] and p["inputs"]["split"] == [1, 4]
    assert set(m["timings"]) >= {"build model", "export onnx", "check graph", "parity (batch 1, 4)"}
    onnx.checker.check_model(str(out / "model.onnx"))


def test_dynamic_batch_and_reference_rebuilt_from_manifest(resnet20_artifact: Path) -> None:
    m = artifacts.read_manifest(resnet20_artifact, required=True)
    assert m is not None
    reference = model_from_manifest(m)
    x = synthetic_images(7, 32, seed=42, stream=9).numpy()
    got = _ort(resnet20_artifact / "model.onnx", x)
    with torch.no_grad():
        want = reference(torch.from_numpy(x)).numpy()
    assert got.shape == (7, 10)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    assert len(set(want.argmax(1).tolist())) >= 2


def test_planted_mismatch_fails_parity(resnet20_artifact: Path, tmp_path: Path) -> None:
    """Perturb one convolution's weights by 1% in the ONNX file: the check must see it."""
    proto = onnx.load(str(resnet20_artifact / "model.onnx"))
    conv_weights = [n.input[1] for n in proto.graph.node if n.op_type == "Conv"]
    target = conv_weights[len(conv_weights) // 2]
    init = next(t for t in proto.graph.initializer if t.name == target)
    w = onnx.numpy_helper.to_array(init).copy()
    rng = np.random.default_rng(0)
    w *= 1.0 + 0.01 * rng.standard_normal(w.shape).astype(np.float32)
    init.CopyFrom(onnx.numpy_helper.from_array(w, target))
    bad = tmp_path / "model.onnx"
    onnx.save(proto, str(bad))

    m = artifacts.read_manifest(resnet20_artifact, required=True)
    assert m is not None
    torch_model = model_from_manifest(m)
    kwargs = {"input_size": 32, "batches": [1, 4], "seed": 1, "tolerances": ParityTolerances()}
    good = check_parity(torch_model, resnet20_artifact / "model.onnx", **kwargs)
    planted = check_parity(torch_model, bad, **kwargs)
    assert good["passed"] and not planted["passed"]
    assert any("max abs error" in f for f in planted["failures"])
    assert planted["overall"]["max_abs_error"] > 100 * good["overall"]["max_abs_error"]


def test_parity_failure_writes_artifact_then_raises(tmp_path: Path) -> None:
    """Tolerances nothing can meet: exit code 1, the artifact kept and marked failed.
    Also covers opset 17 (TorchScript exporter) and a fixed batch."""
    out = tmp_path / "strict"
    cfg = ExportConfig(opset=17, batch=2, tolerances=ParityTolerances(max_abs_error=1e-12))
    with pytest.raises(GateFailure, match="parity failed .*max abs error") as err:
        export("resnet20", out, cfg, num_classes=3)
    assert err.value.exit_code == 1
    m = artifacts.read_manifest(out, required=True)
    assert m is not None and m["parity"]["passed"] is False
    assert m["opset"] == 17 and m["exporter"]["dynamo"] is False and m["exporter"]["kind"] == "torchscript"
    assert m["inputs"][0]["shape"] == [2, 3, 32, 32] and m["outputs"][0]["shape"] == [2, 3]
    assert m["dynamic_axes"] == {} and list(m["parity"]["batches"]) == ["2"]
    proto = onnx.load(str(out / "model.onnx"))
    assert proto.opset_import[0].version == 17
    assert err.value.result.passed is False  # type: ignore[attr-defined]


@pytest.mark.slow
def test_export_resnet18_with_torchvision_layout_weights(tmp_path: Path) -> None:
    torch.manual_seed(3)
    sd = MODELS["resnet18"](1000).state_dict()
    for k, v in sd.items():  # "trained" BatchNorm statistics so the weights are not the init
        if k.endswith("running_mean"):
            sd[k] = torch.randn_like(v) * 0.1
        elif k.endswith("running_var"):
            sd[k] = torch.rand_like(v) + 0.5
    weights = tmp_path / "resnet18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, weights)
    res = export("resnet18", tmp_path / "r18", weights=weights)
    assert res.passed and res.model_path == tmp_path / "r18" / "model.onnx"
    m = res.manifest
    assert m["model"]["weights"]["sha256"] == artifacts.sha256_file(weights)
    assert m["model"]["init"]["procedure"] == "loaded"
    x = synthetic_images(3, 224, seed=0, stream=7).numpy()
    with torch.no_grad():
        want = model_from_manifest(m)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_ort(res.model_path, x), want, atol=1e-3, rtol=1e-3)


@pytest.mark.slow
def test_export_resnet50_dynamic_batch(tmp_path: Path) -> None:
    res = export("resnet50", tmp_path / "r50")
    m = res.manifest
    assert res.passed and m["parity"]["passed"]
    assert m["inputs"][0]["shape"] == ["batch", 3, 224, 224] and m["outputs"][0]["shape"] == ["batch", 1000]
    assert m["graph"]["ops"].get("Conv") == 53 and m["graph"]["batchnorm_folded"]
    assert m["preprocess"]["resize"] == 256 and m["preprocess"]["crop"] == 224
    p4 = m["parity"]["batches"]["4"]
    assert p4["max_abs_error"] < 1e-3 and p4["top1_agreement"] == 1.0 and p4["reference_logit_std"] > 1.0
    x = synthetic_images(2, 224, seed=5, stream=7).numpy()
    assert _ort(res.model_path, x).shape == (2, 1000)


# --- bad input: one clear error, nothing written -----------------------------------------------------
def _nothing_written(parent: Path, allowed: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    assert {p.name for p in parent.iterdir()} <= set(allowed)


@pytest.mark.parametrize(
    ("model", "cfg", "match"),
    [
        ("resnet05", ExportConfig(), "unknown model 'resnet05' .*did you mean"),
        ("resnet20", ExportConfig(opset=9), "unsupported opset 9"),
        ("resnet20", ExportConfig(opset=17, exporter="dynamo"), "dynamo exporter emits opset 18"),
        ("resnet20", ExportConfig(input_size=0), "--input-size must be a positive integer"),
        ("resnet20", ExportConfig(batch=0), "--batch takes 'dynamic' or a positive integer"),
        ("resnet20", ExportConfig(batch="many"), "--batch takes 'dynamic' or a positive integer"),
        ("resnet20", ExportConfig(parity_batch=1), "parity batch must be an integer >= 2"),
        ("resnet20", ExportConfig(exporter="magic"), "unknown exporter 'magic'"),
    ],
)
def test_bad_settings(tmp_path: Path, model: str, cfg: ExportConfig, match: str) -> None:
    with pytest.raises(ResdeployError, match=match) as err:
        export(model, tmp_path / "out", cfg)
    assert err.value.exit_code == 2
    _nothing_written(tmp_path)


def test_existing_output_needs_force(resnet20_artifact: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(resnet20_artifact, out)
    before = artifacts.sha256_file(out / "model.onnx")
    with pytest.raises(ResdeployError, match="already exists; pass --force"):
        export("resnet20", out, ExportConfig(seed=2))
    assert artifacts.sha256_file(out / "model.onnx") == before
    _nothing_written(tmp_path, {"copy"})


def test_unwritable_output_and_bad_weights_write_nothing(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ResdeployError, match="cannot write to"):
        export("resnet20", tmp_path / "a_file" / "out")
    weights = tmp_path / "r32.pth"
    torch.save(MODELS["resnet32"](10).state_dict(), weights)
    with pytest.raises(ResdeployError, match="do not fit resnet20: .*unexpected"):
        export("resnet20", tmp_path / "out", weights=weights)
    (tmp_path / "broken.safetensors").write_bytes(b"garbage")
    with pytest.raises(ResdeployError, match="cannot read .* as safetensors"):
        export("resnet20", tmp_path / "new" / "dirs" / "out", weights=tmp_path / "broken.safetensors")
    _nothing_written(tmp_path, {"a_file", "r32.pth", "broken.safetensors"})


def test_spec_input_size_is_pinned_in_manifest(tmp_path: Path) -> None:
    """The random init's calibration depends on the input size, so the manifest pins it."""
    res = export(ModelSpec("resnet20", seed=4), tmp_path / "o", ExportConfig(input_size=40, opset=17))
    spec = res.manifest["model"]["spec"]
    assert spec["input_size"] == 40 and spec["seed"] == 4
    assert res.manifest["inputs"][0]["shape"] == ["batch", 3, 40, 40]


@pytest.mark.slow
def test_large_models_use_external_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over ~2 GB of weights, initializers go to model.onnx.data; the threshold is lowered here
    so a small model takes the same path (checker, shape inference, ORT and the manifest)."""
    import resdeploy.exporter as exporter

    monkeypatch.setattr(exporter, "EXTERNAL_DATA_THRESHOLD", 0)
    res = export("resnet20", tmp_path / "ext")
    assert res.passed
    files = sorted(p.name for p in (tmp_path / "ext").iterdir())
    assert files == ["manifest.json", "model.onnx", "model.onnx.data"]
    ext = res.manifest["artifact"]["external_data"]
    assert [e["file"] for e in ext] == ["model.onnx.data"]
    assert ext[0]["sha256"] == artifacts.sha256_file(tmp_path / "ext" / "model.onnx.data")
    assert (tmp_path / "ext" / "model.onnx").stat().st_size < ext[0]["bytes"]


def test_artifact_permissions_follow_umask(resnet20_artifact: Path) -> None:
    import os
    import stat

    mask = os.umask(0)
    os.umask(mask)
    for p in [resnet20_artifact, *resnet20_artifact.iterdir()]:
        mode = stat.S_IMODE(p.stat().st_mode)
        want = (0o777 if p.is_dir() else 0o666) & ~mask
        assert mode == want, (p, oct(mode))


def test_exporter_errors_one_clean_line_and_ctrl_c_stays_an_abort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from resdeploy.exporter import export_onnx

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1))

    def interrupted(*args: object, **kwargs: object) -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:  # what torch.export does with a Ctrl-C mid-trace
            raise RuntimeError("Failed to export the model with torch.export.") from exc

    monkeypatch.setattr(torch.onnx, "export", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(model, tmp_path / "m.onnx", input_size=8, opset=18, batch=None, exporter="dynamo")

    def coloured(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Failed to export. \x1b[96mThis is step 1/3\x1b[0m of exporting")

    monkeypatch.setattr(torch.onnx, "export", coloured)
    with pytest.raises(ResdeployError, match=r"failed: Failed to export. This is step 1/3 of exporting \(try") as err:
        export_onnx(model, tmp_path / "m.onnx", input_size=8, opset=18, batch=None, exporter="dynamo")
    assert "\x1b" not in str(err.value)


def test_custom_models_that_do_not_fit_are_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "odd_nets.py").write_text(
        "import torch\n"
        "def gray(num_classes=3):  # takes 1-channel input\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),\n"
        "                               torch.nn.Linear(4, num_classes))\n"
        "def spatial(num_classes=3):  # a segmentation-style [N, C, H, W] output, not logits\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(3, num_classes, 3), torch.nn.BatchNorm2d(num_classes))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ResdeployError, match=r"odd_nets:gray does not run on a \[N, 3, 8, 8\] float input"):
        export("odd_nets:gray", tmp_path / "g", ExportConfig(input_size=8))
    with pytest.raises(ResdeployError, match=r"unexpected ONNX outputs.*'batch', 3, 6, 6\]"):
        export("odd_nets:spatial", tmp_path / "s", ExportConfig(input_size=8, opset=17))
    assert not (tmp_path / "g").exists() and not (tmp_path / "s").exists()
