"""`resdeploy build` checks the user's input before TensorRT: a typo must not read "install TensorRT".

TensorRT is made missing here whatever the machine has (``sys.modules["tensorrt"] = None``
makes its import fail), so the order is tested the same way everywhere. The fake-TensorRT
build tests live in tests/trt/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import run_cli


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def no_tensorrt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` raises ImportError
    monkeypatch.setenv("RESDEPLOY_CACHE_DIR", str(tmp_path / "cache"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # a zoo name would be exported to ./artifacts: nothing may appear here
    return work


def test_good_input_reaches_the_tensorrt_check(no_tensorrt: Path, tiny_onnx) -> None:  # noqa: ANN001
    path, _ = tiny_onnx
    code, out, err = run_cli("build", str(path), "--precision", "fp32", "-o", str(no_tensorrt / "m.engine"))
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.strip().splitlines() == [err.strip()] and "pip install tensorrt" in err
    assert _tree(no_tensorrt) == set()


@pytest.mark.parametrize(("args", "match"), [
    (["{work}/nope.onnx"], "no such file"),
    (["{work}"], "no such file"),  # a directory without model.onnx
    (["{png}"], "cannot read"),
    (["{empty}"], "empty.onnx"),
    (["resnet99"], "unknown model 'resnet99'"),
    (["resnet20", "--input-size", "0"], "--input-size must be a positive integer"),
    (["{model}", "--device", "cpu"], "runs on an NVIDIA GPU"),
    (["{model}", "--device", "cuda:x"], "bad device 'cuda:x'"),
    (["{model}", "-o", "{png}/m.engine"], "cannot write"),
    (["{model}", "-o", "{work}/m.onnx"], "name the engine file"),
    (["{model}", "--batch", "8:1:4", "--json"], "bad batch profile"),
])
def test_bad_input_is_reported_before_missing_tensorrt(no_tensorrt: Path, tiny_onnx, tmp_path: Path,  # noqa: ANN001
                                                       args: list[str], match: str) -> None:
    from PIL import Image

    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.new("RGB", (8, 8)).save(inputs / "img.png")
    (inputs / "png.onnx").write_bytes((inputs / "img.png").read_bytes())
    (inputs / "empty.onnx").write_bytes(b"")
    names = {"work": str(no_tensorrt), "png": str(inputs / "png.onnx"), "empty": str(inputs / "empty.onnx"),
             "model": str(tiny_onnx[0])}
    code, out, err = run_cli("build", *(a.format(**names) for a in args))
    assert code == 2 and out == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], err
    assert "TensorRT" not in err
    assert _tree(no_tensorrt) == set()  # no export, no engine, no temporary file


@pytest.mark.parametrize("name", ["timm:resnet50.a1_in1k", "my_pkg.models:build_resnet", "torchvision:resnet18"])
def test_qualified_model_names_are_names_not_paths(no_tensorrt: Path, name: str) -> None:
    # Dots in `timm:NAME.tag` or `package.module:factory` once made build look for a file.
    code, out, err = run_cli("build", name)
    assert code == 2 and out == "" and "no such file" not in err
    assert "pip install tensorrt" in err and len(err.strip().splitlines()) == 1
    assert _tree(no_tensorrt) == set()
