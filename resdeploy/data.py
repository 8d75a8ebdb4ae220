"""Data sources for calibration and validation: image folders, .npy/.npz tensors, ``synthetic``.

Both calibration and validation read data through ``open_data``, and every image goes
through ``resdeploy.preprocess`` with the model's recorded ``PreprocessSpec``, so the
two stages can never prepare images differently.

Selection is deterministic: files are sorted, then a seeded permutation picks the
first ``samples`` that load. Corrupt or unsupported files are skipped, counted and
named in one warning at the end rather than failing a long run or passing silently.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from resdeploy.console import QUIET, Reporter
from resdeploy.errors import ResdeployError
from resdeploy.preprocess import PreprocessSpec, input_shape, load_image, preprocess_image

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
ARRAY_EXTENSIONS = frozenset({".npy", ".npz"})
SYNTHETIC = "synthetic"
_INPUT_KEYS = ("input", "inputs", "x", "images", "data")
_LABEL_KEYS = ("labels", "label", "y", "targets")
_MAX_NAMED = 5  # how many skipped files a warning names before "and N more"


@dataclass
class Batch:
    """One batch ready for a runner: inputs, labels (None when unlabelled) and sample names."""

    inputs: np.ndarray
    labels: np.ndarray | None
    names: list[str]


@dataclass
class Dataset:
    """A resolved data source: an ordered list of samples and how to turn each into a tensor.

    ``items`` are file paths (images) or row indices (arrays, synthetic). ``limit`` is
    how many good samples to produce: files that fail to load are replaced by the next
    ones in the (seeded) order, so a corrupt file does not shrink the sample.
    """

    kind: str  # "images" | "arrays" | "synthetic"
    source: str
    spec: PreprocessSpec | None
    items: list[Any]
    labels: list[int] | None = None
    classes: list[str] | None = None
    limit: int | None = None
    seed: int = 0
    arrays: np.ndarray | None = None
    array_is_image: bool = False
    skipped: list[tuple[str, str]] = field(default_factory=list)
    root: Path | None = None

    @property
    def labelled(self) -> bool:
        return self.labels is not None

    def __len__(self) -> int:
        return len(self.items) if self.limit is None else min(self.limit, len(self.items))

    def describe(self) -> dict[str, Any]:
        """What the manifest and results record about the data (the source, not the tensors)."""
        return {"source": self.source, "kind": self.kind, "samples": len(self), "seed": self.seed,
                "labelled": self.labelled, "classes": len(self.classes) if self.classes else None}

    # -- loading ---------------------------------------------------------------------------
    def _name(self, pos: int) -> str:
        item = self.items[pos]
        if isinstance(item, Path):
            return str(item.relative_to(self.root)) if self.root else str(item)
        return f"{self.source}[{item}]"

    def _tensor(self, pos: int) -> np.ndarray:
        item = self.items[pos]
        if self.kind == "images":
            assert self.spec is not None
            return preprocess_image(load_image(item), self.spec)
        assert self.arrays is not None
        row = self.arrays[item]
        if self.array_is_image:
            from PIL import Image

            assert self.spec is not None
            img = Image.fromarray(row[..., 0] if row.ndim == 3 and row.shape[-1] == 1 else row)
            return preprocess_image(img, self.spec)
        return np.asarray(row, dtype=np.float32)

    def samples(self, reporter: Reporter = QUIET, description: str = "loading") -> Iterator[tuple[np.ndarray, int | None, str]]:
        """Yield (tensor, label, name) for up to ``len(self)`` good samples, skipping bad files."""
        self.skipped = []
        wanted = len(self)

        def good() -> Iterator[tuple[np.ndarray, int | None, str]]:
            produced = 0
            for pos in range(len(self.items)):
                if produced >= wanted:
                    return
                try:
                    x = self._tensor(pos)
                except (OSError, ValueError, SyntaxError) as exc:  # PIL raises all three for bad files
                    self.skipped.append((self._name(pos), _short_reason(exc)))
                    continue
                produced += 1
                yield x, (self.labels[pos] if self.labels is not None else None), self._name(pos)

        count = 0
        for sample in reporter.track(good(), total=wanted, description=description):
            count += 1
            yield sample
        self._report_skipped(reporter)
        if count == 0:
            raise ResdeployError(
                f"no usable samples in {self.source}: all {len(self.skipped)} files failed to load "
                f"(first: {self.skipped[0][0]}: {self.skipped[0][1]})" if self.skipped
                else f"no usable samples in {self.source}"
            )

    def batches(self, batch_size: int, reporter: Reporter = QUIET, description: str = "loading") -> Iterator[Batch]:
        """Group ``samples`` into batches of ``batch_size`` (the last one may be smaller)."""
        xs: list[np.ndarray] = []
        ys: list[int | None] = []
        names: list[str] = []
        for x, y, name in self.samples(reporter, description):
            xs.append(x)
            ys.append(y)
            names.append(name)
            if len(xs) == batch_size:
                yield _make_batch(xs, ys, names)
                xs, ys, names = [], [], []
        if xs:
            yield _make_batch(xs, ys, names)

    def load(self, reporter: Reporter = QUIET, description: str = "loading") -> tuple[np.ndarray, np.ndarray | None]:
        """All selected samples as one array (and labels): for calibration-sized data."""
        xs, ys = [], []
        for x, y, _ in self.samples(reporter, description):
            xs.append(x)
            ys.append(y)
        labels = np.asarray(ys, dtype=np.int64) if self.labels is not None else None
        return np.stack(xs), labels

    def _report_skipped(self, reporter: Reporter) -> None:
        if not self.skipped:
            return
        named = ", ".join(f"{n} ({why})" for n, why in self.skipped[:_MAX_NAMED])
        more = f" and {len(self.skipped) - _MAX_NAMED} more" if len(self.skipped) > _MAX_NAMED else ""
        reporter.warn(f"skipped {len(self.skipped)} file(s) in {self.source} that could not be used: {named}{more}")


def _make_batch(xs: list[np.ndarray], ys: list[int | None], names: list[str]) -> Batch:
    labels = None if ys[0] is None else np.asarray(ys, dtype=np.int64)
    return Batch(np.stack(xs).astype(np.float32, copy=False), labels, names)


def _short_reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "..."


# ------------------------------------------------------------------------------------------
# Resolving a source string
# ------------------------------------------------------------------------------------------
def open_data(
    source: str | os.PathLike[str],
    spec: PreprocessSpec | None,
    *,
    samples: int | None = None,
    seed: int = 0,
    labels_file: str | os.PathLike[str] | None = None,
    require_labels: bool = False,
    reporter: Reporter = QUIET,
    tensor_shape: Sequence[int] | None = None,
) -> Dataset:
    """Resolve ``source`` (image folder, .npy/.npz file, ``synthetic`` or ``synthetic:N``).

    ``spec`` is the model's preprocessing; ``tensor_shape`` the per-sample input shape
    (C, H, W) when it differs from what the spec implies. ``samples`` picks that many
    with a ``seed``-ed permutation; None keeps all, in sorted order.
    """
    if samples is not None and samples <= 0:
        raise ResdeployError(f"the number of samples must be positive, got {samples}")
    shape = tuple(tensor_shape) if tensor_shape is not None else (input_shape(spec) if spec else None)
    text = os.fspath(source)
    if text == SYNTHETIC or text.startswith(SYNTHETIC + ":"):
        if labels_file is not None:
            raise ResdeployError("--labels maps class folder names; synthetic data has no classes")
        return _synthetic(text, shape, samples, seed, require_labels, reporter)
    path = Path(text)
    if not path.exists():
        raise ResdeployError(f"data source not found: {text}",
                             hint="pass an image folder, a .npy/.npz file, or 'synthetic'")
    if path.is_dir():
        ds = _image_folder(path, spec, labels_file, require_labels, reporter)
    elif path.suffix.lower() in ARRAY_EXTENSIONS:
        ds = _array_file(path, spec, shape, require_labels)
    elif path.suffix.lower() in IMAGE_EXTENSIONS:
        ds = Dataset("images", text, spec, [path], root=path.parent)
    else:
        raise ResdeployError(f"unsupported data source {text}: expected an image folder, a .npy/.npz file or 'synthetic'")
    if labels_file is not None and ds.classes is None:  # would be silently ignored: no accuracy where asked
        raise ResdeployError(f"--labels maps class folder names, but {text} has no class folders",
                             hint="put each class's images in a subfolder named after the class")
    ds.seed = seed
    return _select(ds, samples, seed)


def _select(ds: Dataset, samples: int | None, seed: int) -> Dataset:
    """Seeded permutation, then keep enough order to replace files that fail to load."""
    if samples is None or samples >= len(ds.items):
        return ds
    order = np.random.default_rng(seed).permutation(len(ds.items))
    ds.items = [ds.items[i] for i in order]
    if ds.labels is not None:
        ds.labels = [ds.labels[i] for i in order]
    ds.limit = samples
    return ds


def _synthetic(text: str, shape: tuple[int, ...] | None, samples: int | None, seed: int,
               require_labels: bool, reporter: Reporter) -> Dataset:
    if require_labels:
        raise ResdeployError("synthetic data has no labels; pass a labelled image folder (one subfolder per class)")
    if shape is None:
        raise ResdeployError("synthetic data needs the model's input size; pass --input-size")
    count = samples or 32
    if ":" in text:
        try:
            count = int(text.split(":", 1)[1])
        except ValueError:
            raise ResdeployError(f"expected 'synthetic' or 'synthetic:N', got '{text}'") from None
        if count <= 0:
            raise ResdeployError(f"expected a positive N in 'synthetic:N', got '{text}'")
    reporter.warn("synthetic data (random tensors): calibration ranges and accuracy numbers from it are meaningless; "
                  "use real images for anything you will ship")
    arrays = np.random.default_rng(seed).standard_normal((count, *shape)).astype(np.float32)
    return Dataset("synthetic", text, None, list(range(count)), arrays=arrays, seed=seed)


def _image_files(root: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    images: list[Path] = []
    unsupported: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        if _in_symlink_loop(Path(dirpath), root):  # a link to an ancestor: would repeat every image below it
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            p = Path(dirpath) / name
            if p.suffix.lower() in IMAGE_EXTENSIONS:
                images.append(p)
            else:
                unsupported.append((str(p.relative_to(root)), f"unsupported file type '{p.suffix or name}'"))
    return sorted(images), unsupported


def _in_symlink_loop(path: Path, root: Path) -> bool:
    """Whether ``path`` is (through symlinks) the same directory as one of its ancestors under ``root``."""
    if path == root:
        return False
    real = os.path.realpath(path)
    parent = path.parent
    while True:
        if os.path.realpath(parent) == real:
            return True
        if parent == root or parent == parent.parent:
            return False
        parent = parent.parent


def read_labels_file(path: str | os.PathLike[str]) -> dict[str, int]:
    """Class name -> index, from JSON ({"name": index} or ["name0", "name1", ...]) or text (one name a line)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ResdeployError(f"cannot read labels file {p}: {exc.strerror or exc}") from None
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ResdeployError(f"labels file {p} is not valid JSON: {exc}") from None
        if isinstance(data, list):
            return {str(name): i for i, name in enumerate(data)}
        if isinstance(data, dict) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                          for v in data.values()):
            return {str(k): int(v) for k, v in data.items()}
        raise ResdeployError(f"labels file {p} must map class names to integer indices >= 0, or list class names in order")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    return {name: i for i, name in enumerate(names)}


def _image_folder(root: Path, spec: PreprocessSpec | None, labels_file: str | os.PathLike[str] | None,
                  require_labels: bool, reporter: Reporter) -> Dataset:
    if spec is None:
        raise ResdeployError(f"{root} holds images, but the model has no preprocessing recorded",
                             hint="pass --input-size and the preprocessing flags, or export with `resdeploy export`")
    images, unsupported = _image_files(root)
    if not images:
        what = f" ({len(unsupported)} files of unsupported types)" if unsupported else ""
        raise ResdeployError(f"no images in {root}{what}; supported: {', '.join(sorted(IMAGE_EXTENSIONS))}")
    at_root = [p for p in images if p.parent == root]
    labels: list[int] | None = None
    classes: list[str] | None = None
    if not at_root:
        # Class subfolders (torchvision ImageFolder layout): class = first folder under root.
        folder_of = [p.relative_to(root).parts[0] for p in images]
        classes = sorted(set(folder_of))
        if labels_file is not None:
            mapping = read_labels_file(labels_file)
            unknown = [c for c in classes if c not in mapping]
            if unknown:
                raise ResdeployError(f"class folders not in {labels_file}: {', '.join(unknown[:5])}"
                                     + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""))
        else:
            mapping = {c: i for i, c in enumerate(classes)}
        labels = [mapping[f] for f in folder_of]
    elif require_labels:
        raise ResdeployError(f"{root} has images at its top level, so it is unlabelled",
                             hint="put each class's images in a subfolder named after the class")
    elif len(at_root) < len(images):
        reporter.warn(f"{root} has {len(at_root)} image(s) at its top level besides {len(images) - len(at_root)} in "
                      "subfolders: treated as unlabelled (no accuracy); move the top-level images into class "
                      "folders for a labelled set")
    ds = Dataset("images", str(root), spec, list(images), labels=labels, classes=classes, root=root)
    if unsupported:
        named = ", ".join(n for n, _ in unsupported[:_MAX_NAMED])
        more = f" and {len(unsupported) - _MAX_NAMED} more" if len(unsupported) > _MAX_NAMED else ""
        reporter.warn(f"skipping {len(unsupported)} file(s) of unsupported type in {root}: {named}{more}")
    return ds


def _array_file(path: Path, spec: PreprocessSpec | None, shape: tuple[int, ...] | None, require_labels: bool) -> Dataset:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ResdeployError(f"cannot read {path} as a numpy file: {_short_reason(exc)}") from None
    labels_arr = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = list(loaded.keys())
            in_key = next((k for k in _INPUT_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
            if in_key is None:
                raise ResdeployError(f"{path} holds {keys}; name the inputs one of: {', '.join(_INPUT_KEYS)}")
            arrays = loaded[in_key]
            lab_key = next((k for k in _LABEL_KEYS if k in keys), None)
            labels_arr = loaded[lab_key] if lab_key else None
    else:
        arrays = loaded
    if not (np.issubdtype(arrays.dtype, np.floating) or np.issubdtype(arrays.dtype, np.integer)) \
            or arrays.dtype == np.bool_:
        raise ResdeployError(f"{path} holds {arrays.dtype} data; expected float tensors or uint8/uint16 images")
    if arrays.ndim < 3 or arrays.shape[0] == 0:
        raise ResdeployError(f"{path} holds an array of shape {arrays.shape}; expected N samples (N, C, H, W) or images (N, H, W[, C])")
    is_image = arrays.dtype == np.uint8 or arrays.dtype == np.uint16
    if is_image:
        if spec is None:
            raise ResdeployError(f"{path} holds images, but the model has no preprocessing recorded; pass --input-size")
        if arrays.dtype == np.uint16:
            arrays = np.clip(np.rint(arrays / 257.0), 0, 255).astype(np.uint8)
        if not (arrays.ndim == 3 or (arrays.ndim == 4 and arrays.shape[-1] in (1, 3, 4))):
            raise ResdeployError(f"{path}: uint8 images must be (N, H, W) or (N, H, W, C) with C in 1, 3, 4; got {arrays.shape}")
    else:
        arrays = arrays.astype(np.float32, copy=False)
        if shape is not None and tuple(arrays.shape[1:]) != tuple(shape):
            raise ResdeployError(f"{path} holds tensors of shape {tuple(arrays.shape[1:])} per sample, "
                                 f"but the model takes {tuple(shape)}",
                                 hint="save preprocessed float32 tensors of the model's input shape, or uint8 images")
        bad = ~np.isfinite(arrays).reshape(arrays.shape[0], -1).all(axis=1)
        if bad.any():
            raise ResdeployError(f"{path}: {int(bad.sum())} of {arrays.shape[0]} samples hold NaN or infinite values "
                                 f"(first: sample {int(np.argmax(bad))})")
    labels = None
    if labels_arr is not None:
        labels_arr = np.asarray(labels_arr).reshape(-1)
        if labels_arr.shape[0] != arrays.shape[0] or not np.issubdtype(labels_arr.dtype, np.integer):
            raise ResdeployError(f"{path}: labels must be {arrays.shape[0]} integers, got {labels_arr.dtype} {labels_arr.shape}")
        if labels_arr.min() < 0:
            raise ResdeployError(f"{path}: labels must be class indices >= 0, got {int(labels_arr.min())}")
        labels = [int(v) for v in labels_arr]
    elif require_labels:
        raise ResdeployError(f"{path} has no labels; store them in an .npz under one of: {', '.join(_LABEL_KEYS)}")
    return Dataset("arrays", str(path), spec, list(range(arrays.shape[0])), labels=labels, arrays=arrays,
                   array_is_image=is_image)


# ------------------------------------------------------------------------------------------
# ONNX Runtime's calibration protocol
# ------------------------------------------------------------------------------------------
def calibration_reader(inputs: np.ndarray, input_name: str, batch_size: int = 1) -> Any:
    """A ``CalibrationDataReader`` over already-loaded inputs, for ``onnxruntime.quantization``.

    The data are loaded once (with progress) before calibration starts, so ORT's
    calibrators see exactly the tensors validation will see.
    """
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.start, self.end = 0, inputs.shape[0]
            self.pos = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.pos >= self.end:
                return None
            stop = min(self.pos + batch_size, self.end)
            batch = {input_name: np.ascontiguousarray(inputs[self.pos:stop], dtype=np.float32)}
            self.pos = stop
            return batch

        def __len__(self) -> int:
            return inputs.shape[0]

        def set_range(self, start_index: int, end_index: int) -> None:
            self.start, self.end = start_index, min(end_index, inputs.shape[0])
            self.pos = self.start

        def rewind(self) -> None:
            self.pos = self.start

    return _Reader()
