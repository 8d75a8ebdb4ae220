"""Real accuracy parity on real labelled images, end to end, on a CPU in about a minute.

Pretrained ImageNet weights cannot be downloaded here, so this trains a CIFAR-style
ResNet-20 from the zoo on scikit-learn's bundled handwritten digits (1,797 real 8x8
scans; the files are written as PNGs and upsampled by the model's own preprocessing),
exports it, makes FP16 and INT8 (calibrated on training images) variants and validates
them on held-out images through the same code paths a user runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

EPOCHS = 4
INPUT_SIZE = 16  # 8x8 scans upsampled 2x by the model's preprocessing; 4x cheaper than 32
VAL_FRACTION = 0.2


def _write_digits(root: Path) -> tuple[Path, Path]:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.clip(np.rint(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    order = np.random.default_rng(0).permutation(len(images))
    n_val = int(len(images) * VAL_FRACTION)
    for split, idx in (("val", order[:n_val]), ("train", order[n_val:])):
        for i in idx:
            folder = root / split / f"digit_{digits.target[i]}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i], mode="L").save(folder / f"{i:04d}.png")
    return root / "train", root / "val"


def _train(train_dir: Path, weights: Path) -> None:
    import torch

    from resdeploy.data import open_data
    from resdeploy.models.zoo import ModelSpec

    spec = ModelSpec("resnet20", num_classes=10, input_size=INPUT_SIZE)
    x, y = open_data(train_dir, spec.preprocess()).load()  # the preprocessing every later stage uses
    torch.manual_seed(0)
    model = spec.build().train()
    model.requires_grad_(True)  # the zoo builds inference models
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    steps_per_epoch = int(np.ceil(len(x) / 64))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=EPOCHS * steps_per_epoch)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(0)
    for _ in range(EPOCHS):
        perm = torch.randperm(len(xt), generator=gen)
        for s in range(steps_per_epoch):
            idx = perm[s * 64:(s + 1) * 64]
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    torch.save(model.eval().state_dict(), weights)


@pytest.fixture(scope="module")
def digits_pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    import resdeploy
    from resdeploy.exporter import ExportConfig

    root = tmp_path_factory.mktemp("digits")
    train_dir, val_dir = _write_digits(root / "data")
    weights = root / "resnet20_digits.pt"
    _train(train_dir, weights)
    art = root / "artifacts" / "resnet20"
    exported = resdeploy.export("resnet20", art / "fp32", ExportConfig(input_size=INPUT_SIZE), weights=str(weights),
                                num_classes=10)
    fp16 = resdeploy.quantize(exported.model_path, precision="fp16")
    int8_cpu = resdeploy.quantize(exported.model_path, precision="int8", target="cpu",
                                  calib_data=str(train_dir), calib_samples=256, seed=0)
    int8_trt = resdeploy.quantize(exported.model_path, precision="int8", target="trt",
                                  ranges=str(int8_cpu.ranges_path))
    int8_entropy = resdeploy.quantize(exported.model_path, precision="int8", target="trt", method="entropy",
                                      calib_data=str(train_dir), calib_samples=256, seed=0,
                                      output=str(root / "int8-trt-entropy"))
    return {"val": val_dir, "train": train_dir, "fp32": exported, "fp16": fp16, "int8-cpu": int8_cpu,
            "int8-trt": int8_trt, "int8-entropy": int8_entropy, "art": art}


def test_default_layout_is_sibling_dirs(digits_pipeline: dict) -> None:
    art = digits_pipeline["art"]
    assert sorted(p.name for p in art.iterdir()) == ["fp16", "fp32", "int8-cpu", "int8-trt"]
    m = digits_pipeline["int8-cpu"].manifest
    assert m["calibration"]["samples"] == 256 and m["calibration"]["method"] == "minmax"
    assert m["preprocess"] == digits_pipeline["fp32"].manifest["preprocess"]


def test_fp32_reference_is_accurate_and_matches_pytorch(digits_pipeline: dict) -> None:
    import resdeploy

    r = resdeploy.validate(digits_pipeline["fp32"].model_path, reference="torch", data=str(digits_pipeline["val"]))
    assert r.samples == 359
    assert r.accuracy["reference"]["top1"] >= 0.90, r.accuracy
    assert r.parity["top1_agreement"] == 1.0 and r.passed


def test_fp16_drop_at_most_0_1_point(digits_pipeline: dict) -> None:
    import resdeploy

    r = resdeploy.validate(digits_pipeline["fp16"].model_path, data=str(digits_pipeline["val"]))
    assert r.reference["kind"] == "parent"
    assert r.accuracy["reference"]["top1"] >= 0.90
    assert r.top1_drop_points <= 0.1, r.accuracy
    assert r.passed


@pytest.mark.parametrize("variant, max_drop", [("int8-cpu", 0.5), ("int8-trt", 1.0), ("int8-entropy", 1.0)])
def test_int8_drop_within_target(digits_pipeline: dict, variant: str, max_drop: float) -> None:
    # --target cpu is held to 0.5 point on whatever CPU runs this (AVX2 without VNNI included:
    # full-range weights lost 4.7 points there; the portable default's 7-bit weights do not).
    import resdeploy

    r = resdeploy.validate(digits_pipeline[variant].model_path, data=str(digits_pipeline["val"]),
                           max_top1_drop=max_drop)
    assert r.accuracy["reference"]["top1"] >= 0.90
    assert r.top1_drop_points <= max_drop, r.accuracy
    assert [g.name for g in r.gates] == ["top1_drop_points"] and r.passed
    # The INT8 graph really is quantized: real Q/DQ on every Conv, not a pass-through.
    assert digits_pipeline[variant].manifest["quantization"]["quantized_ops"]["Conv"] >= 19


def test_int8_cpu_default_is_portable_by_structure(digits_pipeline: dict) -> None:
    # The structural side of the 0.5-point target, host-independent: no int16 pair sum can saturate.
    import onnx

    from resdeploy.precision.isa import KINDS, pair_sum_bounds

    bounds = pair_sum_bounds(onnx.load(str(digits_pipeline["int8-cpu"].model_path)))
    assert len(bounds) >= 20 and all(b.fits_int16 for b in bounds)
    assert tuple(digits_pipeline["int8-cpu"].manifest["quantization"]["safe_on"]) == KINDS


def test_entropy_clips_some_ranges_and_widens_none(digits_pipeline: dict) -> None:
    import json

    minmax = json.loads(digits_pipeline["int8-cpu"].ranges_path.read_text())["ranges"]
    entropy = json.loads(digits_pipeline["int8-entropy"].ranges_path.read_text())["ranges"]
    assert entropy.keys() == minmax.keys()
    ratios = [max(abs(v) for v in entropy[k]) / max(abs(v) for v in minmax[k]) for k in minmax]
    assert max(ratios) <= 1.0 + 1e-6  # same samples: never wider than what was seen
    assert np.median(ratios) < 0.99 and min(ratios) > 0.5  # clipped, but not to a sliver
