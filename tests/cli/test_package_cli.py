"""`resdeploy package`: the table, --json, and bad input (one line, exit 2, nothing written)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient is installed by `make setup`")


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"") for p in root.rglob("*")}


def one_line_error(code: int, out: str, err: str, match: str) -> None:
    assert code == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert match in lines[0], err
    assert out == ""


@pytest.fixture
def variant(tiny_artifact: Path, tmp_path: Path) -> Path:
    """A private copy: the cases below write beside it."""
    dst = tmp_path / "tinynet" / "fp32"
    shutil.copytree(tiny_artifact, dst)
    return dst


def test_table_and_json(variant: Path, tmp_path: Path) -> None:
    code, out, err = run_cli("package", str(variant), "--triton", str(tmp_path / "repo"), "-q")
    assert code == 0, err
    assert "tinynet_fp32" in out and "TYPE_FP32 [3, 32, 32]" in out and "parsed by Triton's ModelConfig" in out
    code, out, err = run_cli("package", str(variant), "--triton", str(tmp_path / "repo"), "--preprocess-in-graph",
                             "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["triton"]["config"]["inputs"][0]["data_type"] == "TYPE_UINT8"
    assert d["preprocess_in_graph"]["parity"]["max_abs_diff"] <= d["preprocess_in_graph"]["parity"]["bound"]
    assert (variant.parent / "fp32-rawimage" / "model.onnx").is_file()


def _bad_bench(tmp_path: Path) -> Path:
    p = tmp_path / "other.json"
    p.write_text(json.dumps({"schema": "resdeploy.bench/1", "runs": [
        {"model_sha256": "0" * 64, "batch": 1, "throughput": 1.0, "stats": {"p99_ms": 1.0}, "engine": "ort"}]}))
    return p


@pytest.mark.parametrize("case, match", [
    ("platform", "unknown platform 'onnx'"),
    ("plan_needs_engine", "platform tensorrt_plan runs a TensorRT engine"),
    ("bench_other_model", "holds no run of this model"),
    ("bench_not_a_result", "is not a resdeploy bench result"),
    ("slo_without_bench", "--slo-ms needs --bench"),
    ("openvino_on_gpu", "openvino accelerator runs on CPU"),
    ("nothing", "nothing to do"),
])
def test_bad_input_writes_nothing(case: str, match: str, variant: Path, tmp_path: Path) -> None:
    repo = str(tmp_path / "repo")
    args = {
        "platform": ["--triton", repo, "--platform", "onnx"],
        "plan_needs_engine": ["--triton", repo, "--platform", "tensorrt_plan"],
        "bench_other_model": ["--triton", repo, "--bench", str(_bad_bench(tmp_path))],
        "bench_not_a_result": ["--triton", repo, "--bench", str(variant / "manifest.json")],
        "slo_without_bench": ["--triton", repo, "--slo-ms", "10"],
        "openvino_on_gpu": ["--triton", repo, "--accelerator", "openvino", "--kind", "gpu"],
        "nothing": [],
    }[case]
    before = tree(tmp_path)
    one_line_error(*run_cli("package", str(variant), *args), match)
    assert tree(tmp_path) == before


def test_existing_entry_needs_force(variant: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    assert run_cli("package", str(variant), "--triton", str(repo), "-q")[0] == 0
    before = tree(tmp_path)
    one_line_error(*run_cli("package", str(variant), "--triton", str(repo), "--count", "3"), "pass --force")
    assert tree(tmp_path) == before
    # with in-graph preprocessing, the taken entry is found before the copy is written
    assert run_cli("package", str(variant), "--triton", str(repo), "--preprocess-in-graph", "-q")[0] == 0
    shutil.rmtree(variant.parent / "fp32-rawimage")
    before = tree(tmp_path)
    one_line_error(*run_cli("package", str(variant), "--triton", str(repo), "--preprocess-in-graph"), "pass --force")
    assert tree(tmp_path) == before
    assert run_cli("package", str(variant), "--triton", str(repo), "--count", "3", "--force", "-q")[0] == 0
    assert "count: 3" in (repo / "tinynet_fp32" / "config.pbtxt").read_text()


def test_preprocessing_not_expressible_in_onnx(variant: Path, tmp_path: Path) -> None:
    manifest = json.loads((variant / "manifest.json").read_text())
    manifest["preprocess"]["interpolation"] = "lanczos"
    (variant / "manifest.json").write_text(json.dumps(manifest))
    before = tree(tmp_path)
    one_line_error(*run_cli("package", str(variant), "--preprocess-in-graph", "--triton", str(tmp_path / "repo")),
                   "cannot be expressed as ONNX Resize")
    assert tree(tmp_path) == before


def test_export_with_preprocess_in_graph_refuses_an_old_opset_before_exporting(tmp_path: Path) -> None:
    before = tree(tmp_path)
    one_line_error(*run_cli("export", "resnet20", "-o", str(tmp_path / "r20"), "--opset", "17",
                            "--preprocess-in-graph"), "needs --opset 18")
    assert tree(tmp_path) == before


def test_quantize_refuses_a_variant_with_preprocessing_in_the_graph(variant: Path, tmp_path: Path) -> None:
    assert run_cli("package", str(variant), "--preprocess-in-graph", "-q")[0] == 0
    raw = variant.parent / "fp32-rawimage"
    before = tree(tmp_path)
    one_line_error(*run_cli("quantize", str(raw), "--precision", "fp16"), "has its preprocessing in the graph")
    assert tree(tmp_path) == before
