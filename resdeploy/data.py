"""Data sources for calibration and validation: image folders, .npy/.npz tensors, ``synthetic``.

Both calibration and validation read data through ``open_data``, and every image goes
through ``resdeploy.preprocess`` with the model's recorded ``PreprocessSpec``, so the
two stages can never prepare images differently.

Selection is deterministic: files are sorted, then a seeded permutation picks the
first ``samples`` that load. Corrupt or unsupported files are skipped, counted and
named in one warning at the end rather than failing a long run or passing silently.

Folders follow torchvision's ``ImageFolder`` where it decides a number: the same file
extensions (case-insensitive), class index = position of the folder name in the
string-sorted list of class folders ("10" before "2"), and a class folder with no
images keeps its index, so the other classes' labels do not shift. Hidden files and
folders (".DS_Store", "._x.jpg", ".ipynb_checkpoints") are ignored; torchvision would
count a hidden folder as a class, which is never what was meant.
"""

from __future__ import annotations

import json
import os
import struct
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from resdeploy.console import QUIET, Reporter
from resdeploy.errors import ResdeployError
from resdeploy.preprocess import PreprocessSpec, input_shape, load_image, preprocess_image

# torchvision.datasets.folder.IMG_EXTENSIONS, so a folder holds the same images here as there.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"})
ARRAY_EXTENSIONS = frozenset({".npy", ".npz"})
SYNTHETIC = "synthetic"
_INPUT_KEYS = ("input", "inputs", "x", "images", "data")
_LABEL_KEYS = ("labels", "label", "y", "targets")
_MAX_NAMED = 5  # how many skipped files a warning names before "and N more"
# What PIL raises for files it cannot decode, besides OSError/ValueError/SyntaxError: truncated
# or malformed containers surface as these from some format plugins.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, KeyError, TypeError,
                  ZeroDivisionError)


class _BadSample(Exception):
    """One sample could not be loaded: skipped, counted and named (never the whole run)."""


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
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason): failed to load
    root: Path | None = None
    unsupported: list[tuple[str, str]] = field(default_factory=list)  # (name, reason): not an image type
    empty_classes: list[str] = field(default_factory=list)  # class folders without images (index kept)

    @property
    def labelled(self) -> bool:
        return self.labels is not None

    def __len__(self) -> int:
        return len(self.items) if self.limit is None else min(self.limit, len(self.items))

    def describe(self) -> dict[str, Any]:
        """What the manifest and results record about the data (the source, not the tensors)."""
        return {"source": self.source, "kind": self.kind, "samples": len(self), "seed": self.seed,
                "labelled": self.labelled, "classes": len(self.classes) if self.classes else None,
                "unsupported_files": len(self.unsupported), "empty_classes": list(self.empty_classes)}

    # -- loading ---------------------------------------------------------------------------
    def _name(self, pos: int) -> str:
        item = self.items[pos]
        if isinstance(item, Path):
            return str(item.relative_to(self.root)) if self.root else str(item)
        return f"{self.source}[{item}]"

    def _tensor(self, pos: int) -> np.ndarray:
        """One sample as a tensor; ``_BadSample`` when the file cannot be decoded.

        Only decoding is guarded: an error in preprocessing (a bad spec) is the same for
        every file and must stop the run, not skip every file one by one.
        """
        item = self.items[pos]
        if self.kind == "images":
            assert self.spec is not None
            try:
                img = load_image(item)
            except MemoryError:
                raise
            except _DECODE_ERRORS as exc:
                raise _BadSample(_short_reason(exc, item)) from None
            return preprocess_image(img, self.spec)
        assert self.arrays is not None
        row = self.arrays[item]
        if self.array_is_image:
            from PIL import Image

            assert self.spec is not None
            try:
                img = Image.fromarray(row[..., 0] if row.ndim == 3 and row.shape[-1] == 1 else row)
            except (ValueError, TypeError) as exc:
                raise _BadSample(_short_reason(exc)) from None
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
                except _BadSample as exc:
                    self.skipped.append((self._name(pos), str(exc)))
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
        named = _named([f"{n} ({why})" for n, why in self.skipped])
        reporter.warn(f"skipped {len(self.skipped)} file(s) in {self.source} that could not be used: {named}")


def _make_batch(xs: list[np.ndarray], ys: list[int | None], names: list[str]) -> Batch:
    labels = None if ys[0] is None else np.asarray(ys, dtype=np.int64)
    return Batch(np.stack(xs).astype(np.float32, copy=False), labels, names)


def _short_reason(exc: BaseException, path: str | os.PathLike[str] | None = None) -> str:
    """The first line of an error, without the file's path (the warning names the file already)."""
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror  # "No such file or directory" (a broken symlink), "Permission denied"
    else:
        text = str(exc).splitlines()[0] if str(exc).strip() else ""
        if path is not None:
            text = text.replace(repr(os.fspath(path)), "").replace(os.fspath(path), "").strip(" :")
        text = text or type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "..."


# ------------------------------------------------------------------------------------------
# Resolving a source string
# ------------------------------------------------------------------------------------------
def check_source(source: str | os.PathLike[str]) -> Path:
    """The cheap part of resolving a data source, for commands that check input before slow work.

    Returns the path (``synthetic[:N]`` comes back as it is); a missing path is one line.
    """
    text = os.fspath(source)
    if text == SYNTHETIC or text.startswith(SYNTHETIC + ":"):
        return Path(text)
    path = Path(text)
    if not path.exists():
        raise ResdeployError(f"data source not found: {text}",
                             hint="pass an image folder, a .npy/.npz file, or 'synthetic'")
    return path


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
    path = check_source(text)
    if path.is_dir():
        _check_image_shape(text, spec, shape)
        ds = _image_folder(path, spec, labels_file, require_labels, reporter)
    elif path.suffix.lower() in ARRAY_EXTENSIONS:
        ds = _array_file(path, spec, shape, require_labels)
    elif path.suffix.lower() in IMAGE_EXTENSIONS:
        _check_image_shape(text, spec, shape)
        ds = Dataset("images", text, spec, [path], root=path.parent)
    else:
        raise ResdeployError(f"unsupported data source {text}: expected an image folder, a .npy/.npz file or 'synthetic'")
    if labels_file is not None and ds.classes is None:  # would be silently ignored: no accuracy where asked
        raise ResdeployError(f"--labels maps class folder names, but {text} has no class folders",
                             hint="put each class's images in a subfolder named after the class")
    ds.seed = seed
    return _select(ds, samples, seed)


def _check_image_shape(source: str, spec: PreprocessSpec | None, shape: tuple[int, ...] | None) -> None:
    """Images become 3-channel tensors: a model taking 1 or 4 channels needs its tensors given as an array file."""
    if spec is None or shape is None or tuple(shape) == input_shape(spec):
        return
    raise ResdeployError(f"{source} holds images, which preprocessing turns into {spec.color} tensors of shape "
                         f"{input_shape(spec)}, but the model takes {tuple(shape)} per sample",
                         hint="pass a .npy/.npz file of preprocessed float32 tensors of the model's input shape")


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


def _ignored(name: str) -> bool:
    """Hidden entries (.DS_Store, .ipynb_checkpoints, ._ files) and ``__MACOSX``, never data.

    ``__MACOSX`` is the folder of resource forks that a zip made by macOS's Finder unpacks
    beside the real folders: as a class folder it took index 0 and shifted every label.
    """
    return name.startswith(".") or name == "__MACOSX"


def _image_files(root: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files under ``root`` (symlinks followed, hidden entries ignored) and the files that are not images."""
    images: list[Path] = []
    unsupported: list[tuple[str, str]] = []

    def unreadable(exc: OSError) -> None:  # os.walk drops unreadable folders silently otherwise
        where = Path(exc.filename) if exc.filename else root
        name = str(where.relative_to(root)) if where != root and where.is_relative_to(root) else str(where)
        unsupported.append((name + "/", f"cannot read folder: {exc.strerror or exc}"))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=unreadable):
        if _in_symlink_loop(Path(dirpath), root):  # a link to an ancestor: would repeat every image below it
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not _ignored(d))
        for name in sorted(filenames):
            if _ignored(name):
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


def _class_folders(root: Path) -> list[str]:
    """torchvision's ``find_classes``: every subfolder (symlinks followed), sorted as strings; hidden ones left out."""
    try:
        with os.scandir(root) as entries:
            return sorted(e.name for e in entries if not _ignored(e.name) and e.is_dir())
    except OSError as exc:
        raise ResdeployError(f"cannot read folder {root}: {exc.strerror or exc}") from None


def _named(items: Sequence[str], limit: int = _MAX_NAMED) -> str:
    """'a, b, c and 4 more': lists in one-line messages stay one line."""
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def read_labels_file(path: str | os.PathLike[str], classes: Sequence[str] | None = None) -> dict[str, int]:
    """Class folder name -> class index, from a labels file.

    Formats: JSON ``{"name": index}``, a JSON list of names in index order, Keras's ImageNet
    ``imagenet_class_index.json`` (``{"0": ["n01440764", "tench"], ...}``: the WordNet id is
    the folder name), or a text file with one name per line, in index order. A text line
    may carry a description after the name, as ImageNet's ``LOC_synset_mapping.txt`` does
    ("n01440764 tench, Tinca tinca"): when ``classes`` (the folder names) are given and the
    whole lines do not name them all, the first word of each line is the name.

    A name listed twice has no single index: an error when it names a class folder (or
    always, when ``classes`` is not given).
    """
    p = Path(path)
    if p.is_dir():
        raise ResdeployError(f"labels file {p} is a folder", hint="pass a .json file or a text file with one class name per line")
    try:
        text = p.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark would become part of the first name
    except OSError as exc:
        raise ResdeployError(f"cannot read labels file {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ResdeployError(f"labels file {p} is not UTF-8 text",
                             hint="pass a .json file or a text file with one class name per line") from None
    if p.suffix.lower() == ".csv":
        raise ResdeployError(f"labels file {p}: CSV is not a supported labels format",
                             hint='use JSON {"name": index}, a JSON list of names, or a text file with one name per line')
    if p.suffix.lower() == ".json":
        return _labels_from_json(p, text, classes)
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ResdeployError(f"labels file {p} is empty")
    mapping, dupes = _index_names(names)
    if classes is not None and any(c not in mapping for c in classes) and any(len(n.split()) > 1 for n in names):
        first = [n.split()[0] for n in names]
        first_map, first_dupes = _index_names(first)
        if all(c in first_map for c in classes):  # "n01440764 tench, Tinca tinca": the first word names the folder
            mapping, dupes = first_map, first_dupes
    _refuse_duplicates(p, dupes, classes)
    return mapping


def _index_names(names: Sequence[str]) -> tuple[dict[str, int], set[str]]:
    mapping: dict[str, int] = {}
    dupes: set[str] = set()
    for i, name in enumerate(names):
        if name in mapping:
            dupes.add(name)
        else:
            mapping[name] = i
    return mapping, dupes


def _refuse_duplicates(p: Path, dupes: set[str], classes: Sequence[str] | None) -> None:
    clash = sorted(dupes if classes is None else dupes & set(classes))
    if clash:
        raise ResdeployError(f"labels file {p} lists {_named(clash)} more than once, so the class index is ambiguous")


def _labels_from_json(p: Path, text: str, classes: Sequence[str] | None) -> dict[str, int]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ResdeployError(f"labels file {p} is not valid JSON: {exc}") from None
    if isinstance(data, list) and data and all(isinstance(n, str | int) and not isinstance(n, bool) for n in data):
        mapping, dupes = _index_names([str(n) for n in data])
        _refuse_duplicates(p, dupes, classes)
        return mapping
    if isinstance(data, dict) and data:
        values = list(data.values())
        if all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
            return {str(k): int(v) for k, v in data.items()}
        if all(isinstance(k, str) and k.isdigit() for k in data) and all(
                isinstance(v, list) and v and isinstance(v[0], str) for v in values):
            # Keras's imagenet_class_index.json: {"0": ["n01440764", "tench"], ...}
            counts = Counter(str(v[0]) for v in values)
            _refuse_duplicates(p, {n for n, c in counts.items() if c > 1}, classes)
            return {str(v[0]): int(k) for k, v in data.items()}
    raise ResdeployError(f"labels file {p} must map class names to integer indices >= 0, or list class names in order")


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
    empty: list[str] = []
    if not at_root:
        # Class subfolders (torchvision ImageFolder layout): class = first folder under root.
        folder_of = [p.relative_to(root).parts[0] for p in images]
        classes = _class_folders(root)
        used = set(folder_of)
        empty = [c for c in classes if c not in used]
        if labels_file is not None:
            mapping = read_labels_file(labels_file, classes=sorted(used))
            unknown = sorted(c for c in used if c not in mapping)
            if unknown:
                raise ResdeployError(f"class folders not in {labels_file}: {_named(unknown)}",
                                     hint="list every class folder name in the labels file")
        else:
            mapping = {c: i for i, c in enumerate(classes)}
        labels = [mapping[f] for f in folder_of]
        if empty:
            reporter.warn(f"{len(empty)} class folder(s) in {root} hold no images: {_named(empty)}; "
                          + ("they keep their index in the sorted order (torchvision's ImageFolder rule), so the "
                             "other classes' labels do not shift" if labels_file is None else "ignored"))
    elif require_labels:
        raise ResdeployError(f"{root} has images at its top level, so it is unlabelled",
                             hint="put each class's images in a subfolder named after the class")
    elif len(at_root) < len(images):
        reporter.warn(f"{root} has {len(at_root)} image(s) at its top level besides {len(images) - len(at_root)} in "
                      "subfolders: treated as unlabelled (no accuracy); move the top-level images into class "
                      "folders for a labelled set")
    ds = Dataset("images", str(root), spec, list(images), labels=labels, classes=classes, root=root,
                 unsupported=unsupported, empty_classes=empty)
    if unsupported:
        reporter.warn(f"skipping {len(unsupported)} file(s) of unsupported type in {root}: "
                      f"{_named([n for n, _ in unsupported])}")
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
            # uint8 stays uint8: a model that normalises in its graph takes pixels
            batch = {input_name: np.ascontiguousarray(inputs[self.pos:stop],
                                                      dtype=np.uint8 if inputs.dtype == np.uint8 else np.float32)}
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
