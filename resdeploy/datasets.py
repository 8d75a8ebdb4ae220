"""Small real image sets written as ordinary image folders, for the demo and the accuracy tests.

Pretrained ImageNet weights and datasets cannot be downloaded on every machine, but
scikit-learn ships 1,797 real 8x8 scans of handwritten digits inside its wheel. Written
as PNG files in class folders (``digit_0`` ... ``digit_9``), they go through the very
same path as a user's photos: ``data.open_data`` and the model's own preprocessing.
scikit-learn is the optional ``demo`` extra (``pip install 'resdeploy[demo]'``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resdeploy.errors import ResdeployError, require

DIGITS_VAL_FRACTION = 0.2


@dataclass(frozen=True)
class ImageFolders:
    """Where ``write_digits`` put the training and the held-out images, and how many of each."""

    train: Path
    val: Path
    train_images: int
    val_images: int


def write_digits(root: str | os.PathLike[str], *, val_fraction: float = DIGITS_VAL_FRACTION,
                 seed: int = 0) -> ImageFolders:
    """Write scikit-learn's digits as 8-bit grayscale PNGs: ``root/train/digit_K/*.png`` and ``root/val/...``.

    The split is a seeded permutation (the same files for the same seed on every machine).
    The 0..16 intensities are scaled to 0..255. An existing, non-empty ``root`` is refused,
    so images from another seed never mix into the folders.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ResdeployError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    out = Path(root)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ResdeployError(f"{out} already exists and is not an empty folder; pick a new one")
    sk_datasets = require("sklearn.datasets", "'resdeploy[demo]' (scikit-learn)", "scikit-learn (the digits images)")
    from PIL import Image

    from resdeploy.artifacts import atomic_dir

    digits = sk_datasets.load_digits()
    images = np.clip(np.rint(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    order = np.random.default_rng(seed).permutation(len(images))
    n_val = int(len(images) * val_fraction)
    with atomic_dir(out, force=out.exists()) as tmp:
        for split, idx in (("val", order[:n_val]), ("train", order[n_val:])):
            for i in idx:
                folder = tmp / split / f"digit_{digits.target[i]}"
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(images[i], mode="L").save(folder / f"{i:04d}.png")
    return ImageFolders(out / "train", out / "val", len(images) - n_val, n_val)
