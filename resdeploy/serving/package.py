"""A Triton model repository from a resdeploy variant: ``package_triton(variant, repo)``.

Writes ``REPO/NAME/config.pbtxt``, ``REPO/NAME/1/model.onnx`` (or ``model.plan``), a labels
file when the manifest names the classes, ``README.txt`` (how to start the server, query
it and load-test it) and ``manifest.json`` (what was packaged, with sha256s). Everything
the config says about tensors is read from the model itself, so the config cannot
disagree with the file it describes; the batching comes from a ``resdeploy bench``
result of the same file when one is given. The model entry is built in a temporary
sibling and renamed into place, so a failure leaves the repository as it was.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from resdeploy import artifacts
from resdeploy.artifacts import GraphSummary, Manifest, TensorInfo, int8_variant_parts, read_json
from resdeploy.console import QUIET, Reporter
from resdeploy.errors import ResdeployError
from resdeploy.resolve import resolve_artifact
from resdeploy.serving.triton import (
    KINDS,
    MODEL_FILES,
    PLATFORMS,
    TRITON_DTYPES,
    Accelerator,
    DynamicBatching,
    InstanceGroup,
    ModelConfig,
    TensorConfig,
    check_against_graph,
    parse_config,
)

ACCELERATORS = ("none", "tensorrt", "openvino")
DEFAULT_MAX_BATCH = 8
DEFAULT_QUEUE_DELAY_US = 100  # without an SLO: a short wait that lets concurrent requests meet
BENCH_SCHEMA = "resdeploy.bench/1"
LABELS_FILE = "labels.txt"
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass
class TritonConfig:
    """How to package. ``None`` fields are derived from the model and the bench result."""

    name: str | None = None  # default: <model>_<precision>
    platform: str = "auto"  # auto: tensorrt_plan for a TensorRT engine, else onnxruntime_onnx
    kind: str | None = None  # cpu | gpu (default: gpu for tensorrt_plan or the tensorrt accelerator)
    count: int = 1
    gpus: list[int] | None = None
    accelerator: str = "none"  # none | tensorrt (ORT on GPU) | openvino (ORT on CPU)
    max_batch_size: int | None = None
    bench: str | None = None
    slo_ms: float | None = None
    max_queue_delay_us: int | None = None
    trt_cache_dir: str = "/tmp/resdeploy-trt-cache"  # on the server: engine and timing caches of the accelerator
    force: bool = False

    def validate(self) -> None:
        """Refuse impossible settings before anything is read or written."""
        if self.platform not in ("auto", *PLATFORMS):
            raise ResdeployError(f"unknown platform '{self.platform}'; choose from: auto, {', '.join(PLATFORMS)}")
        if self.kind is not None and self.kind not in KINDS:
            raise ResdeployError(f"unknown instance kind '{self.kind}'; choose from: {', '.join(KINDS)}")
        if self.accelerator not in ACCELERATORS:
            raise ResdeployError(f"unknown accelerator '{self.accelerator}'; choose from: {', '.join(ACCELERATORS)}")
        if self.name is not None and not _NAME.match(self.name):
            raise ResdeployError(f"--name '{self.name}': a Triton model name takes letters, digits, '_', '.', '-'")
        for value, flag in ((self.count, "--count"), (self.max_batch_size, "--max-batch-size")):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ResdeployError(f"{flag} must be a positive integer, got {value!r}")
        if self.max_queue_delay_us is not None and self.max_queue_delay_us < 0:
            raise ResdeployError(f"--max-queue-delay-us must be >= 0, got {self.max_queue_delay_us}")
        if self.slo_ms is not None:
            if not (isinstance(self.slo_ms, int | float) and math.isfinite(self.slo_ms) and self.slo_ms > 0):
                raise ResdeployError(f"--slo-ms must be a positive number, got {self.slo_ms!r}")
            if self.bench is None:
                raise ResdeployError("--slo-ms needs --bench: the batch's measured p99 decides what is left for queueing")
        kind = self.resolved_kind()
        if self.gpus and kind != "gpu":
            raise ResdeployError("--gpus applies to --kind gpu")
        if self.accelerator == "tensorrt" and kind != "gpu":
            raise ResdeployError("the tensorrt accelerator runs on GPU instances: pass --kind gpu")
        if self.accelerator == "openvino" and kind != "cpu":
            raise ResdeployError("the openvino accelerator runs on CPU instances: pass --kind cpu")
        if self.platform == "tensorrt_plan" and self.accelerator != "none":
            raise ResdeployError("execution accelerators apply to onnxruntime_onnx; a TensorRT plan already is TensorRT")

    def resolved_kind(self) -> str:
        if self.kind:
            return self.kind
        return "gpu" if self.platform == "tensorrt_plan" or self.accelerator == "tensorrt" else "cpu"


@dataclass
class ModelTensors:
    """What the model file says about itself: the source of every tensor field in the config."""

    inputs: list[tuple[str, str, list[int | str]]]  # name, numpy dtype, shape (str = dynamic axis)
    outputs: list[tuple[str, str, list[int | str]]]
    precision: str  # fp32 | fp16 | int8, from the graph (Q/DQ nodes, FP16 tensors)
    max_batch: int | None = None  # a TensorRT profile's max batch


@dataclass
class PackageResult:
    repository: Path
    model_dir: Path
    name: str
    platform: str
    model_file: Path
    sha256: str
    config: ModelConfig
    batching: dict[str, Any] | None
    schema_check: dict[str, Any]
    labels: Path | None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["config"] = asdict(self.config)
        d["config_pbtxt"] = self.config.to_pbtxt()
        return d


def _resolve_variant(variant: str | os.PathLike[str]) -> tuple[Path, dict[str, Any] | None, Manifest | None]:
    """(model file, ONNX manifest or None, TensorRT plan's manifest or None) for what the user typed.

    ``resolve.resolve_artifact`` decides what the path is and checks the file (ONNX or
    plan) against its manifest's record (a file changed after its manifest was written is
    refused there).
    """
    art = resolve_artifact(variant, zoo=False)
    assert art.path is not None
    if art.kind == "engine":
        return art.path, None, art.engine_manifest()
    if art.path.suffix.lower() != ".onnx":
        raise ResdeployError(f"{art.path} is neither an ONNX model nor a TensorRT engine (.plan/.engine)")
    return art.path, art.manifest.to_dict() if art.manifest else None, None


def read_onnx_tensors(path: Path) -> ModelTensors:
    """Inputs, outputs and precision of an ONNX file (``artifacts.GraphSummary``), without its external data."""
    graph = GraphSummary.measure(path)

    def describe(values: list[TensorInfo]) -> list[tuple[str, str, list[int | str]]]:
        return [(t.name, t.dtype, list(t.shape)) for t in values]

    return ModelTensors(describe(graph.inputs), describe(graph.outputs), graph.precision)


def _engine_tensors(plan: Path, manifest: Manifest) -> ModelTensors:
    """A plan's tensors from its manifest's engine record (TensorRT is not needed to read it); outputs
    from the ONNX its lineage names."""
    meta = manifest.require_engine()
    onnx_path = manifest.parent.resolve(plan.parent) if manifest.parent else None
    if onnx_path is None or not onnx_path.is_file():
        gone = (manifest.parent.abspath or manifest.parent.path) if manifest.parent else "not recorded"
        raise ResdeployError(f"the engine's ONNX ({gone}) is gone: its output shape cannot be read",
                             hint="rebuild the engine with `resdeploy build`")
    outputs = read_onnx_tensors(onnx_path).outputs
    outputs = [(name, meta.output_dtype, dims) for name, _, dims in outputs]
    dims: list[int | str] = ["batch", *meta.input_shape]
    inputs = [(meta.input_name, meta.input_dtype, dims)]
    return ModelTensors(inputs, outputs, str(manifest.precision), max_batch=int(meta.profile["max"]))


def _triton_dtype(dtype: str, where: str) -> str:
    if dtype not in TRITON_DTYPES:
        raise ResdeployError(f"{where} has dtype {dtype}, which Triton has no type for")
    return TRITON_DTYPES[dtype]


def _dynamic_batch(tensors: ModelTensors) -> bool:
    """The graph's first axis is a free batch axis on every input and output."""
    return all(bool(shape) and not isinstance(shape[0], int) for _, _, shape in tensors.inputs + tensors.outputs)


def _dims(shape: list[int | str], batched: bool) -> tuple[int, ...]:
    rest = shape[1:] if batched else shape
    return tuple(d if isinstance(d, int) and d > 0 else -1 for d in rest)


# --- the bench result ---------------------------------------------------------------------------
def _load_bench(path: str | os.PathLike[str]) -> dict[str, Any]:
    data: dict[str, Any] = read_json(path, schema=BENCH_SCHEMA, what="bench result")
    if not isinstance(data.get("runs"), list):
        raise ResdeployError(f"{path} is not a resdeploy bench result (expected schema {BENCH_SCHEMA})")
    return data


def batching_from_bench(bench_path: str | os.PathLike[str], model_sha256: str, slo_ms: float | None
                        ) -> dict[str, Any]:
    """Preferred batch: the best throughput among this file's runs whose p99 meets ``slo_ms``.

    The max queue delay is half the SLO's headroom over that batch's p99: a request that
    waits the whole delay and then runs at p99 still meets the SLO with a margin for the
    server's own overhead. Runs of another model file (another sha256) are refused, since
    their numbers say nothing about this one.
    """
    data = _load_bench(bench_path)
    runs = [r for r in data["runs"] if isinstance(r, dict)]
    mine = [r for r in runs if r.get("model_sha256") == model_sha256]
    if not mine:
        others = sorted({str(r.get("model_sha256"))[:12] for r in runs})
        raise ResdeployError(
            f"{bench_path} holds no run of this model (sha256 {model_sha256[:12]}…; its runs are of "
            f"{', '.join(others) or 'nothing'})", hint="bench this variant's model file and pass that result")
    usable = []
    for r in mine:
        try:
            usable.append((int(r["batch"]), float(r["throughput"]), float(r["stats"]["p99_ms"]), str(r["engine"])))
        except (KeyError, TypeError, ValueError):
            raise ResdeployError(f"{bench_path}: a run lacks batch, throughput or stats.p99_ms") from None
    within = [u for u in usable if slo_ms is None or u[2] <= slo_ms]
    if not within:
        fastest = min(usable, key=lambda u: u[2])
        raise ResdeployError(f"no batch in {bench_path} meets --slo-ms {slo_ms:g} (lowest p99: {fastest[2]:.2f} ms "
                             f"at batch {fastest[0]})", hint="raise --slo-ms, or bench smaller batches")
    batch, throughput, p99, engine = max(within, key=lambda u: (u[1], -u[0]))
    delay = DEFAULT_QUEUE_DELAY_US if slo_ms is None else int((slo_ms - p99) * 1000 / 2)
    return {"source": str(bench_path), "engine": engine, "preferred_batch": batch, "throughput": throughput,
            "p99_ms": p99, "slo_ms": slo_ms, "max_queue_delay_us": max(delay, 0),
            "batches_within_slo": sorted({u[0] for u in within})}


# --- the package ------------------------------------------------------------------------------------
def package_triton(variant: str | os.PathLike[str], repository: str | os.PathLike[str],
                   config: TritonConfig | None = None, *, reporter: Reporter = QUIET) -> PackageResult:
    """Write ``repository/NAME`` for ``variant`` (an artifact directory, ONNX file or TensorRT plan)."""
    cfg = config or TritonConfig()
    cfg.validate()
    src, manifest, engine_meta = _resolve_variant(variant)
    platform = cfg.platform if cfg.platform != "auto" else ("tensorrt_plan" if engine_meta else "onnxruntime_onnx")
    if platform == "tensorrt_plan" and engine_meta is None:
        raise ResdeployError(f"{src} is ONNX; platform tensorrt_plan runs a TensorRT engine",
                             hint="build one with `resdeploy build` on the server's GPU model, or use "
                                  "--platform onnxruntime_onnx (optionally with --accelerator tensorrt)")
    if platform == "onnxruntime_onnx" and engine_meta is not None:
        raise ResdeployError(f"{src} is a TensorRT engine; platform onnxruntime_onnx runs ONNX files",
                             hint="use --platform tensorrt_plan, or package the ONNX variant it was built from")
    if platform == "tensorrt_plan" and cfg.accelerator != "none":
        raise ResdeployError("execution accelerators apply to onnxruntime_onnx; a TensorRT plan already is TensorRT")
    kind = cfg.resolved_kind() if cfg.kind or platform != "tensorrt_plan" else "gpu"
    if platform == "tensorrt_plan" and kind != "gpu":
        raise ResdeployError("a TensorRT plan runs on GPU instances only: pass --kind gpu")
    tensors = _engine_tensors(src, engine_meta) if engine_meta else read_onnx_tensors(src)
    sha = artifacts.sha256_file(src)
    warnings: list[str] = []

    name = cfg.name or _default_name(manifest, tensors, src)
    batched = _dynamic_batch(tensors)
    batching = batching_from_bench(cfg.bench, sha, cfg.slo_ms) if cfg.bench else None
    if batched:
        limit = tensors.max_batch
        max_batch = cfg.max_batch_size or (max(batching["batches_within_slo"]) if batching else
                                           min(DEFAULT_MAX_BATCH, limit or DEFAULT_MAX_BATCH))
        if limit is not None and max_batch > limit:
            raise ResdeployError(f"--max-batch-size {max_batch} exceeds the engine's profile (max batch {limit})")
        if batching and batching["preferred_batch"] > max_batch:
            raise ResdeployError(f"the bench's preferred batch {batching['preferred_batch']} exceeds "
                                 f"--max-batch-size {max_batch}")
    else:
        if cfg.max_batch_size:
            raise ResdeployError(f"{src} has a fixed batch axis: Triton cannot batch it (re-export with --batch dynamic)")
        max_batch = 0
        if batching:
            warnings.append("the model has a fixed batch axis: the bench result is recorded but not used for batching")
            batching = None

    labels = _class_names(manifest)
    inputs = tuple(TensorConfig(n, _triton_dtype(d, f"input '{n}'"), _dims(s, batched)) for n, d, s in tensors.inputs)
    outputs = tuple(TensorConfig(n, _triton_dtype(d, f"output '{n}'"), _dims(s, batched),
                                 label_filename=LABELS_FILE if labels and i == 0 else None)
                    for i, (n, d, s) in enumerate(tensors.outputs))
    if labels and outputs and outputs[0].dims[-1:] not in ((len(labels),), (-1,)):
        warnings.append(f"the manifest names {len(labels)} classes but the output has {outputs[0].dims[-1]}; "
                        "no labels file written")
        labels = None
        outputs = tuple(TensorConfig(t.name, t.data_type, t.dims) for t in outputs)
    dyn = None
    if max_batch > 0:
        delay = cfg.max_queue_delay_us if cfg.max_queue_delay_us is not None else (
            batching["max_queue_delay_us"] if batching else DEFAULT_QUEUE_DELAY_US)
        dyn = DynamicBatching(tuple([batching["preferred_batch"]]) if batching else (), delay)
    gpu_acc, cpu_acc = _accelerators(cfg, tensors.precision)
    model_config = ModelConfig(
        name=name, platform=platform, max_batch_size=max_batch, inputs=inputs, outputs=outputs,
        dynamic_batching=dyn,
        instance_groups=(InstanceGroup(cfg.count, KINDS[kind], tuple(cfg.gpus or ())),),
        gpu_accelerators=gpu_acc, cpu_accelerators=cpu_acc,
    )
    text = model_config.to_pbtxt()
    schema_check = _schema_check(text, model_config)

    repo = Path(repository)
    if repo.exists() and not repo.is_dir():
        raise ResdeployError(f"--triton {repo} exists and is not a directory")
    model_file = MODEL_FILES[platform]
    with reporter.step(f"write {repo / name}"), artifacts.atomic_dir(repo / name, force=cfg.force) as tmp:
        (tmp / "1").mkdir()
        copied = _copy_model(src, tmp / "1" / model_file, engine_meta is None)
        copy_sha = artifacts.sha256_file(copied)
        if copy_sha != sha:  # a file changed while it was copied: nothing is renamed into place
            raise ResdeployError(f"{src} changed while it was copied (sha256 differs); run again")
        (tmp / "config.pbtxt").write_text(text, encoding="utf-8")
        if labels:
            (tmp / LABELS_FILE).write_text("\n".join(labels) + "\n", encoding="utf-8")
        pre = (manifest or {}).get("preprocess") or {}
        side = int(pre.get("resize") or pre.get("crop") or 224)
        (tmp / "README.txt").write_text(readme_text(repo, model_config, batching, side), encoding="utf-8")
        artifacts.write_manifest(tmp, {
            "stage": "package", "target": "triton", "name": name, "platform": platform,
            "source": {"path": str(src.resolve()), "sha256": sha, "precision": tensors.precision,
                       "manifest_sha256": _manifest_sha(manifest, engine_meta)},
            "files": [{"file": f"1/{model_file}", "sha256": copy_sha, "bytes": copied.stat().st_size,
                       "identical_to_source": True}],
            "config_sha256": artifacts.sha256_bytes(text.encode("utf-8")),
            "batching": batching, "schema_check": schema_check, "labels": LABELS_FILE if labels else None,
            "preprocess": (manifest or {}).get("preprocess"),
            "versions": artifacts.package_versions(["tritonclient", "onnx"]),
        })
    for w in warnings:
        reporter.warn(w)
    final = repo / name
    return PackageResult(repository=repo, model_dir=final, name=name, platform=platform,
                         model_file=final / "1" / model_file, sha256=sha, config=model_config, batching=batching,
                         schema_check=schema_check, labels=final / LABELS_FILE if labels else None,
                         warnings=warnings)


def entry_name(variant: str | os.PathLike[str], config: TritonConfig | None = None, *, raw_image: bool = False) -> str:
    """The model name ``package_triton`` will use; ``raw_image``: for the variant's in-graph-preprocessing copy.

    Lets a caller that writes that copy first check the repository entry is free beforehand.
    """
    if config is not None and config.name:
        return config.name
    src, manifest, engine_meta = _resolve_variant(variant)
    tensors = _engine_tensors(src, engine_meta) if engine_meta else read_onnx_tensors(src)
    if raw_image:
        tensors.inputs = [(n, "uint8", s) for n, _, s in tensors.inputs]
    return _default_name(manifest, tensors, src)


def _default_name(manifest: dict[str, Any] | None, tensors: ModelTensors, src: Path) -> str:
    """The manifest's model name, else the file's own name; the folder's only for a file named model.onnx.

    Two foreign files in one folder (``zoo/resnet50.onnx``, ``zoo/mobilenet.onnx``) get two
    entries, not one name that the second cannot take; nor do a model's ``int8-cpu`` and
    ``int8-trt`` variants (``<model>_int8_cpu``, ``<model>_int8_trt``; ``--cpu vnni`` adds ``_vnni``).
    """
    model = (manifest or {}).get("model")
    name = model.get("name") if isinstance(model, dict) else None
    named = bool(name)
    if named:
        base = str(name)
    else:
        base = src.stem if src.stem.lower() != "model" else (src.parent.name or src.stem)
    parts = [base, tensors.precision]
    target = (manifest or {}).get("target")
    if named and tensors.precision == "int8" and isinstance(target, str) and target:
        # as quantize's default folders are named; a file's or folder's own name (resnet18_tv-int8-cpu)
        # already tells them apart
        settings = (manifest or {}).get("settings") or {}
        parts += int8_variant_parts(target, settings.get("cpu"), settings.get("activation_type"))
    if any(d == "uint8" for _, d, _ in tensors.inputs):
        parts.append("rawimage")
    return re.sub(r"[^A-Za-z0-9_.-]", "_", "_".join(parts))


def _manifest_sha(manifest: dict[str, Any] | None, engine_meta: Manifest | None) -> str | None:
    """The model file's sha256 as its manifest records it (export: artifact.sha256; quantize: sha256)."""
    if engine_meta is not None:
        return engine_meta.artifact.sha256 if engine_meta.artifact else None
    if not manifest:
        return None
    art = manifest.get("artifact")
    if isinstance(art, dict) and art.get("sha256"):
        return str(art["sha256"])
    return str(manifest["sha256"]) if manifest.get("sha256") else None


def _class_names(manifest: dict[str, Any] | None) -> list[str] | None:
    """Class names from the manifest (``classes`` at the top or under ``model``), when it has them."""
    if not manifest:
        return None
    found = manifest.get("model")
    model: dict[str, Any] = found if isinstance(found, dict) else {}
    for names in (manifest.get("classes"), model.get("classes"), model.get("class_names")):
        if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
            return [" ".join(n.split()) for n in names]
    return None


def _accelerators(cfg: TritonConfig, precision: str) -> tuple[tuple[Accelerator, ...], tuple[Accelerator, ...]]:
    """TensorRT for ORT on GPU with the graph's precision; OpenVINO for ORT on CPU.

    A Q/DQ graph gets INT8 without a calibration table: the scales are in the graph, and
    ONNX Runtime's TensorRT provider fails to create a session on a Q/DQ model with one.
    """
    if cfg.accelerator == "tensorrt":
        mode = {"fp16": "FP16", "int8": "INT8"}.get(precision, "FP32")
        params = {"precision_mode": mode, "max_workspace_size_bytes": str(1 << 30),
                  "trt_engine_cache_enable": "1", "trt_engine_cache_path": cfg.trt_cache_dir,
                  "trt_timing_cache_enable": "1", "trt_timing_cache_path": cfg.trt_cache_dir}
        return (Accelerator("tensorrt", params),), ()
    if cfg.accelerator == "openvino":
        return (), (Accelerator("openvino"),)
    return (), ()


def _schema_check(text: str, config: ModelConfig) -> dict[str, Any]:
    """Parse with Triton's ModelConfig and compare with the graph; skipped (and said so) without tritonclient."""
    import importlib.util

    if importlib.util.find_spec("tritonclient") is None:
        return {"parsed": False, "reason": "tritonclient is not installed (pip install tritonclient grpcio)"}
    message = parse_config(text)
    problems = check_against_graph(message, config)
    if problems:  # a bug here, not bad input: the config was made from the graph
        raise ResdeployError(f"config.pbtxt disagrees with the model: {'; '.join(problems)}")
    return {"parsed": True, "schema": "inference.ModelConfig (tritonclient.grpc.model_config_pb2)",
            "tensors_match_graph": True}


def _copy_model(src: Path, dst: Path, is_onnx: bool) -> Path:
    """Copy the model file byte for byte, with the external-data files an ONNX names beside it."""
    shutil.copyfile(src, dst)
    if is_onnx:
        for name in _external_files(src):
            target = dst.parent / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src.parent / name, target)
    return dst


def _external_files(path: Path) -> list[str]:
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    model = onnx.load(str(path), load_external_data=False)
    names = {ExternalDataInfo(t).location for t in model.graph.initializer if uses_external_data(t)}
    for name in names:
        if Path(name).is_absolute() or ".." in Path(name).parts or not (path.parent / name).is_file():
            raise ResdeployError(f"{path} names external data '{name}' that is not a file beside it")
    return sorted(names)


# --- README -------------------------------------------------------------------------------------------
def readme_text(repo: Path, config: ModelConfig, batching: dict[str, Any] | None, image_side: int = 224) -> str:
    """How to serve, query and load-test this entry: commands filled in with its names and shapes.

    Dynamic dims (the height and width of raw images) are filled with ``image_side``.
    """
    from resdeploy.serving.triton import KSERVE_DTYPES

    inp = config.inputs[0]
    example = [d if d > 0 else image_side for d in inp.dims]
    if config.max_batch_size > 0:
        shape = [1, *example]
    else:
        shape = list(example)
    count = math.prod(shape)
    dtype = KSERVE_DTYPES[inp.data_type]
    zero = "0" if "INT" in dtype or "UINT" in dtype else "0.0"
    batches = list(batching["batches_within_slo"]) if batching else ([1, config.max_batch_size]
                                                                     if config.max_batch_size > 1 else [1])
    shape_flag = f" --shape {inp.name}:{','.join(str(d) for d in example)}" if -1 in inp.dims else ""
    perf = "\n".join(f"perf_analyzer -m {config.name} -u localhost:8001 -i grpc -b {b}{shape_flag} "
                     f"--concurrency-range 1:4" for b in batches) if config.max_batch_size > 0 else (
        f"perf_analyzer -m {config.name} -u localhost:8001 -i grpc{shape_flag} --concurrency-range 1:4")
    kind = config.instance_groups[0].kind if config.instance_groups else "KIND_CPU"
    gpus = " --gpus all" if kind == "KIND_GPU" else ""
    return f"""Triton model '{config.name}' ({config.platform}), written by resdeploy.

Serve it (the repository is the folder holding this model's folder):
  tritonserver --model-repository={repo.resolve()}
  # or in NVIDIA's container (pick the tag whose TensorRT/ONNX Runtime matches how the model was built):
  docker run --rm{gpus} -p8000:8000 -p8001:8001 -p8002:8002 -v {repo.resolve()}:/models \\
      nvcr.io/nvidia/tritonserver:<yy.mm>-py3 tritonserver --model-repository=/models

Check it is ready, then send one request (KServe v2 HTTP API; an all-zero input of shape {shape}):
  curl -s localhost:8000/v2/models/{config.name}/ready -o /dev/null -w '%{{http_code}}\\n'
  python3 -c "import json; print(json.dumps({{'inputs': [{{'name': '{inp.name}', 'shape': {shape}, 'datatype': '{dtype}', 'data': [{zero}] * {count}}}]}}))" > request.json
  curl -s -X POST localhost:8000/v2/models/{config.name}/infer -H 'Content-Type: application/json' -d @request.json

Load-test it at the batch sizes resdeploy chose ({', '.join(str(b) for b in batches)}):
{perf}
"""
