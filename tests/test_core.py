"""The shared core: artifacts, errors, compare metrics, CLI error handling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from resdeploy import artifacts, compare
from resdeploy.errors import ResdeployError


def test_atomic_dir_keeps_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with artifacts.atomic_dir(target) as d:
            (d / "model.onnx").write_bytes(b"partial")
            raise RuntimeError("boom")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_refuses_existing_without_force(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old").write_text("x")
    with pytest.raises(ResdeployError, match="--force"):
        with artifacts.atomic_dir(target):
            pass
    with artifacts.atomic_dir(target, force=True) as d:
        (d / "new").write_text("y")
    assert sorted(p.name for p in target.iterdir()) == ["new"]


def test_manifest_round_trip_and_schema_check(tmp_path: Path) -> None:
    artifacts.write_manifest(tmp_path, {"stage": "export", "x": float("nan")})
    m = artifacts.read_manifest(tmp_path / "model.onnx")
    assert m is not None and m["stage"] == "export" and m["x"] is None
    (tmp_path / "manifest.json").write_text(json.dumps({"schema": "other/1"}))
    with pytest.raises(ResdeployError, match="not a resdeploy manifest"):
        artifacts.read_manifest(tmp_path)


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    import hashlib

    p = tmp_path / "f.bin"
    data = np.random.default_rng(0).bytes(3 << 20)
    p.write_bytes(data)
    assert artifacts.sha256_file(p) == hashlib.sha256(data).hexdigest()


def test_parity_metrics_detect_a_flipped_prediction() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(8, 10))
    same = compare.parity_metrics(ref, ref.copy())
    assert same.max_abs_error == 0 and same.top1_agreement == 1.0 and same.cosine_min == pytest.approx(1.0)
    assert compare.ParityTolerances().failures(same) == []
    cand = ref.copy()
    i = int(np.argmax(cand[0]))
    cand[0, i] -= 100.0
    m = compare.parity_metrics(ref, cand)
    assert m.top1_agreement == pytest.approx(7 / 8)
    assert any("top-1" in f for f in compare.ParityTolerances().failures(m))


def test_topk_accuracy() -> None:
    logits = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]])
    labels = np.array([1, 1, 2])
    assert compare.topk_accuracy(logits, labels, 1) == pytest.approx(2 / 3)
    assert compare.topk_accuracy(logits, labels, 2) == pytest.approx(1.0)


def test_resolve_artifact_accepts_the_manifest_users_paste(tmp_path: Path) -> None:
    from resdeploy.resolve import resolve_artifact

    (tmp_path / "model.onnx").write_bytes(b"x")
    artifacts.write_manifest(tmp_path, {"stage": "export", "precision": "fp32"})
    assert resolve_artifact(tmp_path / "manifest.json").path == tmp_path / "model.onnx"
    assert resolve_artifact(tmp_path).path == tmp_path / "model.onnx"
    with pytest.raises(ResdeployError, match="no such file"):
        resolve_artifact(tmp_path / "missing")
    (tmp_path / "resnet50" / "fp32").mkdir(parents=True)
    (tmp_path / "resnet50" / "fp32" / "model.onnx").write_bytes(b"x")
    with pytest.raises(ResdeployError, match="pass one of its artifact directories: fp32"):
        resolve_artifact(tmp_path / "resnet50")  # the model's folder, not a variant's
    (tmp_path / "zoo").mkdir()
    for name in ("resnet50-v1-12.onnx", "resnet18-v1-7.onnx"):
        (tmp_path / "zoo" / name).write_bytes(b"x")
    with pytest.raises(ResdeployError, match=r"pass one of its ONNX files: .*zoo/resnet18-v1-7.onnx, .*zoo/resnet50"):
        resolve_artifact(tmp_path / "zoo", role="candidate")  # a folder of foreign models, without model.onnx
    (tmp_path / "model.onnx").write_bytes(b"")  # an interrupted copy
    with pytest.raises(ResdeployError, match=r"is empty \(0 bytes\)"):
        resolve_artifact(tmp_path, verify=False)


def test_is_model_path_tells_names_from_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from resdeploy.artifacts import is_model_path

    monkeypatch.chdir(tmp_path)
    for name in ("resnet50", "timm:resnet50.a1_in1k", "my_pkg.models:build", "torchvision:resnet18"):
        assert not is_model_path(name), name
    for path in ("model.onnx", "artifacts/resnet50", "./x:y.onnx", "dir/pkg:f"):
        assert is_model_path(path), path
    (tmp_path / "resnet50").mkdir()  # an existing folder wins over the zoo name
    assert is_model_path("resnet50")
