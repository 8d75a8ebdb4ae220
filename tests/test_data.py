"""Data sources: folders (flat, class folders, nested), arrays, synthetic; selection; bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resdeploy.console import Reporter
from resdeploy.data import calibration_reader, open_data, read_labels_file
from resdeploy.errors import ResdeployError
from resdeploy.preprocess import PreprocessSpec

SPEC = PreprocessSpec(resize=8, crop=8)


class Recorder(Reporter):
    """A quiet reporter that keeps the warnings, so tests can read what a user would see."""

    def __init__(self) -> None:
        super().__init__(quiet=True)
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def _img(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (10, 10), (value, value, value)).save(path)
    return path


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    root = tmp_path / "labelled"
    for cls, n in (("cat", 3), ("ant", 2), ("dog", 4)):
        for i in range(n):
            _img(root / cls / f"{i}.png", 10 * i)
    _img(root / "dog" / "deeper" / "x.jpg", 200)  # nested inside a class folder: still "dog"
    return root


def test_class_folders_sorted_like_imagefolder(labelled: Path) -> None:
    ds = open_data(labelled, SPEC)
    assert ds.classes == ["ant", "cat", "dog"]
    x, y = ds.load()
    assert x.shape == (10, 3, 8, 8) and x.dtype == np.float32
    assert y.tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 2, 2]


def test_labels_file_json_and_text(labelled: Path, tmp_path: Path) -> None:
    (tmp_path / "l.json").write_text('{"ant": 7, "cat": 3, "dog": 5}')
    (tmp_path / "l.txt").write_text("dog\nant\ncat\n")
    assert read_labels_file(tmp_path / "l.txt") == {"dog": 0, "ant": 1, "cat": 2}
    _, y = open_data(labelled, SPEC, labels_file=tmp_path / "l.json").load()
    assert sorted(set(y.tolist())) == [3, 5, 7]
    (tmp_path / "bad.json").write_text('{"ant": 0}')
    with pytest.raises(ResdeployError, match="cat"):
        open_data(labelled, SPEC, labels_file=tmp_path / "bad.json")


def test_flat_folder_is_unlabelled_and_recursive(tmp_path: Path) -> None:
    _img(tmp_path / "a.png")
    _img(tmp_path / "sub" / "b.webp")
    rep = Recorder()
    ds = open_data(tmp_path, SPEC, reporter=rep)
    assert not ds.labelled and len(ds) == 2
    # A stray image beside class folders silently turned a labelled set into an unlabelled one.
    assert rep.warnings and "1 image(s) at its top level besides 1 in subfolders" in rep.warnings[0]
    with pytest.raises(ResdeployError, match="unlabelled"):
        open_data(tmp_path, SPEC, require_labels=True)
    (tmp_path / "l.txt").write_text("a\nb\n")
    with pytest.raises(ResdeployError, match="has no class folders"):  # was silently ignored
        open_data(tmp_path, SPEC, labels_file=tmp_path / "l.txt")


def test_symlink_loop_does_not_repeat_images(labelled: Path) -> None:
    (labelled / "cat" / "up").symlink_to("..", target_is_directory=True)
    ds = open_data(labelled, SPEC)
    assert len(ds) == 10 and ds.classes == ["ant", "cat", "dog"]


def test_corrupt_and_unsupported_files_counted_and_named(labelled: Path) -> None:
    (labelled / "cat" / "broken.jpg").write_bytes(b"\xff\xd8garbage")
    (labelled / "cat" / "notes.txt").write_text("hi")
    (labelled / ".DS_Store").write_text("")  # hidden: ignored silently
    rep = Recorder()
    ds = open_data(labelled, SPEC, reporter=rep)
    x, _ = ds.load(rep)
    assert len(x) == 10
    assert len(rep.warnings) == 2
    assert "1 file(s) of unsupported type" in rep.warnings[0] and "notes.txt" in rep.warnings[0]
    assert "skipped 1 file(s)" in rep.warnings[1] and "cat/broken.jpg" in rep.warnings[1]


def test_selection_is_deterministic_and_replaces_bad_files(tmp_path: Path) -> None:
    for i in range(20):
        _img(tmp_path / f"{i:02d}.png", i)
    def names(ds, rep: Reporter | None = None) -> list[str]:  # noqa: ANN001
        return [n for _, _, n in ds.samples(rep or Recorder())]

    a = names(open_data(tmp_path, SPEC, samples=5, seed=1))
    assert a == names(open_data(tmp_path, SPEC, samples=5, seed=1))
    assert a != names(open_data(tmp_path, SPEC, samples=5, seed=2))
    assert len(set(a)) == 5
    (tmp_path / a[0]).write_bytes(b"broken")  # the first pick is now corrupt: the next one replaces it
    rep = Recorder()
    b = names(open_data(tmp_path, SPEC, samples=5, seed=1), rep)
    assert len(b) == 5 and b[:4] == a[1:] and a[0] not in b
    assert any(a[0] in w for w in rep.warnings)
    assert len(open_data(tmp_path, SPEC, samples=500)) == 20


def test_empty_missing_and_all_invalid_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResdeployError, match="no images"):
        open_data(tmp_path / "empty", SPEC)
    with pytest.raises(ResdeployError, match="not found"):
        open_data(tmp_path / "nope", SPEC)
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(3):
        (bad / f"{i}.jpg").write_bytes(b"junk")
    with pytest.raises(ResdeployError, match="all 3 files failed"):
        open_data(bad, SPEC).load()
    with pytest.raises(ResdeployError, match="positive"):
        open_data(bad, SPEC, samples=0)


def test_npy_tensors_shape_checked(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((6, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    got, labels = open_data(tmp_path / "x.npy", SPEC).load()
    np.testing.assert_array_equal(got, x)
    assert labels is None
    np.save(tmp_path / "wrong.npy", x[:, :, :4, :4])
    with pytest.raises(ResdeployError, match=r"\(3, 4, 4\).*\(3, 8, 8\)"):
        open_data(tmp_path / "wrong.npy", SPEC)
    (tmp_path / "corrupt.npy").write_bytes(b"not numpy")
    with pytest.raises(ResdeployError, match="cannot read"):
        open_data(tmp_path / "corrupt.npy", SPEC)


def test_npy_refuses_non_numeric_non_finite_and_negative_labels(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype(np.float32)
    for dtype in (np.bool_, np.complex64):
        np.save(tmp_path / "odd.npy", x.astype(dtype))
        with pytest.raises(ResdeployError, match=f"holds {np.dtype(dtype)} data"):
            open_data(tmp_path / "odd.npy", SPEC)
    bad = x.copy()
    bad[1, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ResdeployError, match="1 of 3 samples hold NaN"):
        open_data(tmp_path / "nan.npy", SPEC)
    np.savez(tmp_path / "neg.npz", x=x, y=np.array([0, -1, 2]))
    with pytest.raises(ResdeployError, match="class indices >= 0, got -1"):
        open_data(tmp_path / "neg.npz", SPEC)
    (tmp_path / "neg.json").write_text('{"a": 0, "b": -1}')
    with pytest.raises(ResdeployError, match="indices >= 0"):
        read_labels_file(tmp_path / "neg.json")


def test_npz_uint8_images_with_labels_go_through_preprocessing(tmp_path: Path) -> None:
    imgs = np.full((4, 10, 10, 3), 255, dtype=np.uint8)
    np.savez(tmp_path / "d.npz", images=imgs, labels=np.array([0, 1, 1, 0]))
    ds = open_data(tmp_path / "d.npz", SPEC, require_labels=True)
    x, y = ds.load()
    assert y.tolist() == [0, 1, 1, 0]
    ref = np.stack([np.full((8, 8), (1 - m) / s, dtype=np.float32) for m, s in zip(SPEC.mean, SPEC.std, strict=True)])
    np.testing.assert_allclose(x[0], ref, atol=1e-6)
    np.savez(tmp_path / "nolab.npz", x=imgs)
    with pytest.raises(ResdeployError, match="no labels"):
        open_data(tmp_path / "nolab.npz", SPEC, require_labels=True)


def test_synthetic_warns_and_is_seeded() -> None:
    rep = Recorder()
    a, _ = open_data("synthetic", SPEC, samples=3, seed=4, reporter=rep).load()
    b, _ = open_data("synthetic:3", SPEC, seed=4).load()
    assert a.shape == (3, 3, 8, 8)
    np.testing.assert_array_equal(a, b)
    assert "meaningless" in rep.warnings[0]
    with pytest.raises(ResdeployError, match="no labels"):
        open_data("synthetic", SPEC, require_labels=True)
    with pytest.raises(ResdeployError):
        open_data("synthetic:zero", SPEC)


def test_calibration_reader_protocol() -> None:
    x = np.arange(5 * 3 * 2 * 2, dtype=np.float32).reshape(5, 3, 2, 2)
    reader = calibration_reader(x, "input", batch_size=2)
    got = []
    while (item := reader.get_next()) is not None:
        got.append(item["input"])
    assert [g.shape[0] for g in got] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate(got), x)
    reader.rewind()
    assert reader.get_next()["input"].shape[0] == 2


def test_shipped_calibration_sample_is_small_and_usable() -> None:
    root = Path(__file__).resolve().parent.parent / "calibration" / "sample"
    files = sorted(root.iterdir())
    assert len(files) == 32 and sum(f.stat().st_size for f in files) < 2_000_000
    rep = Recorder()
    ds = open_data(root, PreprocessSpec(), samples=8, seed=0, reporter=rep)
    x, labels = ds.load(rep)
    assert x.shape == (8, 3, 224, 224) and labels is None and not rep.warnings
    assert 0.2 < float(x.std()) < 3.0  # real photographs, normalised: not blank, not garbage
