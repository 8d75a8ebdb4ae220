"""Triton model repositories from real variants: the config parsed by Triton's own schema, files, batching."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import onnx
import pytest

from resdeploy import artifacts
from resdeploy.errors import ResdeployError
from resdeploy.serving import TritonConfig, package_triton
from resdeploy.serving.package import batching_from_bench, read_onnx_tensors

pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient is installed by `make setup`")
from google.protobuf import text_format  # noqa: E402 - after the importorskip that needs it


def _parse(entry: Path):  # noqa: ANN202 - Triton's ModelConfig message
    return text_format.Parse((entry / "config.pbtxt").read_text(), pb2.ModelConfig())


def _graph_io(path: Path) -> tuple[list, list]:
    """(name, Triton type, dims without batch) of the ONNX graph's inputs and outputs, read with onnx."""
    model = onnx.load(str(path))
    types = {onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.UINT8: "TYPE_UINT8",
             onnx.TensorProto.FLOAT16: "TYPE_FP16"}

    def rows(values):  # noqa: ANN001, ANN202
        return [(v.name, types[v.type.tensor_type.elem_type],
                 [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim][1:])
                for v in values]

    return rows(model.graph.input), rows(model.graph.output)


def _bench(model: Path, out: Path, batches: list[int]) -> Path:
    from resdeploy.benchmark import bench

    result = bench(str(model), engines=["ort"], batches=batches, iterations=3, duration=0.0, warmup_iterations=1)
    return result.save(out)


def test_repository_layout_schema_and_files(tiny_artifact: Path, tmp_path: Path) -> None:
    res = package_triton(tiny_artifact, tmp_path / "repo", TritonConfig(count=2))
    entry = tmp_path / "repo" / "tinynet_fp32"
    assert res.model_dir == entry
    assert sorted(p.name for p in entry.iterdir()) == ["1", "README.txt", "config.pbtxt", "labels.txt", "manifest.json"]
    msg = _parse(entry)  # Triton's own ModelConfig accepts every field
    assert msg.name == "tinynet_fp32" and msg.platform == "onnxruntime_onnx" and msg.max_batch_size == 8
    inputs, outputs = _graph_io(tiny_artifact / "model.onnx")
    assert [(t.name, pb2.DataType.Name(t.data_type), list(t.dims)) for t in msg.input] == inputs
    assert [(t.name, pb2.DataType.Name(t.data_type), list(t.dims)) for t in msg.output] == outputs
    assert msg.output[0].label_filename == "labels.txt"
    assert (entry / "labels.txt").read_text().splitlines() == [f"class {i}" for i in range(10)]
    assert msg.instance_group[0].count == 2 and pb2.ModelInstanceGroup.Kind.Name(msg.instance_group[0].kind) == "KIND_CPU"
    assert msg.HasField("dynamic_batching")
    # the model file is the variant's, byte for byte, and the repository's manifest records its sha256
    assert filecmp.cmp(entry / "1" / "model.onnx", tiny_artifact / "model.onnx", shallow=False)
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["files"][0]["sha256"] == artifacts.sha256_file(entry / "1" / "model.onnx")
    assert manifest["source"]["sha256"] == artifacts.sha256_file(tiny_artifact / "model.onnx")
    assert manifest["schema_check"]["parsed"] is True
    readme = (entry / "README.txt").read_text()
    assert "tritonserver --model-repository=" in readme and "/v2/models/tinynet_fp32/infer" in readme
    assert "perf_analyzer -m tinynet_fp32" in readme and "'datatype': 'FP32'" in readme
    assert not [p for p in (tmp_path / "repo").iterdir() if p.name.startswith(".")]  # no temporary sibling left


def test_foreign_files_in_one_folder_get_their_own_names(tiny_onnx, tmp_path: Path) -> None:  # noqa: ANN001
    import shutil

    zoo = tmp_path / "zoo"
    zoo.mkdir()
    for name in ("resnet_a.onnx", "resnet_b.onnx"):
        shutil.copyfile(tiny_onnx[0], zoo / name)
    entries = [package_triton(zoo / name, tmp_path / "repo").model_dir.name for name in ("resnet_a.onnx", "resnet_b.onnx")]
    assert entries == ["resnet_a_fp32", "resnet_b_fp32"]  # both were "zoo_fp32": the second was refused
    assert package_triton(tiny_onnx[0], tmp_path / "repo").model_dir.name == f"{tiny_onnx[0].parent.name}_fp32"


def test_readme_request_body_is_a_valid_kserve_request(tiny_artifact: Path, tmp_path: Path) -> None:
    """The README's python3 one-liner runs and writes a KServe v2 body shaped like the input."""
    import subprocess
    import sys

    res = package_triton(tiny_artifact, tmp_path / "repo")
    line = next(x for x in (res.model_dir / "README.txt").read_text().splitlines() if "python3 -c" in x)
    code = line.split('python3 -c "', 1)[1].rsplit('" >', 1)[0]
    body = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    inp = body["inputs"][0]
    assert inp["name"] == "input" and inp["datatype"] == "FP32" and inp["shape"] == [1, 3, 32, 32]
    assert len(inp["data"]) == 3 * 32 * 32


def test_preferred_batch_and_queue_delay_come_from_the_bench(tiny_artifact: Path, tmp_path: Path) -> None:
    bench_file = _bench(tiny_artifact, tmp_path / "cpu.json", [1, 2, 4])
    runs = json.loads(bench_file.read_text())["runs"]
    best = max(runs, key=lambda r: r["throughput"])
    res = package_triton(tiny_artifact, tmp_path / "repo", TritonConfig(bench=str(bench_file)))
    msg = _parse(res.model_dir)
    assert list(msg.dynamic_batching.preferred_batch_size) == [best["batch"]]
    assert msg.max_batch_size == 4
    # an SLO between the batches' p99s keeps only the batches within it; the delay is half the headroom
    p99 = sorted(r["stats"]["p99_ms"] for r in runs)
    slo = (p99[0] + p99[1]) / 2
    within = [r for r in runs if r["stats"]["p99_ms"] <= slo]
    pick = max(within, key=lambda r: r["throughput"])
    b = batching_from_bench(bench_file, res.sha256, slo)
    assert b["preferred_batch"] == pick["batch"]
    assert b["max_queue_delay_us"] == int((slo - pick["stats"]["p99_ms"]) * 1000 / 2)
    with pytest.raises(ResdeployError, match="meets --slo-ms"):
        batching_from_bench(bench_file, res.sha256, p99[0] / 2)


def test_precision_of_the_graph_sets_the_tensorrt_accelerator(tiny_artifact: Path, tmp_path: Path) -> None:
    from resdeploy.precision.fp16 import convert_fp16

    fp16 = tmp_path / "fp16" / "model.onnx"
    fp16.parent.mkdir()
    convert_fp16(tiny_artifact / "model.onnx", fp16)
    assert read_onnx_tensors(fp16).precision == "fp16"
    res = package_triton(fp16, tmp_path / "repo", TritonConfig(accelerator="tensorrt", gpus=[0]))
    msg = _parse(res.model_dir)
    acc = msg.optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert acc.name == "tensorrt" and acc.parameters["precision_mode"] == "FP16"
    assert acc.parameters["trt_engine_cache_enable"] == "1" and acc.parameters["trt_timing_cache_enable"] == "1"
    assert pb2.ModelInstanceGroup.Kind.Name(msg.instance_group[0].kind) == "KIND_GPU"
    assert list(msg.instance_group[0].gpus) == [0]
    ov = package_triton(tiny_artifact, tmp_path / "repo", TritonConfig(accelerator="openvino", name="ov"))
    assert _parse(ov.model_dir).optimization.execution_accelerators.cpu_execution_accelerator[0].name == "openvino"


@pytest.mark.slow
def test_qdq_graph_gets_int8_without_a_calibration_table(tiny_artifact: Path, tmp_path: Path) -> None:
    from resdeploy.precision import quantize

    sample = Path(__file__).resolve().parents[2] / "calibration" / "sample"
    q = quantize(tiny_artifact, precision="int8", target="trt", calib_data=str(sample), calib_samples=8,
                 output=str(tmp_path / "int8"))
    res = package_triton(q.model_path, tmp_path / "repo", TritonConfig(accelerator="tensorrt"))
    params = _parse(res.model_dir).optimization.execution_accelerators.gpu_execution_accelerator[0].parameters
    assert params["precision_mode"] == "INT8"
    assert not [k for k in params if "calibration" in k]
    # the same Q/DQ variant with its preprocessing in the graph: FP32 preprocessing, still INT8, uint8 in
    from resdeploy.preprocess_graph import embed_preprocessing

    raw = embed_preprocessing(q.model_path.parent, tmp_path / "int8-raw")
    model = onnx.load(str(raw.path))
    pre = [n for n in model.graph.node if n.name.startswith("preprocess_")]
    assert pre and not [n for n in pre if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    res = package_triton(raw.path.parent, tmp_path / "repo", TritonConfig(accelerator="tensorrt"))
    msg = _parse(res.model_dir)
    assert pb2.DataType.Name(msg.input[0].data_type) == "TYPE_UINT8"
    assert msg.optimization.execution_accelerators.gpu_execution_accelerator[0].parameters["precision_mode"] == "INT8"


def test_raw_image_variant_takes_uint8(tiny_artifact: Path, tmp_path: Path) -> None:
    from resdeploy.preprocess_graph import embed_preprocessing

    raw = embed_preprocessing(tiny_artifact, tmp_path / "raw")
    res = package_triton(raw.path.parent, tmp_path / "repo")
    msg = _parse(res.model_dir)
    assert res.name == "tinynet_fp32_rawimage"
    assert (msg.input[0].name, pb2.DataType.Name(msg.input[0].data_type), list(msg.input[0].dims)) == \
        ("image", "TYPE_UINT8", [-1, -1, 3])
    assert "--shape image:37,37,3" in (res.model_dir / "README.txt").read_text()


def test_tensorrt_plan_from_its_manifest(tiny_artifact: Path, tmp_path: Path) -> None:
    """A plan is packaged from its manifest's engine record (no TensorRT needed to write the repository)."""
    from resdeploy.artifacts import EngineRecord, FileRecord, Lineage, Manifest

    plan = tmp_path / "model.plan"
    plan.write_bytes(b"not a real plan: packaging copies it, Triton would load it")
    onnx = tiny_artifact / "model.onnx"
    engine = EngineRecord(tensorrt_version="10.x", gpu_name="-", compute_capability="9.0",
                          profile={"min": 1, "opt": 8, "max": 16}, input_name="input", input_shape=[3, 32, 32],
                          input_dtype="float32", output_name="logits", output_dtype="float32", cache_key="k")
    Manifest(stage="build", precision="fp16", artifact=FileRecord.measure(plan), engine=engine,
             parent=Lineage.of(onnx, plan.parent, sha256=artifacts.sha256_file(onnx), precision="fp16")
             ).write_beside(plan)
    res = package_triton(plan, tmp_path / "repo", TritonConfig(name="plan"))
    msg = _parse(res.model_dir)
    assert msg.platform == "tensorrt_plan" and msg.max_batch_size == 8
    assert filecmp.cmp(res.model_dir / "1" / "model.plan", plan, shallow=False)
    assert pb2.ModelInstanceGroup.Kind.Name(msg.instance_group[0].kind) == "KIND_GPU"
    with pytest.raises(ResdeployError, match="exceeds the engine's profile"):
        package_triton(plan, tmp_path / "repo", TritonConfig(name="plan2", max_batch_size=32))
    with pytest.raises(ResdeployError, match="platform onnxruntime_onnx runs ONNX"):
        package_triton(plan, tmp_path / "repo", TritonConfig(name="plan3", platform="onnxruntime_onnx"))


def test_int8_cpu_and_trt_variants_get_their_own_entries(tiny_artifact: Path, tmp_path: Path) -> None:
    # Both were "tinynet_int8": packaging the second said "already exists", and --force replaced the first.
    from resdeploy.precision import quantize

    fast = {"calib_samples": 2, "equalize": False, "bias_correction": False}
    cpu = quantize(tiny_artifact, precision="int8", target="cpu", calib_data="synthetic", **fast,
                   output=str(tmp_path / "int8-cpu"))
    trt = quantize(tiny_artifact, precision="int8", target="trt", ranges=str(cpu.ranges_path),
                   output=str(tmp_path / "int8-trt"), equalize=False, bias_correction=False)
    names = [package_triton(v.model_path.parent, tmp_path / "repo").model_dir.name for v in (cpu, trt)]
    assert names == ["tinynet_int8_cpu", "tinynet_int8_trt"]
    assert filecmp.cmp(tmp_path / "repo" / names[0] / "1" / "model.onnx", cpu.model_path, shallow=False)
