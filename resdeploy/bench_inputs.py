"""Real inputs for ``bench --data``: images or saved tensors, through the model's own preprocessing.

Random normal inputs time the same kernels as real ones for FP32 and FP16, but an INT8
graph's speed can depend on the values (saturation paths, sparsity in some kernels), and
a user's question is "how fast on my data". With ``--data`` the timed batches are real
samples, prepared by ``data.open_data`` with the preprocessing recorded in the manifest
(the same tensors validation sees), rotated over the same number of buffers.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from resdeploy.errors import ResdeployError

if TYPE_CHECKING:
    from resdeploy.onnx_io import GraphInput


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
                seed: int, *, graph: GraphInput | None = None,
                flags: dict[str, Any] | None = None) -> tuple[list[np.ndarray], dict[str, Any]]:
    """``count`` batches of shape ``shape`` from ``source`` (samples reused when there are too few).

    ``graph`` is the runner's input (its dtype: a uint8-pixel model gets raw 0-255 pixels);
    ``flags`` the preprocessing flags (``PreprocessFlags.preprocess_flags()``), which apply
    to a model without a manifest, as in ``quantize`` and ``validate``; the size and layout
    are the benched ``shape``'s. Returns the batches and what the result JSON records about them.
    """
    from resdeploy.data import open_data
    from resdeploy.onnx_io import as_input_dtype, layout_of
    from resdeploy.preprocess_graph import is_raw_image_input
    from resdeploy.resolve import preprocess_from, resolve_artifact

    if graph is not None and is_raw_image_input(graph.dtype, graph.shown):
        raise ResdeployError(f"bench --data: {model} takes decoded images of any size (its preprocessing is in "
                             "the graph), which cannot be batched into one tensor",
                             hint="bench it without --data (random pixels at its resize size), or `validate` "
                                  "it on the folder (one image per call)")
    # the manifest that describes the model (for an engine plan, its ONNX's); none for a zoo name
    described = resolve_artifact(model, onnx_dir=False, verify=False).describing_manifest()
    manifest = described.to_dict() if described is not None else None
    batch, per_sample = shape[0], tuple(shape[1:])
    given = {k: v for k, v in (flags or {}).items() if k not in ("input_size", "layout")}
    layout = layout_of((batch, *per_sample)) or "NCHW"
    size = (per_sample[1], per_sample[2]) if layout == "NCHW" else (per_sample[0], per_sample[1])
    spec = preprocess_from(manifest, **given, input_size=None if manifest else size,
                           layout=None if manifest else layout, graph=graph, what=str(model))
    wanted = batch * count
    ds = open_data(source, spec, samples=wanted, seed=seed, tensor_shape=per_sample)
    x, _ = ds.load()
    if tuple(x.shape[1:]) != per_sample:
        raise ResdeployError(f"--data {source} gives samples of shape {tuple(x.shape[1:])}, "
                             f"the model takes {per_sample}")
    reps = int(np.ceil(wanted / len(x)))
    pool = np.concatenate([x] * reps)[:wanted].astype(np.float32, copy=False)
    if graph is not None:
        pool = as_input_dtype(pool, graph)  # the runners would cast each batch inside the timed loop
    batches = [np.ascontiguousarray(pool[i * batch:(i + 1) * batch]) for i in range(count)]
    return batches, {"source": str(source), "samples": int(len(x)), "skipped": len(ds.skipped),
                     "reused": bool(len(x) < wanted)}
