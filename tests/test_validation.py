"""``validate``: references, labelled/unlabelled data, gates, JUnit, and bad input."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import resdeploy
from resdeploy.artifacts import to_json
from resdeploy.errors import ResdeployError
from resdeploy.validation import MLPERF_TOP1_RATIO, ValidateConfig, validate, write_junit

SIZE = 16
SAMPLE = Path(__file__).resolve().parent.parent / "calibration" / "sample"  # real photos


@pytest.fixture(scope="module")
def arts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from resdeploy.exporter import ExportConfig

    root = tmp_path_factory.mktemp("val")
    rng = np.random.default_rng(0)
    for cls in ("a", "b", "c"):
        for i in range(6):
            path = root / "labelled" / cls / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (18, 18, 3), dtype=np.uint8)).save(path)
    shutil.copytree(root / "labelled" / "a", root / "flat")
    fp32 = resdeploy.export("resnet20", root / "m" / "fp32", ExportConfig(input_size=SIZE)).model_path
    fp16 = resdeploy.quantize(fp32, precision="fp16").model_path
    # minmax by name: these tests are about validate and the engines reading one Q/DQ file; on a random-init
    # model and 8 noise images the default's averaged ranges clip (min cosine < 0.9 under OpenVINO).
    int8 = resdeploy.quantize(fp32, precision="int8", calib_data=str(root / "labelled"), calib_samples=8,
                              method="minmax").model_path
    return {"root": root, "labelled": root / "labelled", "flat": root / "flat", "fp32": Path(fp32),
            "fp16": Path(fp16), "int8": Path(int8)}


def test_labelled_default_gate_is_mlperf_ratio(arts: dict[str, Path]) -> None:
    r = validate(arts["fp16"], data=str(arts["labelled"]))
    assert r.labelled and r.samples == 18
    assert r.reference["kind"] == "parent" and Path(r.reference["path"]) == arts["fp32"].resolve()
    assert set(r.accuracy) == {"reference", "candidate"}
    assert [g.name for g in r.gates] == ["top1_ratio"] and r.gates[0].threshold == MLPERF_TOP1_RATIO
    ref, cand = r.accuracy["reference"]["top1"], r.accuracy["candidate"]["top1"]
    assert r.top1_drop_points == pytest.approx(100 * (ref - cand))
    assert r.parity["top1_agreement"] >= 0.9  # FP16 of a ResNet-20
    assert json.loads(to_json(r.to_dict()))["schema"] == "resdeploy.validate/1"


def test_unlabelled_default_gate_is_agreement(arts: dict[str, Path]) -> None:
    r = validate(arts["int8"], data=str(arts["flat"]))
    assert not r.labelled and r.accuracy is None and r.top1_drop_points is None
    assert [g.name for g in r.gates] == ["top1_agreement"] and r.gates[0].threshold == 0.99
    assert r.parity["samples"] == 6


def test_explicit_gates_replace_default_and_can_fail(arts: dict[str, Path]) -> None:
    r = validate(arts["int8"], data=str(arts["labelled"]),
                 config=ValidateConfig(max_abs_error=0.0, min_cosine=0.5, max_top1_drop=100.0))
    names = {g.name: g for g in r.gates}
    assert set(names) == {"max_abs_error", "cosine_min", "top1_drop_points"}
    assert not names["max_abs_error"].passed  # INT8 logits are never bit-identical
    assert names["cosine_min"].passed and names["top1_drop_points"].passed
    assert not r.passed and [g.name for g in r.failures()] == ["max_abs_error"]


def test_torch_reference_and_explicit_path(arts: dict[str, Path]) -> None:
    r = validate(arts["fp32"], reference="torch", data=str(arts["flat"]))
    assert r.reference["engine"] == "torch"
    assert r.parity["top1_agreement"] == 1.0 and r.parity["max_abs_error"] < 1e-3 and r.passed
    r2 = validate(arts["int8"], reference=str(arts["fp32"].parent), data=str(arts["flat"]), min_cosine=0.0)
    assert r2.reference["kind"] == "path" and r2.passed


def test_junit_xml(arts: dict[str, Path], tmp_path: Path) -> None:
    r = validate(arts["int8"], data=str(arts["labelled"]), max_abs_error=0.0, min_agreement=0.0)
    path = write_junit(r, tmp_path / "reports" / "validate.xml")
    root = ET.parse(path).getroot()
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {"max_abs_error", "top1_agreement"}
    assert cases["max_abs_error"].find("failure") is not None
    assert cases["top1_agreement"].find("failure") is None
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["samples"] == "18" and "reference_top1" in props


def test_labels_that_do_not_fit_the_model(arts: dict[str, Path], tmp_path: Path) -> None:
    mapping = tmp_path / "labels.json"
    mapping.write_text(json.dumps({"a": 0, "b": 1, "c": 12}))
    with pytest.raises(ResdeployError, match="class index 12, but the model has 10 classes"):
        validate(arts["int8"], data=str(arts["labelled"]), labels=str(mapping))
    many = tmp_path / "eleven"
    for i in range(11):
        shutil.copy(next(arts["flat"].iterdir()), (many / f"c{i:02d}").mkdir(parents=True) or many / f"c{i:02d}" / "x.png")
    with pytest.raises(ResdeployError, match="class index 10"):
        validate(arts["int8"], data=str(many))


def test_label_mapping_warning_is_in_the_result(arts: dict[str, Path]) -> None:
    # --json consumers (CI) must see that 3 folders were numbered 0..2 for a 10-class model.
    r = validate(arts["fp16"], data=str(arts["labelled"]))
    assert any("3 class folders for a 10-class model" in w for w in r.warnings)
    assert any("class folders" in w for w in r.to_dict()["warnings"])


def test_bad_input(arts: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import resdeploy.runners

    with monkeypatch.context() as m:  # refused before either model runs
        m.setattr(resdeploy.runners, "create_runner", lambda *a, **k: pytest.fail("ran the models first"))
        with pytest.raises(ResdeployError, match="--max-top1-drop needs labelled data"):
            validate(arts["int8"], data=str(arts["flat"]), max_top1_drop=1.0)
    with pytest.raises(ResdeployError, match="no such candidate"):
        validate(tmp_path / "nope.onnx", data=str(arts["flat"]))
    junk = tmp_path / "junk" / "model.onnx"
    junk.parent.mkdir()
    junk.write_text("not a model")
    with pytest.raises(ResdeployError, match="not a readable ONNX model"):
        validate(junk, data=str(arts["flat"]), reference=str(arts["fp32"]))
    with pytest.raises(ResdeployError, match="needs data"):
        validate(arts["int8"])
    with pytest.raises(ResdeployError, match="no FP32 parent"):
        validate(arts["fp32"], data=str(arts["flat"]))
    bare = tmp_path / "bare" / "model.onnx"
    bare.parent.mkdir()
    shutil.copy(arts["int8"], bare)
    # No manifest: the graph fixes the size, so no flag is needed; a contradicting one is refused.
    assert validate(bare, data=str(arts["flat"]), reference=str(arts["fp32"]), min_agreement=0.0).samples == 6
    with pytest.raises(ResdeployError, match="does not match"):
        validate(bare, data=str(arts["flat"]), reference=str(arts["fp32"]), input_size=SIZE + 8)
    ok = validate(bare, data=str(arts["flat"]), reference=str(arts["fp32"]), input_size=SIZE, resize=SIZE,
                  min_agreement=0.0)
    assert ok.samples == 6
    moved = tmp_path / "moved"
    shutil.copytree(arts["int8"].parent, moved)
    (moved / "manifest.json").write_text((moved / "manifest.json").read_text().replace(
        str(arts["fp32"].resolve()), "/gone/model.onnx"))
    shutil.copytree(moved, tmp_path / "x" / "y" / "int8")  # relative parent path no longer resolves
    with pytest.raises(ResdeployError, match="is gone"):
        validate(tmp_path / "x" / "y" / "int8", data=str(arts["flat"]))


@pytest.mark.openvino
def test_same_int8_file_validates_under_openvino(arts: dict[str, Path]) -> None:
    r = validate(arts["int8"], data=str(arts["labelled"]), engine="openvino", min_cosine=0.9)
    assert r.candidate["engine"] == "openvino" and r.samples == 18 and r.passed


# ------------------------------------------------------------------------------------------
# What users pass: manifest.json, odd files, real folders with bad files, few classes
# ------------------------------------------------------------------------------------------
def test_manifest_json_means_its_artifact(arts: dict[str, Path]) -> None:
    # Used to reach ONNX Runtime as a model: "INVALID_PROTOBUF ... manifest.json failed".
    r = validate(arts["int8"].parent / "manifest.json", data=str(arts["flat"]),
                 reference=str(arts["fp32"].parent / "manifest.json"), min_cosine=0.0)
    assert Path(r.candidate["path"]) == arts["int8"] and Path(r.reference["path"]) == arts["fp32"]
    assert r.samples == 6 and r.passed


def test_files_that_are_not_models_get_one_line(arts: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "results.json"
    other.write_text("{}")
    with pytest.raises(ResdeployError, match="is a JSON file, not a model"):
        validate(other, data=str(arts["flat"]))
    fake_manifest = tmp_path / "fake" / "manifest.json"
    fake_manifest.parent.mkdir()
    fake_manifest.write_text('{"hello": 1}')
    with pytest.raises(ResdeployError, match="not a resdeploy manifest"):
        validate(fake_manifest, data=str(arts["flat"]))
    weights = tmp_path / "resnet.pth"
    weights.write_bytes(b"PK\x03\x04 torch zip")
    with pytest.raises(ResdeployError, match="not a readable ONNX model"):
        validate(weights, data=str(arts["flat"]), reference=str(arts["fp32"]), input_size=SIZE)
    with pytest.raises(ResdeployError, match=r"no model.onnx in .*\(pass one of its artifact directories: fp16, fp32, int8-cpu\)"):
        validate(arts["fp32"].parent.parent, data=str(arts["flat"]))
    with pytest.raises(ResdeployError, match="is a JSON file, not a model"):
        validate(arts["int8"], data=str(arts["flat"]), reference=str(other))


def test_corrupt_and_stray_files_are_counted_in_the_result(arts: dict[str, Path], tmp_path: Path) -> None:
    data = tmp_path / "val"
    shutil.copytree(arts["labelled"], data)
    (data / "b" / "broken.png").write_bytes((data / "b" / "0.png").read_bytes()[:40])  # truncated PNG
    (data / "c" / "notes.png").write_text("not an image")
    (data / "README.txt").write_text("validation set")
    (data / "a" / ".DS_Store").write_bytes(b"\0")
    r = validate(arts["fp16"], data=str(data))
    assert r.samples == 18 and r.skipped_files == 2  # 18 images counted, 2 bad ones named, not silently dropped
    d = json.loads(to_json(r.to_dict()))
    assert d["skipped_files"] == 2 and d["data"]["skipped_files"] == 2
    assert {s["file"] for s in d["data"]["skipped"]} == {"b/broken.png", "c/notes.png"}
    assert d["data"]["unsupported_files"] == 1 and d["data"]["unsupported"] == ["README.txt"]
    assert any("over the 18 samples that loaded: 2 file(s)" in w for w in d["warnings"])
    assert any("skipped 2 file(s)" in w and "b/broken.png" in w for w in d["warnings"])


def test_one_class_folder_and_empty_classes_are_explained(arts: dict[str, Path], tmp_path: Path) -> None:
    one = tmp_path / "one"
    shutil.copytree(arts["flat"], one / "images")  # a flat folder one level down: labelled "class 0"
    r = validate(arts["fp16"], data=str(one), min_agreement=0.0)  # agreement only: a random net's top-1 is no gate
    assert r.labelled and any("only one class folder ('images')" in w for w in r.warnings)
    gap = tmp_path / "gap"
    shutil.copytree(arts["labelled"], gap)
    shutil.rmtree(gap / "b")
    (gap / "b").mkdir()
    r = validate(arts["fp16"], data=str(gap), min_agreement=0.0)
    assert r.samples == 12 and r.data["empty_classes"] == ["b"]
    assert any("hold no images: b" in w for w in r.warnings)


def test_unlabelled_data_refuses_accuracy_gates(arts: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ResdeployError, match="--min-top1-ratio needs labelled data"):
        validate(arts["int8"], data=str(arts["flat"]), min_top1_ratio=0.99)
    x = np.random.default_rng(0).integers(0, 256, (4, 18, 18, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", images=x, labels=np.array([0, 1, 2, 10]))
    with pytest.raises(ResdeployError, match=r"labels in .*d\.npz gives class index 10, but the model has 10 classes"):
        validate(arts["int8"], data=str(tmp_path / "d.npz"))


def _few_class_model(path: Path, classes: int, constant: bool) -> Path:
    """A tiny ONNX classifier with ``classes`` outputs; all-zero logits (every class tied) if ``constant``."""
    import warnings

    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, classes)).eval()
    if constant:
        torch.nn.init.zeros_(net[2].weight)
        torch.nn.init.zeros_(net[2].bias)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (torch.randn(1, 3, SIZE, SIZE),), str(path), input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          dynamo=False)
    return path


def test_three_class_model_ties_and_top5(arts: dict[str, Path], tmp_path: Path) -> None:
    flat = _few_class_model(tmp_path / "flat" / "model.onnx", 3, constant=True)
    r = validate(flat, data=str(arts["labelled"]), reference=str(flat), input_size=SIZE, resize=SIZE)
    # Every logit tied: the prediction is class 0 (argmax's rule) for every image, so exactly the
    # 6 images of class "a" (index 0) are right, for both models, and they agree everywhere.
    assert r.accuracy == {"reference": {"top1": pytest.approx(1 / 3), "top5": 1.0},
                          "candidate": {"top1": pytest.approx(1 / 3), "top5": 1.0}}
    assert r.parity["top1_agreement"] == 1.0 and r.passed
    assert any("3 outputs: top-5 accuracy is 100% by definition" in w for w in r.warnings)
    four = _few_class_model(tmp_path / "four" / "model.onnx", 2, constant=False)
    with pytest.raises(ResdeployError, match="class index 2, but the model has 2 classes"):
        validate(four, data=str(arts["labelled"]), reference=str(four), input_size=SIZE, resize=SIZE)


def test_cli_json_with_manifest_path_and_skipped_files(arts: dict[str, Path], tmp_path: Path) -> None:
    from conftest import run_cli

    data = tmp_path / "val"
    shutil.copytree(arts["labelled"], data)
    (data / "a" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code, out, err = run_cli("validate", str(arts["fp16"].parent / "manifest.json"), "--data", str(data), "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["skipped_files"] == 1 and res["data"]["skipped"][0]["file"] == "a/bad.png" and res["samples"] == 18
    assert "a/bad.png" in err and "not counted" in err and "Traceback" not in err


def test_a_uint8_pixel_model_against_a_float_reference_is_refused(tmp_path: Path) -> None:
    """One preprocessing feeds both sides: uint8 pixels for one and normalised floats for the other cannot both be right."""
    import torch
    from conftest import uint8_pixel_net

    net = uint8_pixel_net()
    pixels, floats = tmp_path / "pixels.onnx", tmp_path / "floats.onnx"
    for module, example, path in ((net, torch.zeros(1, 3, 18, 18, dtype=torch.uint8), pixels),
                                  (torch.nn.Sequential(net.conv, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                                       net.fc), torch.zeros(1, 3, 18, 18), floats)):
        torch.onnx.export(module.eval(), (example,), str(path), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "b"}, "y": {0: "b"}}, dynamo=False)
    data = tmp_path / "imgs"
    data.mkdir()
    for i in range(4):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (18, 18, 3), dtype=np.uint8)).save(data / f"{i}.png")
    with pytest.raises(ResdeployError, match="takes uint8 input and the reference .* takes float32"):
        validate(pixels, reference=str(floats), data=str(data))
    with pytest.raises(ResdeployError, match="takes float32 input and the reference .* takes uint8"):
        validate(floats, reference=str(pixels), data=str(data))
    assert validate(pixels, reference=str(pixels), data=str(data)).samples == 4  # same input kind: runs


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter, the fast one
def test_a_reference_taking_other_channels_or_size_is_refused_naming_both(tiny_onnx, tmp_path: Path) -> None:  # noqa: ANN001
    import torch
    from conftest import nhwc_wrapper

    model, net = tiny_onnx  # 3x32x32
    gray = tmp_path / "gray.onnx"
    torch.onnx.export(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                          torch.nn.Linear(4, 10)).eval(), (torch.zeros(1, 1, 28, 28),), str(gray),
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "b"}, "y": {0: "b"}}, dynamo=False)
    with pytest.raises(ResdeployError, match=r"takes 1x28x28 .* the reference .* takes 3x32x32: they are not the same"):
        validate(gray, reference=str(model), data=str(SAMPLE))  # was: the reference's shape error, naming --layout
    nhwc = tmp_path / "nhwc.onnx"  # the same network channels-last: same channels and size, so it runs
    torch.onnx.export(nhwc_wrapper(net), (torch.zeros(1, 32, 32, 3),), str(nhwc), input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "b"}, "y": {0: "b"}}, dynamo=False)
    assert validate(nhwc, reference=str(model), data=str(SAMPLE), samples=4).parity["max_abs_error"] < 1e-4
