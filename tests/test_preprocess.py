"""The one preprocessing implementation: hand-computed values, and every image mode a folder can hold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resdeploy.errors import ResdeployError
from resdeploy.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PreprocessSpec,
    _centre_crop,
    _resize_shorter,
    input_shape,
    load_image,
    preprocess_batch,
    preprocess_file,
    preprocess_image,
)


def test_hand_computed_example() -> None:
    # 4x4 image; centre crop 2 takes rows 1-2, columns 1-2. No resize (resize=0).
    arr = np.zeros((4, 4, 3), dtype=np.uint8)
    arr[1, 1] = (255, 0, 51)
    arr[1, 2] = (0, 255, 255)
    arr[2, 1] = (102, 51, 0)
    arr[2, 2] = (255, 255, 255)
    arr[0, 0] = (7, 7, 7)  # outside the crop: must not appear
    spec = PreprocessSpec(resize=0, crop=2, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    out = preprocess_image(Image.fromarray(arr), spec)
    assert out.shape == (3, 2, 2) and out.dtype == np.float32
    # (v/255 - mean) / std, worked out by hand:
    expected = np.array([
        [[2.0, -2.0], [-0.4, 2.0]],    # R: 255 -> (1-.5)/.25 = 2; 0 -> -2; 102 -> (.4-.5)/.25 = -.4
        [[-1.0, 1.0], [-0.6, 1.0]],    # G: 0 -> -1; 255 -> 1; 51 -> (.2-.5)/.5 = -.6
        [[-0.3, 0.5], [-0.5, 0.5]],    # B: 51 -> (.2-.5)/1 = -.3; 255 -> .5; 0 -> -.5
    ], dtype=np.float32)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_resize_shorter_side_like_torchvision() -> None:
    img = Image.new("RGB", (300, 200))
    assert _resize_shorter(img, 256, 2).size == (384, 256)
    assert _resize_shorter(Image.new("RGB", (200, 301)), 256, 2).size == (256, 385)
    assert _resize_shorter(Image.new("RGB", (3, 1000)), 256, 2).size == (256, 85333)  # int(256 * 1000 / 3)


def _torchvision_eval(img: Image.Image, resize: int, crop: int) -> np.ndarray:
    """torchvision's Resize(resize) + CenterCrop(crop) + ToTensor + Normalize on a PIL image, written out.

    Follows torchvision.transforms.functional (0.28): Resize's output size is shorter side
    -> resize, longer -> int(resize * long / short), done by PIL's bilinear (antialiased)
    resize and skipped when the size is unchanged; center_crop pads with zeros, left/top
    (crop - size) // 2, right/bottom (crop - size + 1) // 2, then crops at
    int(round((size - crop) / 2.0)); ToTensor divides by 255 in float32.
    """
    w, h = img.size
    if resize:
        size = (resize, int(resize * h / w)) if w <= h else (int(resize * w / h), resize)
        if size != (w, h):
            img = img.resize(size, Image.BILINEAR)
    arr = np.asarray(img.convert("RGB"))
    ph, pw = max(crop - arr.shape[0], 0), max(crop - arr.shape[1], 0)
    arr = np.pad(arr, ((ph // 2, (ph + 1) // 2), (pw // 2, (pw + 1) // 2), (0, 0)))
    top, left = int(round((arr.shape[0] - crop) / 2.0)), int(round((arr.shape[1] - crop) / 2.0))
    t = arr[top:top + crop, left:left + crop].astype(np.float32) / np.float32(255)
    mean, std = np.array(IMAGENET_MEAN, np.float32), np.array(IMAGENET_STD, np.float32)
    return ((t - mean) / std).transpose(2, 0, 1)


@pytest.mark.parametrize("resize,crop", [(256, 224), (255, 224), (37, 31), (18, 16), (0, 224)])
def test_matches_torchvision_classic_eval_transform(resize: int, crop: int) -> None:
    # Odd sizes and odd differences exercise the rounding of the crop offsets; (1, 1), (10, 10) and
    # (3, 700) are smaller than the crop on at least one side, so they are padded.
    sizes = [(500, 375), (375, 500), (257, 301), (301, 257), (224, 224), (256, 256), (255, 255), (223, 225),
             (257, 256), (511, 257), (1000, 100), (100, 1000), (700, 3), (3, 700), (10, 10), (1, 1), (641, 480)]
    rng = np.random.default_rng(resize * 1000 + crop)
    spec = PreprocessSpec(resize=resize, crop=crop)
    for w, h in sizes:
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        ref = _torchvision_eval(img, resize, crop)
        out = preprocess_image(img, spec)
        assert out.shape == ref.shape == (3, crop, crop), (w, h)
        np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0, err_msg=f"{w}x{h}")


def test_extreme_aspect_ratio_resamples_only_the_crop() -> None:
    # 2x20000 would resize to 2560000x256 (2 GB); only the crop window is resampled instead.
    rng = np.random.default_rng(1)
    strip = Image.fromarray(rng.integers(0, 256, (20000, 2, 3), dtype=np.uint8))
    assert preprocess_image(strip, PreprocessSpec()).shape == (3, 224, 224)
    # The shortcut picks the same pixels as the full resize, to within one 8-bit step.
    for w, h, resize, crop in ((500, 375, 256, 224), (3, 700, 37, 31), (641, 480, 100, 224)):
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        full = np.asarray(_centre_crop(_resize_shorter(img, resize, 2, crop=crop), crop), dtype=np.int16)
        window = _resize_shorter(img, resize, 2, crop=crop, max_pixels=0)
        assert window.size[0] <= max(crop, 1) and window.size[1] <= max(crop, 1)
        part = np.asarray(_centre_crop(window, crop), dtype=np.int16)
        assert np.abs(full - part).max() <= 1 and np.mean(full != part) < 0.3


def test_imagenet_recipe_shape_and_uniform_value() -> None:
    spec = PreprocessSpec()  # resize 256, crop 224, ImageNet mean/std
    out = preprocess_image(Image.new("RGB", (500, 375), (128, 64, 32)), spec)
    assert out.shape == (3, 224, 224) == input_shape(spec)
    expected = [(128 / 255 - 0.485) / 0.229, (64 / 255 - 0.456) / 0.224, (32 / 255 - 0.406) / 0.225]
    np.testing.assert_allclose(out.mean(axis=(1, 2)), expected, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2)), 0, atol=1e-5)


def test_bgr_and_nhwc() -> None:
    img = Image.new("RGB", (8, 8), (255, 0, 0))
    spec = PreprocessSpec(resize=0, crop=4, mean=(0, 0, 0), std=(1, 1, 1), color="BGR", layout="NHWC")
    out = preprocess_image(img, spec)
    assert out.shape == (4, 4, 3)
    np.testing.assert_allclose(out[0, 0], [0, 0, 1])
    with pytest.raises(ResdeployError, match="colour order"):
        preprocess_image(img, PreprocessSpec(color="XYZ"))
    with pytest.raises(ResdeployError, match="interpolation"):
        preprocess_image(img, PreprocessSpec(interpolation="magic"))


def test_small_image_is_padded_not_crashing() -> None:
    out = preprocess_image(Image.new("RGB", (3, 3), (255, 255, 255)), PreprocessSpec(resize=0, crop=5,
                                                                                   mean=(0, 0, 0), std=(1, 1, 1)))
    assert out.shape == (3, 5, 5)
    assert out[:, 2, 2].tolist() == [1, 1, 1] and out[:, 0, 0].tolist() == [0, 0, 0]


def _save(img: Image.Image, path: Path, **kw: object) -> Path:
    img.save(path, **kw)
    return path


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    arr = np.array([[0, 32896, 65535, 1000]], dtype=np.uint16)  # 32896 = 128 * 257
    p = _save(Image.fromarray(arr), tmp_path / "g16.png")
    assert Image.open(p).mode.startswith("I")
    rgb = np.asarray(load_image(p))
    assert rgb.shape == (1, 4, 3)
    assert rgb[0, :, 0].tolist() == [0, 128, 255, 4]  # plain convert("RGB") would give 0, 255, 255, 255
    assert (rgb[..., 0] == rgb[..., 2]).all()


def test_grayscale_replicated(tmp_path: Path) -> None:
    p = _save(Image.new("L", (2, 2), 77), tmp_path / "g.png")
    assert np.asarray(load_image(p)).reshape(-1, 3).tolist() == [[77, 77, 77]] * 4


def test_rgba_and_palette_transparency_composite_on_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (2, 1))
    rgba.putpixel((0, 0), (0, 0, 0, 0))        # fully transparent (black underneath)
    rgba.putpixel((1, 0), (255, 0, 0, 255))    # opaque red
    got = np.asarray(load_image(_save(rgba, tmp_path / "a.png")))
    assert got[0].tolist() == [[255, 255, 255], [255, 0, 0]]

    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    pal.info["transparency"] = 0
    got = np.asarray(load_image(_save(pal, tmp_path / "p.png", transparency=0)))
    assert got[0].tolist() == [[255, 255, 255], [0, 0, 255]]


def test_cmyk_jpeg(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red in CMYK
    got = np.asarray(load_image(_save(cmyk, tmp_path / "c.jpg", quality=100))).reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(got, [255, 0, 0], atol=6)


def test_exif_orientation_not_applied_like_torchvision(tmp_path: Path) -> None:
    # torchvision's ImageFolder loader (Image.open + convert("RGB")) ignores EXIF orientation;
    # models are trained and validated on the stored pixels, so they are used as stored.
    arr = np.zeros((2, 4, 3), dtype=np.uint8)
    arr[0, 0] = (255, 255, 255)  # top-left marker
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 on display"
    p = _save(Image.fromarray(arr), tmp_path / "r.jpg", exif=exif.tobytes(), quality=95)
    assert Image.open(p).getexif().get(0x0112) == 6
    got = np.asarray(load_image(p))
    assert got.shape == (2, 4, 3)
    np.testing.assert_array_equal(got, np.asarray(Image.open(p).convert("RGB")))


def test_palette_cmyk_and_one_bit_convert_like_torchvision(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rgb = Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8))
    files = [_save(rgb.convert("P"), tmp_path / "p.png"), _save(rgb.convert("CMYK"), tmp_path / "c.tif"),
             _save(rgb.convert("1"), tmp_path / "b.png"), _save(rgb.convert("L"), tmp_path / "l.pgm")]
    for f in files:
        np.testing.assert_array_equal(np.asarray(load_image(f)), np.asarray(Image.open(f).convert("RGB")), err_msg=f.name)


def test_grayscale_with_alpha_composited_on_white(tmp_path: Path) -> None:
    la = Image.new("LA", (2, 1))
    la.putpixel((0, 0), (0, 0))      # transparent black -> white
    la.putpixel((1, 0), (100, 255))  # opaque grey stays grey
    got = np.asarray(load_image(_save(la, tmp_path / "la.png")))
    assert got[0].tolist() == [[255, 255, 255], [100, 100, 100]]


def test_truncated_file_and_decompression_bomb_raise_oserror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    full = _save(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), tmp_path / "full.jpg")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(OSError, match="truncated"):
        load_image(cut)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64x64 is more than twice that: PIL refuses it
    with pytest.raises(OSError, match="decompression-bomb limit"):  # DecompressionBombError is not an OSError by itself
        load_image(full)


def test_corrupt_file_raises_oserror(tmp_path: Path) -> None:
    p = tmp_path / "x.jpg"
    p.write_bytes(b"\xff\xd8not a jpeg")
    with pytest.raises((OSError, ValueError, SyntaxError)):
        load_image(p)


def test_batch_from_paths_and_images(tmp_path: Path) -> None:
    spec = PreprocessSpec(resize=8, crop=8)
    p = _save(Image.new("RGB", (16, 12), (1, 2, 3)), tmp_path / "a.png")
    batch = preprocess_batch([p, Image.new("RGB", (16, 12), (1, 2, 3))], spec)
    assert batch.shape == (2, 3, 8, 8)
    np.testing.assert_array_equal(batch[0], batch[1])
    np.testing.assert_array_equal(batch[0], preprocess_file(p, spec))
    with pytest.raises(ResdeployError):
        preprocess_batch([], spec)


def test_presets_give_each_frameworks_convention() -> None:
    # One known pixel through each preset: the arithmetic each framework's ImageNet models expect.
    from resdeploy.preprocess import spec_for

    img = Image.new("RGB", (8, 8), (200, 100, 50))
    tv = preprocess_image(img, spec_for((8, 8), resize=0))
    assert tv[:, 0, 0] == pytest.approx([(200 / 255 - 0.485) / 0.229, (100 / 255 - 0.456) / 0.224,
                                         (50 / 255 - 0.406) / 0.225], rel=1e-5)
    caffe = preprocess_image(img, spec_for((8, 8), preset="caffe", resize=0))
    assert caffe[:, 0, 0] == pytest.approx([50 - 103.939, 100 - 116.779, 200 - 123.68], rel=1e-5)  # BGR, 0-255
    tf = preprocess_image(img, spec_for((8, 8), preset="tf", resize=0, layout="NHWC"))
    assert tf.shape == (8, 8, 3) and tf[0, 0] == pytest.approx([200 / 127.5 - 1, 100 / 127.5 - 1, 50 / 127.5 - 1],
                                                                rel=1e-5)
    with pytest.raises(ResdeployError, match="unknown --preprocess 'keras'"):
        spec_for((8, 8), preset="keras")


def test_a_one_channel_model_gets_grayscale_luma_and_one_mean() -> None:
    from resdeploy.preprocess import spec_for

    img = Image.new("RGB", (8, 8), (200, 100, 50))
    spec = spec_for((8, 8), resize=0, channels=1)
    assert spec.color == "GRAY" and spec.mean == pytest.approx((sum(IMAGENET_MEAN) / 3,))
    assert spec.std == pytest.approx((sum(IMAGENET_STD) / 3,)) and input_shape(spec) == (1, 8, 8)
    luma = round(200 * 0.299 + 100 * 0.587 + 50 * 0.114)  # ITU-R 601, PIL's and torchvision's Grayscale
    gray = preprocess_image(img, spec)
    assert gray.shape == (1, 8, 8) and gray[0, 0, 0] == pytest.approx((luma / 255 - spec.mean[0]) / spec.std[0],
                                                                       rel=1e-5)
    mnist = preprocess_image(img, spec_for((8, 8), resize=0, channels=1, layout="NHWC", mean=(0.1307,),
                                           std=(0.3081,)))
    assert mnist.shape == (8, 8, 1) and mnist[0, 0, 0] == pytest.approx((luma / 255 - 0.1307) / 0.3081, rel=1e-5)
    # One value for an RGB model is every channel's; three for a grayscale one is refused.
    assert spec_for((8, 8), mean=(0.5,), std=(0.5,)).mean == (0.5, 0.5, 0.5)
    with pytest.raises(ResdeployError, match="takes 1 channel.*--mean takes one value"):
        spec_for((8, 8), channels=1, mean=IMAGENET_MEAN)
    with pytest.raises(ResdeployError, match="need 1 value"):  # a hand-edited manifest
        preprocess_image(img, PreprocessSpec(crop=8, resize=0, color="GRAY"))


def test_non_square_crop_round_trips_through_the_manifest() -> None:
    from resdeploy.preprocess import PreprocessSpec, input_shape, spec_for

    spec = spec_for((32, 24))
    assert spec.crop_hw == (32, 24) and spec.resize == round(24 / 0.875)
    out = preprocess_image(Image.new("RGB", (50, 40)), spec)
    assert out.shape == (3, 32, 24) == input_shape(spec)
    again = PreprocessSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and PreprocessSpec.from_dict({**spec.to_dict(), "crop": [16, 16]}).crop == 16


def test_preprocessing_flags_are_declared_once_and_checked_by_one_function() -> None:
    import dataclasses

    import resdeploy
    from resdeploy.preprocess import InputFlags, PreprocessFlags

    shared = {f.name for f in dataclasses.fields(PreprocessFlags)}
    assert shared == {"input_size", "layout", "preprocess", "resize", "mean", "std"}
    for cls in (resdeploy.QuantizeConfig, resdeploy.ValidateConfig, resdeploy.BenchConfig):  # bench: for --data
        assert issubclass(cls, PreprocessFlags) and issubclass(cls, InputFlags)
    # the keyword arguments still work, and land where preprocess_from reads them
    cfg = resdeploy.ValidateConfig(data="synthetic", input_size=(64, 48), layout="NHWC", preprocess="caffe",
                                   resize=72, mean=(1.0, 2.0, 3.0), std=(4.0, 5.0, 6.0))
    assert cfg.preprocess_flags() == {"input_size": (64, 48), "layout": "NHWC", "preset": "caffe", "resize": 72,
                                      "mean": (1.0, 2.0, 3.0), "std": (4.0, 5.0, 6.0)}
    with pytest.raises(ResdeployError, match="--input-size"):
        resdeploy.BenchConfig(model="resnet18", input_size=(224, 0)).check()
    with pytest.raises(ResdeployError, match="--std values must be positive"):
        resdeploy.QuantizeConfig(precision="fp16", std=(1.0, 0.0, 1.0)).check_preprocess()
