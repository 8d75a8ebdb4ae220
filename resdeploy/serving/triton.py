"""Triton's model configuration as dataclasses, written as ``config.pbtxt`` and checked against Triton's schema.

Why dataclasses rather than the protobuf: resdeploy must write a repository on machines
without ``tritonclient`` (it is an optional extra), and a few plain fields say what we
set more clearly than a generated message. The text written here is Triton's protobuf
text format; ``parse_config`` reads it back with Triton's own ``ModelConfig`` message
(``tritonclient.grpc.model_config_pb2``) where that is installed, so a field name or an
enum value Triton does not know fails here, not on the server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from resdeploy.errors import ResdeployError, require

PLATFORMS = ("onnxruntime_onnx", "tensorrt_plan")
KINDS = {"cpu": "KIND_CPU", "gpu": "KIND_GPU"}
MODEL_FILES = {"onnxruntime_onnx": "model.onnx", "tensorrt_plan": "model.plan"}

# numpy dtype name -> Triton data type (model_config.proto's DataType enum).
TRITON_DTYPES = {
    "bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "uint16": "TYPE_UINT16", "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64", "int8": "TYPE_INT8", "int16": "TYPE_INT16", "int32": "TYPE_INT32",
    "int64": "TYPE_INT64", "float16": "TYPE_FP16", "float32": "TYPE_FP32", "float64": "TYPE_FP64",
    "bfloat16": "TYPE_BF16",
}
# The KServe v2 protocol's datatype names (the HTTP/gRPC request), for the README's curl request.
KSERVE_DTYPES = {v: v.removeprefix("TYPE_") for v in TRITON_DTYPES.values()}


@dataclass(frozen=True)
class TensorConfig:
    """One input or output: dims exclude the batch axis when the model's ``max_batch_size`` > 0; -1 is dynamic."""

    name: str
    data_type: str  # TYPE_FP32, TYPE_UINT8, ...
    dims: tuple[int, ...]
    label_filename: str | None = None  # outputs only: Triton's classification extension reads it


@dataclass(frozen=True)
class DynamicBatching:
    preferred_batch_size: tuple[int, ...] = ()
    max_queue_delay_microseconds: int = 0


@dataclass(frozen=True)
class InstanceGroup:
    count: int = 1
    kind: str = "KIND_CPU"
    gpus: tuple[int, ...] = ()


@dataclass(frozen=True)
class Accelerator:
    """An execution accelerator of the ONNX Runtime backend (``tensorrt`` on GPU, ``openvino`` on CPU)."""

    name: str
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelConfig:
    """The parts of Triton's ``ModelConfig`` that resdeploy sets."""

    name: str
    platform: str
    max_batch_size: int
    inputs: tuple[TensorConfig, ...]
    outputs: tuple[TensorConfig, ...]
    dynamic_batching: DynamicBatching | None = None
    instance_groups: tuple[InstanceGroup, ...] = ()
    gpu_accelerators: tuple[Accelerator, ...] = ()
    cpu_accelerators: tuple[Accelerator, ...] = ()
    default_model_filename: str | None = None

    def to_pbtxt(self) -> str:
        """Triton's protobuf text format, in the layout of the configs in Triton's documentation."""
        out = [f"name: {_q(self.name)}", f"platform: {_q(self.platform)}", f"max_batch_size: {self.max_batch_size}"]
        if self.default_model_filename:
            out.append(f"default_model_filename: {_q(self.default_model_filename)}")
        out.append(_tensors("input", self.inputs))
        out.append(_tensors("output", self.outputs))
        if self.dynamic_batching is not None:
            db = self.dynamic_batching
            body = []
            if db.preferred_batch_size:
                body.append(f"  preferred_batch_size: [ {', '.join(str(b) for b in db.preferred_batch_size)} ]")
            body.append(f"  max_queue_delay_microseconds: {db.max_queue_delay_microseconds}")
            out.append("dynamic_batching {\n" + "\n".join(body) + "\n}")
        if self.instance_groups:
            groups = []
            for g in self.instance_groups:
                lines = [f"    count: {g.count}", f"    kind: {g.kind}"]
                if g.gpus:
                    lines.append(f"    gpus: [ {', '.join(str(i) for i in g.gpus)} ]")
                groups.append("  {\n" + "\n".join(lines) + "\n  }")
            out.append("instance_group [\n" + ",\n".join(groups) + "\n]")
        if self.gpu_accelerators or self.cpu_accelerators:
            parts = []
            for key, accs in (("gpu_execution_accelerator", self.gpu_accelerators),
                              ("cpu_execution_accelerator", self.cpu_accelerators)):
                if accs:
                    parts.append(f"    {key} : [\n" + ",\n".join(_accelerator(a) for a in accs) + "\n    ]")
            out.append("optimization {\n  execution_accelerators {\n" + "\n".join(parts) + "\n  }\n}")
        return "\n".join(out) + "\n"


def _q(text: str) -> str:
    """A protobuf text-format string literal (JSON's escaping is a subset it accepts)."""
    return json.dumps(text)


def _tensors(key: str, tensors: tuple[TensorConfig, ...]) -> str:
    items = []
    for t in tensors:
        lines = [f"    name: {_q(t.name)}", f"    data_type: {t.data_type}",
                 f"    dims: [ {', '.join(str(d) for d in t.dims)} ]"]
        if t.label_filename:
            lines.append(f"    label_filename: {_q(t.label_filename)}")
        items.append("  {\n" + "\n".join(lines) + "\n  }")
    return f"{key} [\n" + ",\n".join(items) + "\n]"


def _accelerator(a: Accelerator) -> str:
    lines = [f"        name : {_q(a.name)}"]
    lines += [f"        parameters {{ key: {_q(k)} value: {_q(v)} }}" for k, v in a.parameters.items()]
    return "      {\n" + "\n".join(lines) + "\n      }"


# --- the check against Triton's own schema ---------------------------------------------------------
def model_config_pb2() -> Any:
    """Triton's generated ``model_config_pb2`` module, or a one-line error naming the install."""
    return require("tritonclient.grpc.model_config_pb2", install="tritonclient grpcio",
                   what="Triton's model config schema (tritonclient.grpc.model_config_pb2)")


def parse_config(text: str) -> Any:
    """Parse ``config.pbtxt`` text into Triton's ``inference.ModelConfig`` message (raises on any unknown field)."""
    pb2 = model_config_pb2()
    from google.protobuf import text_format

    try:
        return text_format.Parse(text, pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise ResdeployError(f"config.pbtxt does not parse as Triton's ModelConfig: {exc}") from None


def check_against_graph(message: Any, config: ModelConfig) -> list[str]:
    """Differences between a parsed ``ModelConfig`` and the tensors read from the model: [] when they agree."""
    pb2 = model_config_pb2()
    problems = []
    if message.max_batch_size != config.max_batch_size:
        problems.append(f"max_batch_size {message.max_batch_size} != {config.max_batch_size}")
    for key, parsed, expected in (("input", message.input, config.inputs), ("output", message.output, config.outputs)):
        got = [(t.name, pb2.DataType.Name(t.data_type), tuple(t.dims)) for t in parsed]
        want = [(t.name, t.data_type, tuple(t.dims)) for t in expected]
        if got != want:
            problems.append(f"{key}s {got} != graph {want}")
    return problems
