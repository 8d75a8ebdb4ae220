"""Real inputs for ``bench --data``: images or saved tensors, through the model's own preprocessing.

Random normal inputs time the same kernels as real ones for FP32 and FP16, but an INT8
graph's speed can depend on the values (saturation paths, sparsity in some kernels), and
a user's question is "how fast on my data". With ``--data`` the timed batches are real
samples, prepared by ``data.open_data`` with the preprocessing recorded in the manifest
(the same tensors validation sees), rotated over the same number of buffers.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from resdeploy.errors import ResdeployError


def check_data(source: str | os.PathLike[str] | None) -> None:
    """The cheap check, before any runner is loaded: the path exists and is a folder or .npy/.npz."""
    if source is None:
        return
    from resdeploy.data import ARRAY_EXTENSIONS, SYNTHETIC, check_source

    if str(source) == SYNTHETIC or str(source).startswith(SYNTHETIC + ":"):
        raise ResdeployError("--data synthetic is what bench does without --data; pass an image folder or a .npy file")
    path = check_source(source)
    if not path.is_dir() and path.suffix.lower() not in ARRAY_EXTENSIONS:
        raise ResdeployError(f"--data {source}: expected an image folder or a .npy/.npz file")


def real_inputs(source: str | os.PathLike[str], model: str, shape: tuple[int, ...], count: int,
                seed: int) -> tuple[list[np.ndarray], dict[str, Any]]:
    """``count`` batches of shape ``shape`` from ``source`` (samples reused when there are too few).

    Returns the batches and what the result JSON records about them.
    """
    from resdeploy.data import open_data
    from resdeploy.resolve import preprocess_from, resolve_artifact

    # the manifest that describes the model (for an engine plan, its ONNX's); none for a zoo name
    described = resolve_artifact(model, onnx_dir=False, verify=False).describing_manifest()
    manifest = described.to_dict() if described is not None else None
    batch, per_sample = shape[0], tuple(shape[1:])
    spec = preprocess_from(manifest, input_size=per_sample[-1] if manifest is None else None, what=str(model))
    wanted = batch * count
    ds = open_data(source, spec, samples=wanted, seed=seed, tensor_shape=per_sample)
    x, _ = ds.load()
    if tuple(x.shape[1:]) != per_sample:
        raise ResdeployError(f"--data {source} gives samples of shape {tuple(x.shape[1:])}, "
                             f"the model takes {per_sample}")
    reps = int(np.ceil(wanted / len(x)))
    pool = np.concatenate([x] * reps)[:wanted].astype(np.float32, copy=False)
    batches = [np.ascontiguousarray(pool[i * batch:(i + 1) * batch]) for i in range(count)]
    return batches, {"source": str(source), "samples": int(len(x)), "skipped": len(ds.skipped),
                     "reused": bool(len(x) < wanted)}
