"""`inspect`: what a model file or artifact is, where it came from, and what can run it.

The questions people ask Polygraphy's ``inspect model`` and ``trtexec --verbose`` for,
answered from the file and the manifests resdeploy wrote: inputs and outputs (shape,
layout, dtype), opset, op counts and the graph's precision, how much of an INT8 graph is
really quantized (Q/DQ on which Conv/Gemm/Add, judged against what each target needs),
file size, the lineage (parent chain with each manifest's key facts), and which engines
installed here can load it. A TensorRT plan is opaque without TensorRT: its metadata
file and manifest are read, and what cannot be read is said.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from resdeploy import artifacts
from resdeploy.errors import ResdeployError
from resdeploy.onnx_io import GraphInput
from resdeploy.resolve import Artifact, resolve_artifact

QUANTIZABLE = ("Conv", "Gemm", "MatMul", "Add")
_MAX_NAMES = 8
_MAX_LINEAGE = 16


@dataclass
class TensorInfo:
    name: str
    shape: list[int | str]
    dtype: str
    layout: str | None


@dataclass
class QdqCoverage:
    """Per op type: how many nodes there are and how many read a DequantizeLinear output."""

    ops: dict[str, dict[str, Any]]
    residual_adds: dict[str, int]  # both inputs quantized / one / none
    targets: dict[str, dict[str, Any]]  # cpu / trt: complete?, what is missing


@dataclass
class InspectResult:
    path: str
    kind: str  # "onnx" | "tensorrt-plan" | "weights"
    file_bytes: int | None
    precision: str | None
    opset: int | None = None
    inputs: list[TensorInfo] = field(default_factory=list)
    outputs: list[TensorInfo] = field(default_factory=list)
    op_counts: dict[str, int] = field(default_factory=dict)
    nodes: int | None = None
    qdq: QdqCoverage | None = None
    classes: list[str] | None = None
    lineage: list[dict[str, Any]] = field(default_factory=list)
    engines: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # what could not be read, and why

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- entry point ------------------------------------------------------------------------------
def inspect(path: str | os.PathLike[str], *, check_engines: bool = True) -> InspectResult:
    """Describe an ONNX file, an artifact directory, a TensorRT plan, or a ``train`` output.

    The file is found by ``resolve.resolve_artifact`` like every other command's, but not
    checked against its manifest's record: inspect describes what is there.
    """
    p = Path(path)
    if not p.exists():
        raise ResdeployError(f"no such file or folder: {p}")
    if p.is_dir():
        manifest = artifacts.read_manifest(p)
        if manifest is not None and manifest.get("stage") == "train":
            return _inspect_weights(p, manifest)
    art = resolve_artifact(p, zoo=False, verify=False)
    assert art.path is not None
    if art.kind == "engine":
        return _inspect_plan(art, check_engines)
    if art.path.suffix.lower() != ".onnx":
        raise ResdeployError(f"cannot inspect {art.path}: expected a .onnx file, an artifact folder "
                             "or a .plan/.engine file")
    return _inspect_onnx(art, check_engines)


# --- ONNX -------------------------------------------------------------------------------------
def _inspect_onnx(art: Artifact, check_engines: bool) -> InspectResult:
    assert art.path is not None
    p = art.path
    model = artifacts.load_onnx(p)  # one line when the file is not ONNX
    graph = artifacts.GraphSummary.of_proto(model)  # measured from the file: the one graph-precision rule
    manifest = art.manifest.to_dict() if art.manifest is not None else None
    layout = (manifest or {}).get("preprocess", {}).get("layout") if manifest else None
    ops = Counter(graph.ops)
    result = InspectResult(
        path=str(p), kind="onnx", file_bytes=_size_with_external(p, model), precision=graph.precision,
        opset=graph.opset, inputs=[_tensor(t, layout) for t in graph.inputs],
        outputs=[_tensor(t, None) for t in graph.outputs],
        op_counts=dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))), nodes=graph.nodes,
        classes=(manifest or {}).get("classes"),
    )
    if ops.get("QuantizeLinear") or ops.get("DequantizeLinear"):
        result.qdq = qdq_coverage(model)
    result.lineage = lineage(p, manifest)
    if check_engines:
        result.engines = _engines_for_onnx(p, manifest)
    return result


def _tensor(t: artifacts.TensorInfo, layout: str | None) -> TensorInfo:
    """A graph tensor (``artifacts.tensor_info``) with its layout: the manifest's, else guessed from the channels."""
    shape = list(t.shape)
    if layout is None and len(shape) == 4:
        layout = GraphInput.of(t).layout  # the one reading of a layout from dims (1, 3 or 4 channels)
    return TensorInfo(t.name, shape, t.dtype, layout if len(shape) == 4 else None)


def _size_with_external(p: Path, model: Any) -> int:
    """The .onnx file plus the external-data files it names (what has to be shipped)."""
    total = p.stat().st_size
    seen: set[str] = set()
    for init in model.graph.initializer:
        for entry in init.external_data:
            if entry.key == "location" and entry.value not in seen:
                seen.add(entry.value)
                f = p.parent / entry.value
                if f.is_file():
                    total += f.stat().st_size
    return total


def qdq_coverage(model: Any) -> QdqCoverage:
    """Which Conv/Gemm/MatMul/Add read a DequantizeLinear output, judged per INT8 target.

    ``cpu`` (ONNX Runtime on x86) needs every Conv and Gemm quantized; ``trt`` (TensorRT's
    explicit quantization) also needs Q/DQ on both inputs of every residual Add, or the
    Conv+Add+ReLU fusion falls back to a higher-precision Add.
    """
    from resdeploy.precision.int8 import add_input_quantization

    producers = {out: n for n in model.graph.node for out in n.output}
    ops: dict[str, dict[str, Any]] = {}
    for node in model.graph.node:
        if node.op_type not in QUANTIZABLE:
            continue
        q = any(i in producers and producers[i].op_type == "DequantizeLinear" for i in node.input)
        entry = ops.setdefault(node.op_type, {"total": 0, "quantized": 0, "not_quantized": []})
        entry["total"] += 1
        entry["quantized"] += int(q)
        if not q and len(entry["not_quantized"]) < _MAX_NAMES:
            entry["not_quantized"].append(node.name or f"{node.op_type}#{entry['total']}")
    adds = add_input_quantization(model)
    residual = {"both": sum(all(f) for _, f in adds), "one": sum(any(f) and not all(f) for _, f in adds),
                "none": sum(not any(f) for _, f in adds)}
    weight_ops = [ops[o] for o in ("Conv", "Gemm") if o in ops]
    convs_done = all(e["quantized"] == e["total"] for e in weight_ops)
    missing_convs = sum(e["total"] - e["quantized"] for e in weight_ops)
    targets = {
        "cpu": {"complete": convs_done,
                "missing": [] if convs_done else [f"{missing_convs} Conv/Gemm without Q/DQ"]},
        "trt": {"complete": convs_done and residual["one"] + residual["none"] == 0,
                "missing": ([] if convs_done else [f"{missing_convs} Conv/Gemm without Q/DQ"])
                + ([f"{residual['one'] + residual['none']} residual Add(s) without Q/DQ on both inputs"]
                   if residual["one"] + residual["none"] else [])},
    }
    return QdqCoverage(ops, residual, targets)


# --- lineage ----------------------------------------------------------------------------------
def _manifest(p: Path) -> dict[str, Any] | None:
    try:
        return artifacts.read_manifest(p)
    except ResdeployError:
        return None


def key_facts(manifest: dict[str, Any]) -> dict[str, Any]:
    """The few facts of a manifest worth a line in a lineage: stage, precision, target, weights, gates."""
    facts: dict[str, Any] = {"stage": manifest.get("stage"), "precision": manifest.get("precision"),
                             "created": manifest.get("created")}
    model = manifest.get("model")
    if isinstance(model, dict):
        facts["model"] = model.get("name")
        w = model.get("weights")
        if isinstance(w, dict):
            facts["weights"] = f"{Path(str(w.get('path', ''))).name} (sha256 {str(w.get('sha256', ''))[:12]})"
        elif w is not None:
            facts["weights"] = w
    if manifest.get("target"):
        facts["target"] = manifest["target"]
    cal = manifest.get("calibration")
    if isinstance(cal, dict):
        facts["calibration"] = {k: cal.get(k) for k in ("method", "samples", "source") if k in cal}
    parity = manifest.get("parity")
    if isinstance(parity, dict) and "passed" in parity:
        facts["parity_passed"] = parity["passed"]
    training = manifest.get("training") if manifest.get("stage") == "export" else (
        {"val_top1": manifest["val"]["top1"]} if manifest.get("stage") == "train" else None)
    if isinstance(training, dict):
        facts["trained_val_top1"] = training.get("val_top1")
    return {k: v for k, v in facts.items() if v is not None}


def lineage(p: Path, manifest: dict[str, Any] | None) -> list[dict[str, Any]]:
    """This artifact and its ancestors, nearest first, each with its key facts; a broken link is said."""
    from resdeploy.precision import parent_model_path

    chain: list[dict[str, Any]] = []
    current, m = p, manifest
    while m is not None and len(chain) < _MAX_LINEAGE:
        chain.append({"path": str(current), **key_facts(m)})
        parent = parent_model_path(current, m) if isinstance(m.get("parent"), dict) else None
        if parent is None:
            w = (m.get("model") or {}).get("weights") if m.get("stage") == "export" else None
            if isinstance(w, dict) and w.get("path") and Path(str(w["path"])).is_file():
                trained = _manifest(Path(str(w["path"])))
                if trained is not None and trained.get("stage") == "train":
                    chain.append({"path": str(w["path"]), **key_facts(trained)})
            break
        if not Path(parent).exists():
            chain.append({"path": str(parent), "missing": True})
            break
        current, m = Path(parent), _manifest(Path(parent))
    return chain


# --- engines ----------------------------------------------------------------------------------
def _engines_for_onnx(p: Path, manifest: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Try each installed engine on the file (a session, not a run): installed is not the same as able."""
    from resdeploy.machine import engines_info

    out: list[dict[str, Any]] = []
    for e in engines_info():
        name = e["engine"]
        row = {"engine": name, "installed": bool(e.get("available")), "can_run": False, "note": ""}
        if not row["installed"]:
            row["note"] = e.get("note") or "not installed"
        elif name == "ort":
            row["can_run"], row["note"] = _try(lambda: _ort_session(p))
        elif name == "openvino":
            row["can_run"], row["note"] = _try(lambda: _openvino_read(p))
        elif name == "torch":
            spec = (manifest or {}).get("model", {}).get("spec") if manifest else None
            row["can_run"] = isinstance(spec, dict)
            precision = (manifest or {}).get("precision", "fp32")
            row["note"] = ("rebuilds the FP32 PyTorch model from the manifest"
                           + ("" if precision == "fp32" else f" (the parent, not this {precision} graph)")
                           if row["can_run"] else "needs a manifest with the model spec (from `resdeploy export`)")
        elif name == "trt":
            row["note"] = "after `resdeploy build` (a plan per GPU and TensorRT version)"
        out.append(row)
    return out


def _try(fn: Any) -> tuple[bool, str]:
    try:
        fn()
        return True, ""
    except Exception as exc:  # what the runtime says is the answer
        text = str(exc).strip().splitlines()
        return False, (text[0] if text else type(exc).__name__)[:160]


def _ort_session(p: Path) -> None:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])


def _openvino_read(p: Path) -> None:
    import openvino as ov

    ov.Core().read_model(str(p))


# --- TensorRT plans and training outputs ------------------------------------------------------
def _inspect_plan(art: Artifact, check_engines: bool) -> InspectResult:
    from resdeploy.artifacts import manifest_path_for
    from resdeploy.trt.loader import tensorrt_status

    assert art.path is not None
    p = art.path
    result = InspectResult(path=str(p), kind="tensorrt-plan", file_bytes=p.stat().st_size, precision=None)
    status = tensorrt_status()
    if not status["available"]:
        result.unreadable.append("the plan itself (layers, bindings, tactics): TensorRT is not installed here "
                                 f"({status['reason'] or 'pip install tensorrt'})")
    else:
        result.unreadable.append("the plan's layers: inspect reads the metadata only; use "
                                 "`trtexec --loadEngine=... --dumpLayerInfo` for layer information")
    if check_engines:
        result.engines = [{"engine": "trt", "installed": bool(status["available"]), "can_run": False,
                           "note": "only TensorRT runs a plan, on the GPU and TensorRT version that built it"
                           + ("" if status["available"] else "; TensorRT is not installed here")}]
    try:
        manifest = art.engine_manifest()
    except ResdeployError as exc:
        result.unreadable.append(f"{manifest_path_for(p).name}: {exc}")
        try:  # an artifact folder's manifest.json next to the plan still says where it came from
            described = art.describing_manifest()
        except ResdeployError:
            described = None
        if described is not None:
            beside = described.to_dict()
            result.lineage = lineage(p, beside)
            result.classes = beside.get("classes")
        return result
    meta = manifest.require_engine()
    result.precision = manifest.precision
    result.inputs = [TensorInfo(meta.input_name, ["batch", *meta.input_shape], meta.input_dtype, "NCHW")]
    result.outputs = [TensorInfo(meta.output_name, ["batch", "classes"], meta.output_dtype, None)]
    onnx_path = manifest.parent.resolve(p.parent) if manifest.parent else None
    result.lineage = [{"path": str(p), "stage": "build", "precision": result.precision,
                       "built_at": meta.built_at, "profile": meta.profile}]
    result.classes = manifest.classes
    if onnx_path is not None:
        m = _manifest(onnx_path)
        result.lineage += lineage(onnx_path, m)
        result.classes = result.classes or (m or {}).get("classes")
    elif manifest.parent is not None:
        result.lineage.append({"path": manifest.parent.abspath or manifest.parent.path, "missing": True})
    return result


def _inspect_weights(p: Path, manifest: dict[str, Any]) -> InspectResult:
    w = p / str(manifest["weights"]["file"])
    result = InspectResult(path=str(w), kind="weights", file_bytes=w.stat().st_size if w.exists() else None,
                           precision="fp32", classes=manifest.get("classes"))
    result.lineage = [{"path": str(p), **key_facts(manifest)}]
    result.engines = [{"engine": "torch", "installed": True, "can_run": True,
                       "note": f"export first: resdeploy export {manifest['model']['name']} --weights {p}"}]
    return result
