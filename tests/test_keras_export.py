"""``resdeploy export keras:PATH`` (resdeploy/keras_export.py) on a small Keras ResNet built here.

The model is a real ``keras.Model`` (three residual blocks, 32x32 NHWC input, BatchNorm
with non-trivial statistics so folding it matters), saved as ``.keras`` and as a SavedModel
the way users save theirs; it goes through the CLI, then ONNX Runtime, quantize, validate
and bench. Where tensorflow/tf2onnx are absent these tests skip, except under
``RESDEPLOY_REQUIRE_KERAS=1`` (.ci/run sets it: CI installs the extra and must run them).
The bad-input tests that need no TensorFlow run everywhere.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import one_line_error, run_cli

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "calibration" / "sample"  # real photos, shipped with the project
SIZE, CLASSES = 32, 10


def _require_keras() -> None:
    missing = [m for m in ("tensorflow", "tf2onnx") if importlib.util.find_spec(m) is None]
    if missing:
        if os.environ.get("RESDEPLOY_REQUIRE_KERAS") == "1":
            pytest.fail(f"{', '.join(missing)} not installed, and RESDEPLOY_REQUIRE_KERAS=1 (CI) needs them "
                        "(make setup installs the [keras] extra)")
        pytest.skip(f"{', '.join(missing)} not installed (pip install 'resdeploy[keras]')")


def _nothing_written(parent: Path) -> None:
    """No output and no temporary sibling left behind."""
    assert not parent.exists() or not any(parent.iterdir()), list(parent.iterdir())


def _tiny_keras_resnet() -> Any:
    """Stem + three residual blocks (16, 32, 64 channels) + global pooling + a 10-way classifier."""
    import keras

    def block(x: Any, filters: int, stride: int) -> Any:
        shortcut = x
        y = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
        y = keras.layers.ReLU()(keras.layers.BatchNormalization()(y))
        y = keras.layers.BatchNormalization()(keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(y))
        if stride != 1 or shortcut.shape[-1] != filters:
            shortcut = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False)(shortcut)
            shortcut = keras.layers.BatchNormalization()(shortcut)
        return keras.layers.ReLU()(keras.layers.Add()([y, shortcut]))

    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    for filters, stride in ((16, 1), (32, 2), (64, 2)):
        x = block(x, filters, stride)
    outputs = keras.layers.Dense(CLASSES)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs, name="tiny_resnet")
    rng = np.random.default_rng(0)
    for layer in model.layers:  # trained-looking BatchNorm: folding it into the convs must be right
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n), rng.normal(0, 20.0, n),
                               rng.uniform(100.0, 2000.0, n)])
    return model


@pytest.fixture(scope="module")
def keras_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    _require_keras()
    from resdeploy.keras_export import _import_tensorflow

    _import_tensorflow()  # sets the backend and quiets TensorFlow, as the export does
    root = tmp_path_factory.mktemp("keras")
    model = _tiny_keras_resnet()
    model.save(root / "tiny_resnet.keras")
    model.export(str(root / "tiny_saved"), format="tf_saved_model", verbose=False)
    return {"model": model, "keras": root / "tiny_resnet.keras", "savedmodel": root / "tiny_saved", "root": root}


@pytest.fixture(scope="module")
def exported(keras_models: dict[str, Any]) -> dict[str, Any]:
    out = keras_models["root"] / "artifacts" / "tiny_resnet" / "fp32"
    code, stdout, err = run_cli("export", f"keras:{keras_models['keras']}", "-o", str(out), "--preprocess-in-graph",
                                "--json")
    assert code == 0, err
    return json.loads(stdout)


@pytest.mark.slow
def test_export_passes_parity_and_records_nhwc_size_and_preprocessing(exported: dict[str, Any]) -> None:
    assert exported["passed"] is True
    m = exported["manifest"]
    assert m["schema"] == "resdeploy.manifest/2" and m["stage"] == "export" and m["precision"] == "fp32"
    assert m["inputs"] == [{"name": "input", "shape": ["batch", SIZE, SIZE, 3], "dtype": "float32"}]
    assert m["outputs"] == [{"name": "logits", "shape": ["batch", CLASSES], "dtype": "float32"}]
    assert m["dynamic_axes"] == {"input": {"0": "batch"}, "logits": {"0": "batch"}}
    assert m["graph"]["batchnorm_folded"] and m["exporter"]["name"] == "tf2onnx"
    pre = m["preprocess"]  # the default preset: caffe, as keras.applications ResNets
    assert pre["layout"] == "NHWC" and pre["crop"] == SIZE and pre["color"] == "BGR" and pre["scale"] == 1.0
    assert pre["mean"] == [103.939, 116.779, 123.68] and pre["extra"] == {"preset": "caffe"}
    assert m["settings"]["layout"] == "NHWC" and m["settings"]["input_size"] == SIZE
    assert m["settings"]["preprocess"] == "caffe" and m["settings"]["num_classes"] == CLASSES
    assert m["model"]["source"] == "keras" and m["model"]["name"] == "tiny_resnet"
    assert len(m["model"]["weights"]["sha256"]) == 64
    p = m["parity"]
    assert p["passed"] and p["failures"] == [] and set(p["batches"]) == {"1", "4"}
    tol = p["tolerances"]
    for b in p["batches"].values():  # FP32 against FP32: within the export gate, and by far
        assert b["samples"] in (1, 4) and b["max_abs_error"] <= tol["max_abs_error"] / 100
        assert b["max_rel_error"] <= tol["max_rel_error"] and b["top1_agreement"] == 1.0
    # the inputs are image-like in the model's own (caffe) range: logits of a few units, not near zero
    assert p["overall"]["reference_logit_std"] > 0.5 and p["inputs"]["count"] == 5
    # --preprocess-in-graph: caffe's BGR, 0-255 minus the mean, NHWC, as ONNX ops in front of the model
    raw = exported["preprocess_in_graph"]
    assert raw["parity"]["passed"] and raw["parity"]["max_abs_diff"] <= raw["parity"]["bound"]
    assert raw["manifest"]["inputs"][0]["dtype"] == "uint8" and Path(raw["path"]).is_file()


@pytest.mark.slow
def test_onnx_runtime_matches_keras_on_other_inputs_and_batch_sizes(keras_models: dict[str, Any],
                                                                    exported: dict[str, Any]) -> None:
    import onnxruntime as ort

    from resdeploy.compare import parity_metrics

    x = np.random.default_rng(7).uniform(-120.0, 130.0, (3, SIZE, SIZE, 3)).astype(np.float32)  # caffe range
    sess = ort.InferenceSession(exported["model_path"], providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {"input": x})[0]
    want = keras_models["model"](x, training=False).numpy()
    m = parity_metrics(want, got)
    assert got.shape == (3, CLASSES) and m.max_rel_error < 1e-4 and m.top1_agreement == 1.0, m


@pytest.mark.slow
def test_the_artifact_quantizes_validates_and_benches_like_any_other(exported: dict[str, Any]) -> None:
    fp32 = Path(exported["model_path"]).parent
    code, out, err = run_cli("quantize", str(fp32), "--precision", "int8", "--calib-data", str(SAMPLE),
                             "--calib-samples", "16", "--json")
    assert code == 0, err
    q = json.loads(out)
    assert q["output_dir"] == str(fp32.parent / "int8-cpu")  # beside fp32, as for a PyTorch export
    assert q["manifest"]["preprocess"]["layout"] == "NHWC" and q["manifest"]["inputs"][0]["shape"][1:] == [32, 32, 3]
    assert q["manifest"]["precision"] == "int8"
    code, out, err = run_cli("validate", q["output_dir"], "--data", str(SAMPLE), "--json")
    assert code in (0, 1), err  # a random-init net need not pass the gate; it must measure
    v = json.loads(out)
    assert v["samples"] == 32 and all(g["samples"] == 32 for g in v["gates"])
    assert v["parity"]["cosine_mean"] > 0.9  # INT8 of the caffe-range model, calibrated in that range
    code, out, err = run_cli("bench", q["output_dir"], "--engine", "ort", "--batch", "2", "-n", "2",
                             "--duration", "0", "--json")
    assert code == 0, err
    assert json.loads(out)["runs"][0]["input_shape"] == [2, SIZE, SIZE, 3]
    code, out, err = run_cli("bench", str(fp32), "--engine", "torch", "-n", "2", "--duration", "0")
    one_line_error(code, out, err, "exported from a Keras model", "--engine ort")
    code, out, err = run_cli("validate", str(fp32), "--data", str(SAMPLE))  # the FP32 export has no parent
    one_line_error(code, out, err, "no FP32 parent", "Keras export has no PyTorch model")


@pytest.mark.slow
def test_savedmodel_with_tf_preset_and_fixed_batch(keras_models: dict[str, Any], tmp_path: Path) -> None:
    import resdeploy
    from resdeploy.exporter import ExportConfig

    res = resdeploy.export(f"keras:{keras_models['savedmodel']}", ExportConfig(batch=2, preprocess="tf"),
                           output_dir=tmp_path / "sm")
    m = res.manifest
    assert res.passed and m["model"]["format"] == "savedmodel" and m["model"]["name"] == "tiny_saved"
    assert m["inputs"][0]["shape"] == [2, SIZE, SIZE, 3] and m["outputs"][0]["shape"] == [2, CLASSES]
    assert list(m["parity"]["batches"]) == ["2"] and m["dynamic_axes"] == {}
    assert list(m["preprocess"]["mean"]) == [0.5, 0.5, 0.5] and m["preprocess"]["color"] == "RGB"
    assert m["settings"]["preprocess"] == "tf" and m["model"]["weights"]["files"] >= 2


@pytest.mark.slow
def test_not_a_single_input_classifier_is_one_line_and_writes_nothing(keras_models: dict[str, Any],
                                                                      tmp_path: Path) -> None:
    import keras

    a, b = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    two = keras.Model([a, b], keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(
        keras.layers.Concatenate()([a, b]))))
    two.save(tmp_path / "two.keras")
    out = tmp_path / "out"
    code, stdout, err = run_cli("export", f"keras:{tmp_path / 'two.keras'}", "-o", str(out / "fp32"))
    one_line_error(code, stdout, err, "has 2 inputs", "single-input")
    _nothing_written(out)
    gray = keras.Model(c := keras.Input((8, 8, 1)), keras.layers.Dense(2)(keras.layers.Flatten()(c)))
    gray.save(tmp_path / "gray.keras")
    code, stdout, err = run_cli("export", f"keras:{tmp_path / 'gray.keras'}", "-o", str(out / "fp32"))
    one_line_error(code, stdout, err, "1-channel images")
    _nothing_written(out)


# --- bad input that needs no TensorFlow: these run everywhere -----------------------------------------
def test_paths_that_are_not_keras_models_are_one_line(tmp_path: Path) -> None:
    text = tmp_path / "notes.keras"
    text.write_text("not a zip")
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "model.pt").write_bytes(b"\0")
    out = tmp_path / "out"
    for source, words in ((f"keras:{tmp_path / 'missing.keras'}", ("no such Keras model",)),
                          (f"keras:{text}", ("is not a Keras model", "zip")),
                          (f"keras:{tmp_path / 'empty_dir'}", ("without saved_model.pb",)),
                          (f"keras:{tmp_path / 'model.pt'}", ("not a Keras model file",)),
                          ("keras:", ("needs a path",))):
        code, stdout, err = run_cli("export", source, "-o", str(out / "fp32"))
        one_line_error(code, stdout, err, *words)
    _nothing_written(out)


def test_flags_that_do_not_apply_are_one_line(tmp_path: Path) -> None:
    archive = tmp_path / "m.keras"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("config.json", "{}")
    out = tmp_path / "out"
    for args, words in ((("--weights", str(archive)), ("--weights and --num-classes do not apply",)),
                        (("--exporter", "dynamo"), ("keras:PATH converts with tf2onnx",)),
                        (("--preprocess", "bgr"), ("unknown --preprocess 'bgr'",)),
                        (("--opset", "20"), ("--opset 13..18",))):
        code, stdout, err = run_cli("export", f"keras:{archive}", "-o", str(out / "fp32"), *args)
        one_line_error(code, stdout, err, *words)
    code, stdout, err = run_cli("export", "resnet20", "--preprocess", "caffe", "-o", str(out / "r20"))
    one_line_error(code, stdout, err, "--preprocess applies to keras:PATH")
    _nothing_written(out)


@pytest.mark.parametrize("absent", ["tensorflow", "tf2onnx"])
def test_a_missing_extra_names_the_install_command(absent: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "m.keras"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("config.json", "{}")
    monkeypatch.setitem(sys.modules, absent, None)  # `import absent` raises ImportError, as when not installed
    out = tmp_path / "out"
    code, stdout, err = run_cli("export", f"keras:{archive}", "-o", str(out / "fp32"))
    one_line_error(code, stdout, err, f"'{absent}'", "pip install 'resdeploy[keras]'")
    _nothing_written(out)
