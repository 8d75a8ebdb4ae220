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


# ------------------------------------------------------------------------------------------
# Real folders: what users point --calib-data and validate --data at
# ------------------------------------------------------------------------------------------
def _rgb(path: Path, size: tuple[int, int] = (12, 10), seed: int = 0, **kw: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, **kw)
    return path


def test_every_torchvision_extension_any_case(tmp_path: Path) -> None:
    for i, name in enumerate(["a.JPG", "b.JPEG", "c.PNG", "d.webp", "e.bmp", "f.tif", "g.TIFF", "h.ppm", "i.jpeg"]):
        _rgb(tmp_path / name, seed=i)
    Image.new("L", (9, 9), 50).save(tmp_path / "j.pgm")
    Image.new("RGB", (9, 9)).save(tmp_path / "k.gif")  # not in torchvision's IMG_EXTENSIONS either
    rep = Recorder()
    ds = open_data(tmp_path, SPEC, reporter=rep)
    x, _ = ds.load(rep)
    assert len(x) == 10 and not ds.skipped
    assert len(rep.warnings) == 1 and "1 file(s) of unsupported type" in rep.warnings[0] and "k.gif" in rep.warnings[0]


def test_every_image_mode_loads(tmp_path: Path) -> None:
    base = Image.fromarray(np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8))
    base.convert("L").save(tmp_path / "gray.png")
    base.convert("P").save(tmp_path / "palette.png")
    base.convert("RGBA").save(tmp_path / "rgba.png")
    base.convert("LA").save(tmp_path / "la.png")
    base.convert("CMYK").save(tmp_path / "cmyk.jpg")
    base.convert("1").save(tmp_path / "bits.bmp")
    Image.fromarray(np.full((10, 12), 40000, dtype=np.uint16)).save(tmp_path / "g16.png")
    exif = Image.Exif()
    exif[0x0112] = 8
    base.save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    rep = Recorder()
    got = {name: x for x, _, name in open_data(tmp_path, SPEC, reporter=rep).samples(rep)}
    assert len(got) == 8 and all(x.shape == (3, 8, 8) and np.isfinite(x).all() for x in got.values())
    assert not rep.warnings
    # 16-bit: 40000 / 65535 * 255 = 156, where plain convert("RGB") clips to 255
    expected = (156 / 255 - np.array(SPEC.mean)) / np.array(SPEC.std)
    np.testing.assert_allclose(got["g16.png"].mean(axis=(1, 2)), expected, atol=1e-5)


def test_tiny_and_extreme_aspect_images(tmp_path: Path) -> None:
    _rgb(tmp_path / "dot.png", (1, 1))
    _rgb(tmp_path / "strip.png", (3000, 2))
    _rgb(tmp_path / "tall.png", (2, 3000))
    x, _ = open_data(tmp_path, PreprocessSpec(resize=256, crop=224)).load()
    assert x.shape == (3, 3, 224, 224) and np.isfinite(x).all()


def test_class_names_sort_as_strings_like_imagefolder(tmp_path: Path) -> None:
    for i, cls in enumerate(["2", "10", "1", "B", "a"]):
        _img(tmp_path / cls / "x.png", 10 * i)
    ds = open_data(tmp_path, SPEC)
    assert ds.classes == ["1", "10", "2", "B", "a"]  # sorted(str), not numeric or case-folded
    _, y = ds.load()
    assert dict(zip([n.split("/")[0] for _, _, n in ds.samples()], y.tolist(), strict=True)) == {
        "1": 0, "10": 1, "2": 2, "B": 3, "a": 4}


def test_empty_class_folder_keeps_its_index(tmp_path: Path) -> None:
    for cls in ("ant", "cat"):
        _img(tmp_path / cls / "x.png")
    (tmp_path / "bee").mkdir()  # no images: torchvision counts it, so "cat" stays 2
    (tmp_path / "cow").mkdir()
    (tmp_path / "cow" / "notes.txt").write_text("no images here")
    rep = Recorder()
    ds = open_data(tmp_path, SPEC, reporter=rep)
    _, y = ds.load()
    assert ds.classes == ["ant", "bee", "cat", "cow"] and y.tolist() == [0, 2]
    assert ds.empty_classes == ["bee", "cow"] and ds.describe()["empty_classes"] == ["bee", "cow"]
    assert any("2 class folder(s)" in w and "bee, cow" in w and "keep their index" in w for w in rep.warnings)


def test_one_class_folder_is_labelled(tmp_path: Path) -> None:
    for i in range(3):
        _img(tmp_path / "only" / f"{i}.png", i)
    ds = open_data(tmp_path, SPEC)
    assert ds.classes == ["only"] and ds.load()[1].tolist() == [0, 0, 0]


def test_hidden_entries_and_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _img(root / "cat" / "a.png")
    _img(root / "cat" / ".hidden.png")
    _img(root / "cat" / "._a.png")  # macOS AppleDouble file: hidden
    _img(root / ".ipynb_checkpoints" / "a.png")  # torchvision would make this a class; never meant
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    _img(tmp_path / "elsewhere" / "dog" / "d.png", 99)
    (root / "dog").symlink_to(tmp_path / "elsewhere" / "dog", target_is_directory=True)
    (root / "cat" / "linked.png").symlink_to(root / "cat" / "a.png")
    (root / "cat" / "dangling.png").symlink_to(tmp_path / "gone.png")
    rep = Recorder()
    ds = open_data(root, SPEC, reporter=rep)
    assert ds.classes == ["cat", "dog"]
    x, y = ds.load(rep)
    assert y.tolist() == [0, 0, 1] and len(x) == 3
    assert ds.skipped == [("cat/dangling.png", "No such file or directory")]
    assert rep.warnings == [f"skipped 1 file(s) in {root} that could not be used: cat/dangling.png "
                            "(No such file or directory)"]


def test_a_macos_zip_s_macosx_folder_is_no_class(tmp_path: Path) -> None:
    # Unzipping a folder zipped by macOS's Finder leaves __MACOSX/ (AppleDouble "._" files) beside
    # the class folders: it sorted first, became class 0 (empty, "keeps its index") and shifted every label.
    for cls in ("ant", "cat"):
        _img(tmp_path / cls / "x.png")
        (tmp_path / "__MACOSX" / cls).mkdir(parents=True)
        (tmp_path / "__MACOSX" / cls / "._x.png").write_bytes(b"\0\5\26\7 AppleDouble")
    _img(tmp_path / "__MACOSX" / "stray.png")  # even an image in it is not data
    rep = Recorder()
    ds = open_data(tmp_path, SPEC, reporter=rep)
    assert ds.classes == ["ant", "cat"] and ds.load()[1].tolist() == [0, 1]
    assert ds.empty_classes == [] and rep.warnings == []


def test_truncated_and_non_image_content_skipped_and_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(4):
        _rgb(tmp_path / "cls" / f"ok{i}.jpg", (40, 40), seed=i)
    good = (tmp_path / "cls" / "ok0.jpg").read_bytes()
    (tmp_path / "cls" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "cls" / "text.png").write_text("not an image")
    (tmp_path / "cls" / "empty.webp").write_bytes(b"")
    (tmp_path / "cls" / "README.txt").write_text("about this set")
    rep = Recorder()
    ds = open_data(tmp_path, SPEC, reporter=rep)
    x, y = ds.load(rep)
    assert len(x) == 4 and y.tolist() == [0] * 4
    reasons = dict(ds.skipped)
    assert set(reasons) == {"cls/truncated.jpg", "cls/text.png", "cls/empty.webp"}
    assert "truncated" in reasons["cls/truncated.jpg"]
    assert "cannot identify image file" in reasons["cls/text.png"] and str(tmp_path) not in reasons["cls/text.png"]
    assert ds.unsupported == [("cls/README.txt", "unsupported file type '.txt'")]
    assert any("skipped 3 file(s)" in w for w in rep.warnings)
    # A picture PIL refuses as a decompression bomb is one more skipped file, not a traceback.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    ds = open_data(tmp_path, SPEC)
    with pytest.raises(ResdeployError, match="all 7 files failed to load"):
        ds.load(Recorder())
    assert any("decompression-bomb limit" in why for _, why in ds.skipped)


def test_a_bad_spec_stops_the_run_instead_of_skipping_every_file(tmp_path: Path) -> None:
    _img(tmp_path / "a.png")
    with pytest.raises(ResdeployError, match="interpolation"):
        open_data(tmp_path, PreprocessSpec(resize=8, crop=8, interpolation="magic")).load()


def test_labels_files_every_format(labelled: Path, tmp_path: Path) -> None:
    def labels_by_class(labels_file: Path) -> dict[str, int]:
        ds = open_data(labelled, SPEC, labels_file=labels_file)
        return {n.split("/")[0]: int(y) for (_, y, n) in ds.samples()}

    files = {
        "dict.json": '{"ant": 7, "cat": 3, "dog": 5, "unused": 9}',
        "list.json": '["x", "cat", "ant", "y", "z", "dog"]',
        "names.txt": "x\ncat\nant\n\ny\nz\ndog\n",
        "bom.txt": "\ufeffcat\nant\ndog\n",  # Windows editors write a byte-order mark
        "crlf.txt": "cat\r\nant\r\ndog\r\n",
        "synsets.txt": "cat felis catus, house cat\nant emmet, pismire\ndog Canis familiaris\n",
        "keras.json": '{"0": ["cat", "tabby"], "1": ["ant", "emmet"], "2": ["dog", "hound"]}',
    }
    expected = {"dict.json": {"ant": 7, "cat": 3, "dog": 5}, "list.json": {"cat": 1, "ant": 2, "dog": 5},
                "names.txt": {"cat": 1, "ant": 2, "dog": 5}}
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        assert labels_by_class(tmp_path / name) == expected.get(name, {"cat": 0, "ant": 1, "dog": 2}), name


def test_labels_files_refused_with_one_line(labelled: Path, tmp_path: Path) -> None:
    cases = {
        "dupe.txt": ("cat\nant\ndog\ncat\n", "lists cat more than once"),
        "dupe.json": ('["cat", "ant", "dog", "ant"]', "lists ant more than once"),
        "l.csv": ("name,index\ncat,0\n", "CSV is not a supported"),
        "bad.json": ('{"cat": "zero"}', "must map class names to integer"),
        "empty.txt": ("\n\n", "is empty"),
        "latin1.txt": ("caf\xe9\n", "not UTF-8"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_bytes(text.encode("latin-1"))
        with pytest.raises(ResdeployError, match=message):
            open_data(labelled, SPEC, labels_file=tmp_path / name)
    (tmp_path / "ok_dupe.txt").write_text("crane\ncat\nant\ncrane\ndog\n")  # duplicate that names no folder: fine
    assert open_data(labelled, SPEC, labels_file=tmp_path / "ok_dupe.txt").labels is not None
    with pytest.raises(ResdeployError, match="is a folder"):
        open_data(labelled, SPEC, labels_file=tmp_path)
    with pytest.raises(ResdeployError, match="cannot read labels file"):
        open_data(labelled, SPEC, labels_file=tmp_path / "missing.txt")
