"""Preprocessing as ONNX ops: parity with resdeploy.preprocess on real images, merging, precisions, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image

from resdeploy import preprocess_graph as pg
from resdeploy.errors import ResdeployError
from resdeploy.preprocess import PreprocessSpec, load_image, preprocess_image

SAMPLE = Path(__file__).resolve().parents[1] / "calibration" / "sample"


def _sample_images() -> list[Image.Image]:
    return [load_image(p) for p in sorted(SAMPLE.glob("*.jpg"))]


def _other_sizes(tmp_path: Path) -> list[Image.Image]:
    """Sample photos re-saved by PIL at other sizes and aspect ratios (portrait, panorama, small, odd)."""
    photos = _sample_images()
    sizes = [(500, 375), (375, 500), (641, 479), (1000, 250), (257, 611), (180, 120), (224, 224)]
    out = []
    for i, size in enumerate(sizes):
        p = tmp_path / f"resized_{i}.png"
        photos[i * 4 % len(photos)].resize(size, Image.Resampling.BICUBIC).save(p)
        out.append(load_image(p))
    return out


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("spec, bound", [
    (PreprocessSpec(), 0.03),  # ImageNet 256 -> 224, bilinear
    (PreprocessSpec(resize=37, crop=32), 0.03),
    (PreprocessSpec(color="BGR", layout="NHWC"), 0.03),
    (PreprocessSpec(resize=16, crop=16), 0.03),  # no crop: the resized image's borders are all kept
    (PreprocessSpec(resize=224, crop=224), 0.03),
])
def test_parity_with_python_preprocessing_on_real_images(spec: PreprocessSpec, bound: float, tmp_path: Path) -> None:
    """PIL renormalises its filter at the borders (Resize's exclude_outside=1): without it the border pixels
    were up to 9 8-bit steps off, hidden at 256 -> 224 because the crop drops them."""
    images = _sample_images() + _other_sizes(tmp_path) + pg.check_images(8)
    report = pg.preprocessing_parity(pg.preprocess_model(spec), spec, images)
    print(f"in-graph vs Python preprocessing ({spec.interpolation}, {spec.resize}->{spec.crop}): "
          f"max |diff| {report.max_abs_diff:.4f}, mean {report.mean_abs_diff:.5f} over {report.images} images")
    assert report.images == len(images)
    assert {tuple(s) for s in report.sizes} >= {(500, 375), (1000, 250), (180, 120)}
    assert report.max_abs_diff <= bound
    assert report.mean_abs_diff < 0.005


def test_the_bound_is_the_same_number_of_8bit_steps_for_every_preset(tmp_path: Path) -> None:
    """Caffe's tensors are in pixels (0-255 minus the mean), tf's in [-1, 1]: the bound follows the unit."""
    from resdeploy.preprocess import spec_for

    assert pg.parity_bound(PreprocessSpec()) == pytest.approx(pg.PARITY_BOUND)
    images = _sample_images()[:8]
    for preset, bound in (("caffe", pg.PARITY_BOUND * 255 * 0.224), ("tf", pg.PARITY_BOUND * 2 * 0.224)):
        spec = spec_for((32, 32), preset=preset, layout="NHWC")  # as `export keras:PATH` records it
        assert spec.extra == {"preset": preset}  # a label of the recipe, not a step: expressible
        pg.check_expressible(spec)
        assert pg.parity_bound(spec) == pytest.approx(bound)
        report = pg.preprocessing_parity(pg.preprocess_model(spec), spec, images)
        assert report.passed and report.bound == pytest.approx(bound) and report.max_abs_diff > 0


def test_crop_offset_follows_python_rounding() -> None:
    """Crop excess 3 (d % 4 == 3): Python's round(1.5) = 2 starts one pixel later than floor: must match exactly."""
    spec = PreprocessSpec(resize=0, crop=4, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), scale=1.0)
    ramp = np.tile(np.arange(7, dtype=np.uint8)[None, :, None], (7, 1, 3))  # 7x7, value = column
    got = _session(pg.preprocess_model(spec)).run(None, {pg.RAW_INPUT_NAME: ramp[None]})[0][0]
    want = preprocess_image(Image.fromarray(ramp), spec)
    np.testing.assert_array_equal(got, want)
    assert got[0, 0, 0] == 2.0  # columns 2..5, as Python crops


def test_smaller_than_crop_is_padded_like_python() -> None:
    spec = PreprocessSpec(resize=0, crop=40)
    img = Image.fromarray(np.full((21, 33, 3), 200, np.uint8))
    got = _session(pg.preprocess_model(spec)).run(None, {pg.RAW_INPUT_NAME: pg.image_array(img)[None]})[0][0]
    np.testing.assert_allclose(got, preprocess_image(img, spec), atol=1e-5)


def test_merged_model_top1_agrees_on_the_sample(tiny_artifact: Path, tmp_path: Path) -> None:
    res = pg.embed_preprocessing(tiny_artifact, tmp_path / "raw")
    spec = PreprocessSpec(resize=37, crop=32)
    images = _sample_images()
    ref = ort.InferenceSession(str(tiny_artifact / "model.onnx"))
    raw = ort.InferenceSession(str(res.path))
    assert raw.get_inputs()[0].type == "tensor(uint8)"
    a = ref.run(None, {"input": np.stack([preprocess_image(i, spec) for i in images])})[0]
    b = raw.run(None, {pg.RAW_INPUT_NAME: pg.stack_images([pg.image_array(i) for i in images])})[0]
    agreement = float(np.mean(a.argmax(1) == b.argmax(1)))
    print(f"top-1 agreement {agreement:.3f}, max |logit diff| {np.abs(a - b).max():.2e}, {len(images)} images")
    assert agreement == 1.0
    assert res.parity.passed and res.parity.max_abs_diff <= pg.PARITY_BOUND
    m = res.manifest
    assert m["preprocess_in_graph"]["spec"] == spec.to_dict() and m["inputs"][0]["dtype"] == "uint8"
    assert (res.path.parent / "manifest.json").is_file()


def test_batch_of_one_size_matches_images_run_alone(tiny_artifact: Path, tmp_path: Path) -> None:
    res = pg.embed_preprocessing(tiny_artifact, tmp_path / "raw")
    sess = ort.InferenceSession(str(res.path))
    imgs = [pg.image_array(i) for i in _sample_images()[:3]]
    batch = sess.run(None, {pg.RAW_INPUT_NAME: pg.stack_images(imgs)})[0]
    alone = np.concatenate([sess.run(None, {pg.RAW_INPUT_NAME: x[None]})[0] for x in imgs])
    np.testing.assert_allclose(batch, alone, atol=1e-5)


def test_mixed_sizes_in_one_batch_are_refused() -> None:
    a, b = np.zeros((256, 256, 3), np.uint8), np.zeros((240, 320, 3), np.uint8)
    with pytest.raises(ResdeployError, match="share one size"):
        pg.stack_images([a, b])
    with pytest.raises(ResdeployError, match="uint8 RGB HWC"):
        pg.stack_images([a.astype(np.float32)])


def test_fp16_graph_keeps_preprocessing_in_fp32(tiny_artifact: Path, tmp_path: Path) -> None:
    from resdeploy.precision.fp16 import convert_fp16

    half = convert_fp16(tiny_artifact / "model.onnx", tmp_path / "fp16.onnx", fp16_io=True)
    merged = pg.merge_preprocessing(half, PreprocessSpec(resize=37, crop=32))
    pre = [n for n in merged.graph.node if n.name.startswith("preprocess_")]
    consts = [i for i in merged.graph.initializer if i.name.startswith("preprocess_")]
    assert all(i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.INT64) for i in consts)
    assert pre[0].op_type == "Cast" and pre[0].attribute[0].i == onnx.TensorProto.FLOAT
    assert pre[-1].op_type == "Cast" and pre[-1].attribute[0].i == onnx.TensorProto.FLOAT16  # only at the end
    img = pg.image_array(_sample_images()[0])[None]
    out = _session(merged).run(None, {pg.RAW_INPUT_NAME: img})[0]
    ref = _session(half).run(None, {"input": preprocess_image(_sample_images()[0], PreprocessSpec(resize=37, crop=32))[None]
                                    .astype(np.float16)})[0]
    assert out.argmax() == ref.argmax()


@pytest.mark.openvino
def test_runs_in_openvino(tiny_artifact: Path, tmp_path: Path) -> None:
    import openvino as ov

    res = pg.embed_preprocessing(tiny_artifact, tmp_path / "raw")
    compiled = ov.Core().compile_model(str(res.path), "CPU")
    sess = ort.InferenceSession(str(res.path))
    images = [pg.image_array(i) for i in _sample_images()]
    a = sess.run(None, {pg.RAW_INPUT_NAME: pg.stack_images(images)})[0]
    b = compiled(pg.stack_images(images))[0]
    print(f"OpenVINO vs ONNX Runtime on the merged model: max |logit diff| {np.abs(a - b).max():.3g}")
    assert float(np.mean(a.argmax(1) == b.argmax(1))) == 1.0


@pytest.mark.parametrize("spec, message", [
    (PreprocessSpec(interpolation="lanczos"), "cannot be expressed"),
    (PreprocessSpec(interpolation="nearest"), "cannot be expressed"),
    (PreprocessSpec(interpolation="bicubic"), "cannot be expressed"),
    (PreprocessSpec(extra={"gamma": 2.2}), "extra steps"),
])
def test_inexpressible_preprocessing_is_refused(spec: PreprocessSpec, message: str) -> None:
    with pytest.raises(ResdeployError, match=message):
        pg.preprocess_model(spec)


def test_old_opset_is_refused() -> None:
    with pytest.raises(ResdeployError, match="opset >= 18"):
        pg.preprocess_model(PreprocessSpec(), opset=17)


def test_validate_feeds_the_decoded_images(tiny_artifact: Path, tmp_path: Path) -> None:
    """validate: reference = the parent with Python preprocessing, candidate = the merged model on raw images."""
    from resdeploy.validation import validate

    res = pg.embed_preprocessing(tiny_artifact, tmp_path / "raw")
    result = validate(res.path.parent, data=str(SAMPLE), samples=16)
    assert result.samples == 16
    assert Path(result.reference["path"]).resolve() == tiny_artifact.resolve()  # the parent, from the manifest
    assert result.parity["top1_agreement"] == 1.0
    assert result.parity["max_abs_error"] < 0.05


def test_validate_refuses_tensor_data_for_in_graph_preprocessing(tiny_artifact: Path, tmp_path: Path) -> None:
    """Decoded images are what the merged model takes: synthetic tensors have no image to feed it."""
    from resdeploy.validation import validate

    res = pg.embed_preprocessing(tiny_artifact, tmp_path / "raw")
    with pytest.raises(ResdeployError, match="validates on an image folder"):
        validate(res.path.parent, data="synthetic", samples=4)


def test_embed_refuses_a_model_whose_preprocessing_is_in_the_graph(tiny_artifact: Path, tmp_path: Path) -> None:
    res = pg.embed_preprocessing(tiny_artifact, tmp_path / "raw")
    assert res.manifest["parent"]["sha256"] and res.manifest["stage"] == "preprocess-in-graph"
    with pytest.raises(ResdeployError, match="already has its preprocessing in the graph"):
        pg.embed_preprocessing(res.path.parent, tmp_path / "raw2")
    assert not (tmp_path / "raw2").exists()


def test_bench_feeds_uint8_images_at_the_resize_size(tiny_artifact: Path, tmp_path: Path) -> None:
    from resdeploy.benchmark import bench

    res = pg.embed_preprocessing(tiny_artifact, tmp_path / "raw")
    result = bench(str(res.path.parent), engines=["ort"], batches=[2], iterations=2, duration=0.0, warmup_iterations=1)
    assert result.runs[0].input_shape == [2, 37, 37, 3]


@pytest.mark.openvino
def test_openvino_resizes_without_antialias(tmp_path: Path) -> None:
    """What docs/serving.md says: OpenVINO's ONNX frontend drops Resize's antialias (so downscaling differs).

    If a new OpenVINO honours it, this fails: then update the docs (its preprocessing would match Python's).
    """
    import openvino as ov

    spec = PreprocessSpec()
    model = pg.preprocess_model(spec)
    plain = pg.preprocess_model(spec)
    for node in plain.graph.node:
        if node.op_type == "Resize":
            del node.attribute[:]
            node.attribute.extend([onnx.helper.make_attribute("mode", "linear"),
                                   onnx.helper.make_attribute("axes", [1, 2]),
                                   onnx.helper.make_attribute("coordinate_transformation_mode", "half_pixel")])
    core = ov.Core()
    compiled = core.compile_model(core.read_model(model.SerializeToString(), b""), "CPU")
    img = _other_sizes(tmp_path)[0]  # 500x375 -> shorter side 256: a real downscale
    x = pg.image_array(img)[None]
    got = compiled(x)[0][0]
    no_antialias = _session(plain).run(None, {pg.RAW_INPUT_NAME: x})[0][0]
    vs_python = float(np.abs(got - preprocess_image(img, spec)).max())
    print(f"OpenVINO vs Python preprocessing on a 500x375 photo: max |diff| {vs_python:.3f}")
    np.testing.assert_allclose(got, no_antialias, atol=1e-4)
    assert vs_python > pg.PARITY_BOUND


def test_embed_carries_the_class_names(tiny_artifact: Path, tmp_path: Path) -> None:
    import shutil

    from resdeploy import artifacts

    src = tmp_path / "named"
    shutil.copytree(tiny_artifact, src)
    m = artifacts.load_manifest(src, required=True)
    assert m is not None
    m.classes = [f"class {i}" for i in range(10)]
    m.write(src)
    res = pg.embed_preprocessing(src, tmp_path / "raw")
    assert res.manifest["classes"] == m.classes
    assert artifacts.read_manifest(res.path)["classes"] == m.classes  # type: ignore[index]
