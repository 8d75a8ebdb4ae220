"""A FAKE ``tensorrt`` module for unit tests. It is not TensorRT and shows nothing about TensorRT.

TensorRT cannot be installed where resdeploy's CI runs, so the build and run logic
(flags, profiles, pool limits, timing cache, engine cache, I/O names and shapes,
compatibility checks, error reporting) is exercised against this small recording
stand-in, installed as ``sys.modules["tensorrt"]`` by the ``fake_trt`` fixture.

What it does, and nothing more:
- records every builder/config/profile/context call in ``FakeTensorRT.record``;
- its ONNX "parser" reads the real ONNX file with ``onnx`` to learn the input and
  output names, shapes and types, and rejects nodes whose op type is listed in
  ``unsupported_ops`` with one error per node, as TensorRT's parser reports them;
- a "plan" is a JSON blob describing the network and settings (no kernels);
- its execution context writes a documented stand-in into the output buffer
  (``logits[i, j] = (j + 1) * mean(input[i])``), so tests can see which input
  reached which output row. That is not a model, and no test compares it to one.

Real-engine tests are marked ``trt`` and run only where the real ``tensorrt`` imports.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import json
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PLAN_MAGIC = "resdeploy-tests-fake-tensorrt-plan"


@dataclass
class Record:
    """Everything the code under test asked the fake to do."""

    network_flags: list[int] = field(default_factory=list)
    set_flags: list[str] = field(default_factory=list)
    memory_pool_limits: dict[str, int] = field(default_factory=dict)
    opt_levels: list[int] = field(default_factory=list)
    hardware_levels: list[str] = field(default_factory=list)
    profiles: list[dict[str, Any]] = field(default_factory=list)
    timing_cache_loaded: list[bytes] = field(default_factory=list)
    timing_cache_ignore_mismatch: list[bool] = field(default_factory=list)
    builds: int = 0
    parsed_files: list[str] = field(default_factory=list)
    deserialized: int = 0
    engine_host_code_allowed: list[bool] = field(default_factory=list)
    input_shapes: list[tuple[int, ...]] = field(default_factory=list)
    addresses: list[tuple[str, int]] = field(default_factory=list)
    executes: list[int] = field(default_factory=list)  # stream handles


class Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    INT64 = 8


class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0


class HardwareCompatibilityLevel(enum.IntEnum):
    NONE = 0
    AMPERE_PLUS = 1
    SAME_COMPUTE_CAPABILITY = 2


_ONNX_TO_DTYPE = {1: DataType.FLOAT, 10: DataType.HALF, 3: DataType.INT8, 6: DataType.INT32, 7: DataType.INT64}
_NP = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT32: np.int32}


class FakeTensorRT(types.ModuleType):
    """The module object. ``version`` picks the API flavour: 10.x has FP16/INT8 builder flags
    and the STRONGLY_TYPED creation flag; 11.x has neither (strong typing is always on)."""

    def __init__(self, version: str = "10.13.0.35", *, unsupported_ops: tuple[str, ...] = (),
                 fail_build: str | None = None, cuda: bool = False) -> None:
        super().__init__("tensorrt", "FAKE tensorrt module for resdeploy's unit tests (tests/trt/fake_tensorrt.py)")
        self.__version__ = version
        self.record = Record()
        self.unsupported_ops = set(unsupported_ops)
        self.fail_build = fail_build
        self.cuda = cuda  # tensor addresses are CUDA device pointers (GPU tests of the runner's plumbing)
        major = int(version.split(".")[0])
        flags = ["DEBUG", "REFIT", "VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME"]
        if major < 11:
            flags += ["FP16", "INT8", "BF16", "OBEY_PRECISION_CONSTRAINTS"]
        self.BuilderFlag = enum.IntEnum("BuilderFlag", flags)  # type: ignore[misc]
        creation = ["EXPLICIT_BATCH", "STRONGLY_TYPED"] if major < 11 else ["PREFER_AOT_PYTHON_PLUGINS"]
        self.NetworkDefinitionCreationFlag = enum.IntEnum(  # type: ignore[misc]
            "NetworkDefinitionCreationFlag", {name: i for i, name in enumerate(creation)}
        )
        self.DataType = DataType
        self.TensorIOMode = TensorIOMode
        self.MemoryPoolType = MemoryPoolType
        self.HardwareCompatibilityLevel = HardwareCompatibilityLevel
        self.ILogger = _make_ilogger()
        self.Logger = self.ILogger
        fake = self

        class Dims(list):  # type: ignore[type-arg]
            pass

        self.Dims = Dims

        class Builder:
            def __init__(self, logger: Any) -> None:
                self.logger = logger

            def create_network(self, flags: int = 0) -> _Network:
                fake.record.network_flags.append(flags)
                return _Network(flags)

            def create_builder_config(self) -> _BuilderConfig:
                return _BuilderConfig(fake)

            def create_optimization_profile(self) -> _Profile:
                return _Profile()

            def build_serialized_network(self, network: _Network, config: _BuilderConfig) -> bytes | None:
                fake.record.builds += 1
                if fake.fail_build:
                    self.logger.log(Severity.ERROR, fake.fail_build)
                    return None
                if config.timing_cache is not None:
                    config.timing_cache.entries += 1
                plan = {
                    "magic": PLAN_MAGIC, "version": fake.__version__, "flags": network.flags,
                    "inputs": network.inputs, "outputs": network.outputs,
                    "profiles": config.profiles, "builder_flags": sorted(config.flags),
                }
                return json.dumps(plan).encode()

        class OnnxParser:
            def __init__(self, network: _Network, logger: Any) -> None:
                self.network, self.logger = network, logger
                self.errors: list[_ParserError] = []

            @property
            def num_errors(self) -> int:
                return len(self.errors)

            def get_error(self, index: int) -> _ParserError:
                return self.errors[index]

            def parse_from_file(self, path: str) -> bool:
                import onnx

                fake.record.parsed_files.append(path)
                model = onnx.load(path, load_external_data=False)
                for index, node in enumerate(model.graph.node):
                    if node.op_type in fake.unsupported_ops:
                        self.errors.append(_ParserError(
                            index, node.name, node.op_type, f"No importer registered for op: {node.op_type}"))
                if self.errors:
                    return False
                inits = {t.name for t in model.graph.initializer}
                for vi in model.graph.input:
                    if vi.name not in inits:
                        self.network.inputs.append(_tensor_desc(vi))
                for vi in model.graph.output:
                    self.network.outputs.append(_tensor_desc(vi))
                return True

        class Runtime:
            def __init__(self, logger: Any) -> None:
                self.logger = logger
                self.engine_host_code_allowed = False

            def deserialize_cuda_engine(self, data: bytes) -> _Engine | None:
                fake.record.deserialized += 1
                fake.record.engine_host_code_allowed.append(self.engine_host_code_allowed)
                try:
                    plan = json.loads(bytes(data))
                except ValueError:
                    plan = None
                if not isinstance(plan, dict) or plan.get("magic") != PLAN_MAGIC:
                    self.logger.log(Severity.ERROR, "IRuntime::deserializeCudaEngine: Error Code 1: Serialization (not a plan)")
                    return None
                if plan["version"] != fake.__version__:
                    self.logger.log(Severity.ERROR, "The engine plan file is not compatible with this version of TensorRT")
                    return None
                return _Engine(fake, plan)

        self.Builder = Builder
        self.OnnxParser = OnnxParser
        self.Runtime = Runtime


# --- pieces ---------------------------------------------------------------------------------------

def _make_ilogger() -> type:
    class ILogger:
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = (Severity.INTERNAL_ERROR, Severity.ERROR, Severity.WARNING,
                                                         Severity.INFO, Severity.VERBOSE)

        def __init__(self, min_severity: Severity = Severity.WARNING) -> None:
            self.min_severity = min_severity

        def log(self, severity: Severity, msg: str) -> None:  # pragma: no cover - overridden
            pass

    ILogger.Severity = Severity  # type: ignore[attr-defined]
    return ILogger


def _tensor_desc(vi: Any) -> dict[str, Any]:
    tt = vi.type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
    return {"name": vi.name, "shape": shape, "dtype": int(_ONNX_TO_DTYPE.get(tt.elem_type, DataType.FLOAT))}


@dataclass
class _Tensor:
    name: str
    shape: list[int]
    dtype: DataType


class _Network:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.inputs: list[dict[str, Any]] = []
        self.outputs: list[dict[str, Any]] = []

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    def get_input(self, i: int) -> _Tensor:
        d = self.inputs[i]
        return _Tensor(d["name"], list(d["shape"]), DataType(d["dtype"]))

    def get_output(self, i: int) -> _Tensor:
        d = self.outputs[i]
        return _Tensor(d["name"], list(d["shape"]), DataType(d["dtype"]))


@dataclass
class _ParserError:
    _node: int
    _name: str
    _op: str
    _desc: str

    def node(self) -> int:
        return self._node

    def node_name(self) -> str:
        return self._name

    def node_operator(self) -> str:
        return self._op

    def desc(self) -> str:
        return self._desc


class _Profile:
    def __init__(self) -> None:
        self.shapes: dict[str, list[list[int]]] = {}

    def set_shape(self, name: str, lo: Any, opt: Any, hi: Any) -> None:
        self.shapes[name] = [list(lo), list(opt), list(hi)]


class _TimingCache:
    def __init__(self, data: bytes) -> None:
        self.entries = int(data.decode().split("=")[1]) if data.startswith(b"fake-timing-cache=") else 0

    def serialize(self) -> bytes:
        return f"fake-timing-cache={self.entries}".encode()


class _BuilderConfig:
    def __init__(self, fake: FakeTensorRT) -> None:
        self._fake = fake
        self.flags: set[str] = set()
        self.profiles: list[dict[str, Any]] = []
        self.timing_cache: _TimingCache | None = None
        self._opt_level = 3
        self._hw = HardwareCompatibilityLevel.NONE

    @property
    def builder_optimization_level(self) -> int:
        return self._opt_level

    @builder_optimization_level.setter
    def builder_optimization_level(self, value: int) -> None:
        self._fake.record.opt_levels.append(value)
        self._opt_level = value

    @property
    def hardware_compatibility_level(self) -> HardwareCompatibilityLevel:
        return self._hw

    @hardware_compatibility_level.setter
    def hardware_compatibility_level(self, value: HardwareCompatibilityLevel) -> None:
        self._fake.record.hardware_levels.append(value.name)
        self._hw = value

    def set_flag(self, flag: enum.IntEnum) -> None:
        self._fake.record.set_flags.append(flag.name)
        self.flags.add(flag.name)

    def set_memory_pool_limit(self, pool: MemoryPoolType, size: int) -> None:
        self._fake.record.memory_pool_limits[pool.name] = size

    def add_optimization_profile(self, profile: _Profile) -> int:
        self.profiles.append(profile.shapes)
        self._fake.record.profiles.append(profile.shapes)
        return len(self.profiles) - 1

    def create_timing_cache(self, data: bytes) -> _TimingCache:
        self._fake.record.timing_cache_loaded.append(bytes(data))
        if data and not bytes(data).startswith(b"fake-timing-cache="):
            raise RuntimeError("timing cache is corrupt")
        return _TimingCache(bytes(data))

    def set_timing_cache(self, cache: _TimingCache, ignore_mismatch: bool) -> bool:
        self._fake.record.timing_cache_ignore_mismatch.append(ignore_mismatch)
        self.timing_cache = cache
        return True


class _Engine:
    def __init__(self, fake: FakeTensorRT, plan: dict[str, Any]) -> None:
        self._fake = fake
        self.plan = plan
        self._io = [(d, TensorIOMode.INPUT) for d in plan["inputs"]] + [(d, TensorIOMode.OUTPUT) for d in plan["outputs"]]

    @property
    def num_io_tensors(self) -> int:
        return len(self._io)

    def get_tensor_name(self, i: int) -> str:
        return str(self._io[i][0]["name"])

    def _find(self, name: str) -> tuple[dict[str, Any], TensorIOMode]:
        for d, mode in self._io:
            if d["name"] == name:
                return d, mode
        raise KeyError(name)

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return self._find(name)[1]

    def get_tensor_dtype(self, name: str) -> DataType:
        return DataType(self._find(name)[0]["dtype"])

    def get_tensor_shape(self, name: str) -> list[int]:
        return list(self._find(name)[0]["shape"])

    def create_execution_context(self) -> _Context:
        return _Context(self)


class _Context:
    def __init__(self, engine: _Engine) -> None:
        self.engine = engine
        self.record = engine._fake.record
        self.batch: int | None = None
        self.addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape: Any) -> bool:
        shape = tuple(int(d) for d in shape)
        self.record.input_shapes.append(shape)
        lo, _, hi = self.engine.plan["profiles"][0][name]
        if not all(a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)):
            return False
        self.batch = shape[0]
        return True

    def get_tensor_shape(self, name: str) -> list[int]:
        d, mode = self.engine._find(name)
        if self.batch is None:
            return list(d["shape"])
        return [self.batch, *d["shape"][1:]]

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.record.addresses.append((name, ptr))
        self.addresses[name] = ptr
        return True

    def execute_async_v3(self, stream: int) -> bool:
        """Write the stand-in ``logits[i, j] = (j + 1) * mean(input[i])`` through the raw addresses."""
        self.record.executes.append(stream)
        (inp, _), (out, _) = self.engine._io[0], self.engine._io[1]
        assert self.batch is not None
        in_shape = [self.batch, *inp["shape"][1:]]
        out_shape = [self.batch, *out["shape"][1:]]
        in_type, out_type = _NP[DataType(inp["dtype"])], _NP[DataType(out["dtype"])]
        if self.engine._fake.cuda:
            _cuda_stand_in(self.addresses[inp["name"]], in_shape, in_type,
                           self.addresses[out["name"]], out_shape, out_type, stream)
            return True
        x = _view(self.addresses[inp["name"]], in_shape, in_type)
        y = _view(self.addresses[out["name"]], out_shape, out_type)
        means = x.reshape(self.batch, -1).astype(np.float64).mean(axis=1)
        y[...] = (means[:, None] * np.arange(1, out_shape[1] + 1)[None, :]).astype(y.dtype)
        return True


class _CudaArray:
    """Wraps a raw device pointer so torch can view it (``__cuda_array_interface__``)."""

    def __init__(self, ptr: int, shape: list[int], dtype: Any) -> None:
        self.__cuda_array_interface__ = {"shape": tuple(shape), "typestr": np.dtype(dtype).str,
                                         "data": (ptr, False), "version": 3, "strides": None, "stream": None}


def _cuda_stand_in(in_ptr: int, in_shape: list[int], in_type: Any, out_ptr: int, out_shape: list[int],
                   out_type: Any, stream: int) -> None:
    """The same stand-in as on the host, computed by torch on the caller's CUDA stream."""
    import torch

    with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
        x = torch.as_tensor(_CudaArray(in_ptr, in_shape, in_type), device="cuda")
        y = torch.as_tensor(_CudaArray(out_ptr, out_shape, out_type), device="cuda")
        means = x.reshape(in_shape[0], -1).float().mean(dim=1)
        scale = torch.arange(1, out_shape[1] + 1, device="cuda", dtype=torch.float32)
        y.copy_((means[:, None] * scale[None, :]).to(y.dtype))


def _view(ptr: int, shape: list[int], dtype: Any) -> np.ndarray:
    count = int(np.prod(shape))
    nbytes = count * np.dtype(dtype).itemsize
    buf = (ctypes.c_byte * nbytes).from_address(ptr)
    return np.frombuffer(buf, dtype=dtype, count=count).reshape(shape)


# --- a host-memory device for the runner (no GPU here) --------------------------------------------

class HostDevice:
    """Stands in for ``resdeploy.runners.trt.CudaDevice`` with CPU torch tensors (FAKE: no GPU)."""

    STREAM = 0xC0FFEE

    def __init__(self, device: str) -> None:
        self.device = device
        self.synchronized = 0
        self.captures = 0

    @property
    def stream_handle(self) -> int:
        return self.STREAM

    def empty(self, shape: tuple[int, ...], dtype: Any) -> Any:
        import torch

        return torch.empty(shape, dtype=dtype)

    host_empty = empty

    def on_stream(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def synchronize(self) -> None:
        self.synchronized += 1

    def capture(self, launch: Callable[[], None]) -> Callable[[], None]:
        self.captures += 1
        return launch

