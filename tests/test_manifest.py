"""The typed manifest: every file record measured from its own file, lineage, migration, tampering, clobbering.

Real exports and real quantized graphs of ResNet-20 at 16x16 (a few seconds in all),
and the schema-1 manifests that resdeploy 0.1.0 wrote, checked in under tests/data.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest

import resdeploy
from resdeploy import artifacts
from resdeploy.errors import ResdeployError
from resdeploy.exporter import ExportConfig
from resdeploy.resolve import resolve_artifact
from tests.conftest import run_cli

V1 = Path(__file__).parent / "data" / "manifest_v1"
SIZE = 16


@pytest.fixture(scope="module")
def family(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """fp32 export and its fp16, fp16 --fp16-io and int8 variants, made by the library's stages."""
    root = tmp_path_factory.mktemp("family") / "resnet20"
    # the TorchScript exporter: seconds faster than dynamo, and the manifest facts do not depend on it
    fp32 = resdeploy.export("resnet20", root / "fp32", ExportConfig(input_size=SIZE, exporter="torchscript", opset=17))
    out = {"fp32": Path(fp32.model_path).parent}
    out["fp16"] = resdeploy.quantize(fp32.model_path, precision="fp16").output_dir
    out["fp16-io"] = resdeploy.quantize(fp32.model_path, precision="fp16", fp16_io=True,
                                        output=str(root / "fp16-io")).output_dir
    out["int8-cpu"] = resdeploy.quantize(fp32.model_path, precision="int8", calib_data="synthetic:8",
                                         calib_samples=8).output_dir
    return out


def _manifest(d: Path) -> dict:
    return json.loads((d / "manifest.json").read_text())


@pytest.mark.parametrize("variant", ["fp32", "fp16", "fp16-io", "int8-cpu"])
@pytest.mark.slow
def test_each_file_record_is_its_own_file(family: dict[str, Path], variant: str) -> None:
    d = family[variant]
    m = _manifest(d)
    assert m["schema"] == "resdeploy.manifest/2"
    rec = m["artifact"]
    f = d / rec["file"]
    assert rec["sha256"] == artifacts.sha256_file(f) and rec["bytes"] == f.stat().st_size
    for ext in rec["external_data"]:
        assert ext["sha256"] == artifacts.sha256_file(d / ext["file"])
    if variant != "fp32":
        # lineage, not inheritance: the parent is named with its own hash, which differs from ours
        parent = family["fp32"] / "model.onnx"
        assert m["parent"]["sha256"] == artifacts.sha256_file(parent) != rec["sha256"]
        assert (d / m["parent"]["path"]).resolve() == parent.resolve()
    # the graph summary is this file's graph
    proto = onnx.load(str(f), load_external_data=False)
    ops: dict[str, int] = {}
    for n in proto.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    assert m["graph"]["ops"] == dict(sorted(ops.items())) and m["graph"]["nodes"] == len(proto.graph.node)


@pytest.mark.slow
def test_int8_manifest_counts_its_own_quantize_nodes(family: dict[str, Path]) -> None:
    m = _manifest(family["int8-cpu"])
    proto = onnx.load(str(family["int8-cpu"] / "model.onnx"))
    q = sum(n.op_type == "QuantizeLinear" for n in proto.graph.node)
    assert q > 0 and m["graph"]["ops"]["QuantizeLinear"] == q and m["graph"]["precision"] == "int8"
    assert "QuantizeLinear" not in _manifest(family["fp32"])["graph"]["ops"]


@pytest.mark.slow
def test_fp16_io_manifest_says_float16_inputs(family: dict[str, Path]) -> None:
    m = _manifest(family["fp16-io"])
    assert [i["dtype"] for i in m["inputs"]] == ["float16"] and [o["dtype"] for o in m["outputs"]] == ["float16"]
    assert [i["dtype"] for i in _manifest(family["fp16"])["inputs"]] == ["float32"]  # the default keeps FP32 I/O
    assert m["graph"]["precision"] == "fp16"


def test_schema1_examples_migrate(tmp_path: Path) -> None:
    fp32 = json.loads((V1 / "fp32" / "manifest.json").read_text())
    int8 = json.loads((V1 / "int8-cpu" / "manifest.json").read_text())
    assert fp32["schema"] == int8["schema"] == "resdeploy.manifest/1"
    # the defect the migration repairs: the variant's file record is its parent's
    assert int8["artifact"]["sha256"] == fp32["artifact"]["sha256"] != int8["sha256"]

    m = artifacts.parse_manifest(artifacts.migrate_v1(fp32))
    assert m.artifact is not None and m.artifact.sha256 == fp32["artifact"]["sha256"]
    assert m.graph is not None and m.graph.precision == "fp32" and m.graph.inputs[0].shape[1:] == [3, 32, 32]

    for name in ("fp16", "fp16-io", "int8-cpu"):
        v1 = json.loads((V1 / name / "manifest.json").read_text())
        v2 = artifacts.migrate_v1(v1)
        typed = artifacts.parse_manifest(v2)
        assert typed.artifact is not None and typed.artifact.sha256 == v1["sha256"]  # its own hash
        assert typed.graph is None  # the parent's graph facts are not carried over
        assert typed.parent is not None and typed.parent.sha256 == fp32["artifact"]["sha256"]
        assert typed.precision == v1["precision"] and typed.preprocess == v1["preprocess"]

    # loaded beside its file, the migrated INT8 manifest measures its own graph and checks the file
    d = tmp_path / "int8-cpu"
    shutil.copytree(V1 / "int8-cpu", d)
    loaded = artifacts.load_manifest(d, verify=True)
    assert loaded is not None and loaded.graph is not None
    proto = onnx.load(str(d / "model.onnx"))
    assert loaded.graph.ops["QuantizeLinear"] == sum(n.op_type == "QuantizeLinear" for n in proto.graph.node) > 0
    assert resolve_artifact(d).precision == "int8"


def test_tampered_model_is_one_line_exit_2_naming_both_hashes(tmp_path: Path) -> None:
    d = tmp_path / "int8-cpu"
    shutil.copytree(V1 / "int8-cpu", d)  # a schema-1 artifact: the recorded hash is the one that counts
    f = d / "model.onnx"
    recorded = artifacts.sha256_file(f)
    assert recorded == _manifest(d)["sha256"]
    data = bytearray(f.read_bytes())
    data[-10] ^= 0xFF  # a few bytes flipped: same size
    f.write_bytes(bytes(data))
    actual = artifacts.sha256_file(f)
    for args in (["quantize", str(d), "-p", "fp16", "-o", str(tmp_path / "out"), "-q"],
                 ["validate", str(d), "--reference", str(f), "--data", "synthetic:4", "-q"],
                 ["bench", str(d), "--engine", "ort", "--iterations", "1", "--duration", "0", "-q"]):
        code, out, err = run_cli(*args)
        lines = [x for x in err.splitlines() if x.strip()]
        assert code == 2 and out == "" and len(lines) == 1, (args, err)
        assert recorded in lines[0] and actual in lines[0], lines[0]
    assert not (tmp_path / "out").exists()


def test_untouched_copy_with_new_mtime_still_loads(tmp_path: Path) -> None:
    d = tmp_path / "copy"
    shutil.copytree(V1 / "int8-cpu", d, copy_function=shutil.copyfile)  # new mtimes, same bytes
    art = resolve_artifact(d)
    assert art.sha256 == artifacts.sha256_file(d / "model.onnx")


@pytest.mark.slow
def test_two_exports_racing_into_one_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second run to finish fails without --force and leaves the first run's artifact as it is."""
    from resdeploy import exporter

    out = tmp_path / "race"
    real = exporter.check_parity

    def rival_commits_meanwhile(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        out.mkdir()
        (out / "model.onnx").write_bytes(b"the other run's model")
        return real(*args, **kwargs)

    monkeypatch.setattr(exporter, "check_parity", rival_commits_meanwhile)
    flags = ("--input-size", str(SIZE), "--exporter", "torchscript", "--opset", "17", "-o", str(out), "-q")
    code, _, err = run_cli("export", "resnet20", *flags)
    assert code == 2 and "appeared while this run was writing it" in err and "Traceback" not in err
    assert (out / "model.onnx").read_bytes() == b"the other run's model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race"]  # no temporary left behind
    # with --force the later run replaces it
    monkeypatch.undo()
    code, _, err = run_cli("export", "resnet20", *flags, "--force")
    assert code == 0, err
    assert _manifest(out)["artifact"]["sha256"] == artifacts.sha256_file(out / "model.onnx")


def test_foreign_onnx_exposes_its_input(tiny_onnx: tuple[Path, object], tmp_path: Path) -> None:
    path, _ = tiny_onnx
    art = resolve_artifact(path)
    assert art.kind == "onnx" and art.manifest is None and art.precision == "fp32"
    inp = art.input()
    assert (inp.name, inp.dtype, inp.layout, inp.channels, inp.height, inp.width) == \
        ("input", "float32", "NCHW", 3, 32, 32)
    assert resolve_artifact("resnet50").kind == "zoo"
    with pytest.raises(ResdeployError, match="no such file"):
        resolve_artifact(tmp_path / "nope.onnx")


def test_two_quantize_runs_racing_into_one_directory(tiny_onnx: tuple[Path, object], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Quicker than the export race: the same exclusive commit, under another stage."""
    from resdeploy.precision import pipeline

    out = tmp_path / "fp16"
    real = pipeline._manifest

    def rival_commits_meanwhile(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        out.mkdir()
        (out / "model.onnx").write_bytes(b"the other run's model")
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_manifest", rival_commits_meanwhile)
    code, _, err = run_cli("quantize", str(tiny_onnx[0]), "-p", "fp16", "--input-size", "32", "-o", str(out), "-q")
    assert code == 2 and "appeared while this run was writing it" in err and "Traceback" not in err
    assert (out / "model.onnx").read_bytes() == b"the other run's model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fp16"]


def test_quantize_of_a_foreign_onnx_records_its_own_file(tiny_onnx: tuple[Path, object], tmp_path: Path) -> None:
    res = resdeploy.quantize(tiny_onnx[0], precision="fp16", fp16_io=True, input_size=32, output=str(tmp_path / "v"))
    m = _manifest(res.output_dir)
    assert m["artifact"]["sha256"] == artifacts.sha256_file(res.model_path)
    assert m["artifact"]["bytes"] == res.model_path.stat().st_size
    assert m["inputs"][0]["dtype"] == "float16" and m["parent"]["sha256"] == artifacts.sha256_file(tiny_onnx[0])
