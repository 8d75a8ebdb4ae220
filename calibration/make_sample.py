"""Regenerate calibration/sample/ from the two photographs scikit-learn ships (CC BY 2.0).

    python calibration/make_sample.py

Deterministic: the same crops, scales and flips on every run (seed 0), written as
JPEG (quality 90) at 256x256 so the ImageNet recipe (resize 256, centre-crop 224)
applies to them as it does to real data.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

COUNT = 32
SIZE = 256


def main(out: Path) -> None:
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    names = [Path(f).stem for f in photos.filenames]
    rng = np.random.default_rng(0)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(COUNT):
        k = i % len(photos.images)
        img = Image.fromarray(photos.images[k])
        w, h = img.size
        side = int(rng.uniform(0.35, 1.0) * min(w, h))
        left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        crop = img.crop((left, top, left + side, top + side)).resize((SIZE, SIZE), Image.Resampling.BICUBIC)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        crop.save(out / f"{names[k]}_{i:02d}.jpg", quality=90)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(os.path.dirname(os.path.abspath(__file__))) / "sample")
