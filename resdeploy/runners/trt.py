"""The TensorRT runner: a plan (an engine file) on a CUDA stream.

Uses TensorRT 10+'s name-based I/O: set the input shape, set each tensor's device
address, ``execute_async_v3`` on a stream. Device buffers and the stream come from
PyTorch's CUDA allocator (a dependency already), so pycuda is not needed; pinned host
buffers make the host<->device copies asynchronous and as fast as the bus allows.
Optional CUDA-graph capture (``options={"cuda_graph": True}``) replays a whole
inference as one launch, which matters at small batches where launch overhead shows.

The runner is given an engine: building one from an ONNX is the build stage's job
(``resdeploy.trt.build.engine_config``, which bench and validate call through
``resdeploy.prepare`` before they create runners, as ``Runner.prepare`` names it). It
reads the plan's manifest (``<plan>.json``), checks the plan against its file record, and
refuses one whose engine record says it was built for another GPU or TensorRT.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from resdeploy.artifacts import EngineRecord, Manifest, load_engine_manifest
from resdeploy.console import QUIET
from resdeploy.errors import ResdeployError
from resdeploy.runners.base import Availability, Runner, RunnerConfig, RunnerOptions, TensorMeta, option_flag
from resdeploy.trt import loader
from resdeploy.trt.compat import BatchProfile, batch_profile, build_options, check_compatible, is_engine_file

if TYPE_CHECKING:
    import tensorrt as trt
    import torch

_TORCH_DTYPES = {
    "FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "UINT8": "uint8",
    "INT32": "int32", "INT64": "int64", "BOOL": "bool",
}


class CudaDevice:
    """Device memory, pinned host memory, a stream and CUDA graphs, all from PyTorch."""

    def __init__(self, device: str) -> None:
        import torch

        self.torch_device = torch.device(device)
        self.stream = torch.cuda.Stream(device=self.torch_device)  # type: ignore[no-untyped-call]

    @property
    def stream_handle(self) -> int:
        return int(self.stream.cuda_stream)

    def empty(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        import torch

        return torch.empty(shape, dtype=dtype, device=self.torch_device)

    def host_empty(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        import torch

        return torch.empty(shape, dtype=dtype, pin_memory=True)

    def on_stream(self) -> contextlib.AbstractContextManager[Any]:
        import torch

        context: contextlib.AbstractContextManager[Any] = torch.cuda.stream(self.stream)
        return context

    def synchronize(self) -> None:
        self.stream.synchronize()

    def capture(self, launch: Callable[[], None]) -> Callable[[], None]:
        """Record ``launch`` into a CUDA graph; return a function that replays it on our stream."""
        import torch

        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
            launch()

        def replay() -> None:
            with torch.cuda.stream(self.stream):
                graph.replay()

        return replay


def device_backend(device: str) -> CudaDevice:
    """The memory/stream provider for ``device`` (a seam: tests substitute host memory)."""
    return CudaDevice(device)


@dataclass
class _Staged:
    """An input already in device memory, ready for ``run_staged``."""

    tensor: Any  # torch.Tensor on the device
    batch: int


@dataclass
class TrtOptions(RunnerOptions):
    """CUDA-graph replay and logging; profile/calibration/workspace/opt-level when an engine is built for it."""

    cuda_graph: Any = None
    verbose: int = 0
    profile: str | None = None
    calib_data: str | None = None
    workspace_mib: int | None = None
    opt_level: int = 3
    reporter: Any = None
    built: dict[str, Any] | None = None  # set by engine_config: {"cached": bool, "seconds": float}


class TrtRunner(Runner):
    """Runs a TensorRT plan; ``config.model`` is an ONNX/artifact dir/zoo name or an engine file."""

    engine = "trt"
    Options = TrtOptions
    precisions = ("fp32", "fp16", "int8")  # what the plan (built from the graph) holds
    package = "tensorrt"
    install_hint = "pip install tensorrt, on a machine with an NVIDIA GPU"
    prepare = "resdeploy.trt.build:engine_config"  # ONNX -> plan, before the runner is created

    @classmethod
    def probe(cls) -> Availability:
        st = loader.tensorrt_status()  # tells the real module from tensorrt-stubs' empty package
        return Availability(cls.engine, bool(st["available"]), st["version"], ("cuda",) if st["available"] else (),
                            st["reason"] or "")

    @classmethod
    def check_available(cls, device: str = "cpu", options: dict[str, Any] | None = None) -> None:
        super().check_available(device, options)
        # tensorrt-stubs makes `tensorrt` findable without a runtime: ask the TensorRT loader.
        loader.require_tensorrt()

    def __init__(self, config: RunnerConfig) -> None:
        super().__init__(config)
        # At construction, not load: `bench --engine ort,trt` without --device cuda must fail
        # before ort is timed, not minutes later.
        loader.cuda_index(config.device)
        assert isinstance(self.options, TrtOptions)
        # replay CUDA graphs; turned off for this runner when a capture fails
        self.cuda_graph = option_flag(self.options.cuda_graph, False)
        self.engine_path: Path | None = None
        self.manifest: Manifest | None = None  # the plan's (<plan>.json), with its engine record
        self.cached: bool | None = None
        self._tensorrt_version = ""
        self._trt_engine: trt.ICudaEngine | None = None
        self._context: trt.IExecutionContext | None = None
        self._logger: trt.ILogger | None = None
        self._device: Any = None  # CudaDevice, or the tests' host stand-in
        self._runtime: trt.Runtime | None = None
        self._input_name = ""
        self._output_name = ""
        self._input_dtype: Any = None
        self._output_dtype: Any = None
        self._chw: tuple[int, ...] = ()
        self._profile = BatchProfile(1, 1, 1)
        self._shape_batch: int | None = None
        self._outputs: dict[int, Any] = {}
        self._host_in: dict[int, Any] = {}
        self._host_out: dict[int, Any] = {}
        self._graph_inputs: dict[int, Any] = {}
        self._graphs: dict[int, Callable[[], None]] = {}

    # --- lifecycle -----------------------------------------------------------------------------
    def _load(self) -> None:
        import time

        loader.require_tensorrt()
        import tensorrt as trt

        self._tensorrt_version = str(trt.__version__)
        gpu = loader.gpu_info(self.config.device)
        if not is_engine_file(self.config.model):
            raise ResdeployError(
                f"the TensorRT runner runs an engine plan, and {self.config.model} is not one",
                hint="build it with `resdeploy build`, or let bench/validate build it (resdeploy.prepare)")
        path = Path(self.config.model)
        if not path.exists():
            raise ResdeployError(f"no such file: {path}")
        manifest = load_engine_manifest(path)  # a plan changed since its manifest was written: one line, exit 2
        meta = manifest.require_engine(str(path))
        check_compatible(path, meta, gpu, self._tensorrt_version)
        assert isinstance(self.options, TrtOptions)
        built = self.options.built or {}
        self.cached = built.get("cached")
        self.setup_seconds["build"] = float(built.get("seconds", 0.0))
        self.engine_path, self.manifest = path, manifest

        t0 = time.perf_counter()
        self._logger = loader.make_logger(int(self.options.verbose or 0), quiet=True)
        runtime = trt.Runtime(self._logger)
        options = build_options(meta)
        if options.version_compatible and not options.exclude_lean_runtime:
            runtime.engine_host_code_allowed = True  # the plan carries its own lean runtime
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise ResdeployError(f"TensorRT could not load {path}: {self._errors('no reason logged')}")
        self._trt_engine = engine
        self._bind_io(engine, meta, path)
        context = engine.create_execution_context()
        if context is None:
            raise ResdeployError(f"TensorRT could not create an execution context for {path}: {self._errors('out of GPU memory?')}")
        self._context = context
        self._device = device_backend(self.config.device)
        self._runtime = runtime
        self.setup_seconds["load"] = round(time.perf_counter() - t0, 3)

    def _bind_io(self, engine: trt.ICudaEngine, meta: EngineRecord, path: Path) -> None:
        import tensorrt as trt

        inputs: list[str] = []
        outputs: list[str] = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            (inputs if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outputs).append(name)
        if len(inputs) != 1 or not outputs:
            raise ResdeployError(f"{path} has inputs {inputs} and outputs {outputs}; expected one image input")
        self._input_name, self._output_name = inputs[0], outputs[0]
        self._input_dtype = _torch_dtype(engine.get_tensor_dtype(self._input_name))
        self._output_dtype = _torch_dtype(engine.get_tensor_dtype(self._output_name))
        shape = loader.dims_tuple(engine.get_tensor_shape(self._input_name))
        self._chw = shape[1:] if all(d > 0 for d in shape[1:]) else tuple(meta.input_shape)
        self._profile = batch_profile(meta)

    def _close(self) -> None:
        if self._device is not None:
            with contextlib.suppress(Exception):
                self._device.synchronize()
        self._graphs.clear()
        self._graph_inputs.clear()
        self._outputs.clear()
        self._host_in.clear()
        self._host_out.clear()
        self._context = None
        self._trt_engine = None
        self._device = None
        self._shape_batch = None

    # --- description -----------------------------------------------------------------------------
    @property
    def device(self) -> str:
        return self.config.device

    def input_meta(self) -> TensorMeta:
        p = self._profile
        batch: int | str = p.min if p.min == p.max else "batch"
        dtype = str(self._input_dtype).replace("torch.", "") if self._input_dtype is not None else "float32"
        return TensorMeta(self._input_name or "input", (batch, *self._chw), dtype)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        manifest = self.manifest
        d.update({
            "tensorrt": self._tensorrt_version or None,
            "engine_path": str(self.engine_path) if self.engine_path else None,
            "engine_cached": self.cached,
            "cuda_graph": self.cuda_graph,
        })
        if manifest is not None and manifest.engine is not None:
            meta = manifest.engine
            d.update({"precision": manifest.precision, "profile": str(batch_profile(meta)), "gpu": meta.gpu_name,
                      "compute_capability": meta.compute_capability, "build_options": meta.options})
        return d

    # --- running -----------------------------------------------------------------------------------
    def _infer(self, batch: np.ndarray) -> np.ndarray:
        result: np.ndarray = self.run_staged(self.stage(batch), transfers=True)
        return result

    def stage(self, batch: np.ndarray) -> _Staged:
        """Copy a host batch through a pinned buffer to device memory, on our stream."""
        import torch

        self._require_loaded()
        self.check_input(batch)
        arr = np.ascontiguousarray(batch, dtype=np.float32)
        n = int(arr.shape[0])
        if not self._profile.covers(n):
            raise ResdeployError(
                f"batch {n} is outside this engine's profile {self._profile} (MIN:OPT:MAX)",
                hint=f"rebuild with `resdeploy build --batch 1:{n}:{max(n, self._profile.max)}`",
            )
        host = self._host_in.get(n)
        if host is None:
            host = self._host_in[n] = self._device.host_empty((n, *self._chw), self._input_dtype)
        host.copy_(torch.from_numpy(arr))  # float32 -> the engine's input type (FP16 graphs may take half)
        if self.cuda_graph:
            dev = self._graph_input(n)  # graphs read fixed addresses
        else:
            dev = self._device.empty((n, *self._chw), self._input_dtype)
        with self._device.on_stream():
            dev.copy_(host, non_blocking=True)
        return _Staged(dev, n)

    def run_staged(self, staged: Any, *, transfers: bool = True) -> Any:
        """Run one inference on a staged input; with ``transfers`` return host float32 logits."""
        self._require_loaded()
        if not isinstance(staged, _Staged):
            staged = self.stage(np.asarray(staged))
        n = staged.batch
        out = self._prepare(n)
        if self.cuda_graph:
            graph_in = self._graph_input(n)
            if staged.tensor.data_ptr() != graph_in.data_ptr():
                with self._device.on_stream():
                    graph_in.copy_(staged.tensor, non_blocking=True)
            self._replay(n, graph_in, out)
        else:
            self._launch(staged.tensor, out)
        if not transfers:
            return out
        host = self._host_out.get(n)
        if host is None:
            host = self._host_out[n] = self._device.host_empty(tuple(out.shape), self._output_dtype)
        with self._device.on_stream():
            host.copy_(out, non_blocking=True)
        self._device.synchronize()
        return host.numpy().astype(np.float32, copy=True)

    def synchronize(self) -> None:
        if self._device is not None:
            self._device.synchronize()

    # --- internals -----------------------------------------------------------------------------------
    def _require_loaded(self) -> trt.IExecutionContext:
        if self._context is None:
            raise ResdeployError("the TensorRT runner is not loaded; use it as a context manager (`with runner:`)")
        return self._context

    def _prepare(self, n: int) -> Any:
        """Set the input shape for batch ``n`` (when it changed) and return its output buffer."""
        context = self._require_loaded()
        if self._shape_batch != n:
            if not context.set_input_shape(self._input_name, (n, *self._chw)):
                raise ResdeployError(f"TensorRT rejected input shape {[n, *self._chw]}: {self._errors('')}")
            self._shape_batch = n
        out = self._outputs.get(n)
        if out is None:
            shape = loader.dims_tuple(context.get_tensor_shape(self._output_name))
            if any(d < 0 for d in shape):
                raise ResdeployError(f"TensorRT could not infer the output shape for batch {n}")
            out = self._outputs[n] = self._device.empty(shape, self._output_dtype)
        return out

    def _launch(self, inp: Any, out: Any) -> None:
        context = self._require_loaded()
        context.set_tensor_address(self._input_name, int(inp.data_ptr()))
        context.set_tensor_address(self._output_name, int(out.data_ptr()))
        if not context.execute_async_v3(int(self._device.stream_handle)):
            raise ResdeployError(f"TensorRT failed to run {self.engine_path}: {self._errors('no reason logged')}")

    def _graph_input(self, n: int) -> Any:
        buf = self._graph_inputs.get(n)
        if buf is None:
            buf = self._graph_inputs[n] = self._device.empty((n, *self._chw), self._input_dtype)
        return buf

    def _replay(self, n: int, inp: Any, out: Any) -> None:
        replay = self._graphs.get(n)
        if replay is None:
            self._launch(inp, out)  # one plain run first: TensorRT finishes lazy set-up outside the capture
            self._device.synchronize()
            try:
                replay = self._device.capture(lambda: self._launch(inp, out))
            except Exception as exc:  # capture is an optimisation: run without it rather than fail
                QUIET.warn(f"CUDA graph capture failed ({exc}); running without it")
                self.cuda_graph = False
                return
            self._graphs[n] = replay
        replay()

    def _errors(self, default: str) -> str:
        errors = loader.logged_errors(self._logger) if self._logger is not None else []
        return "; ".join(errors[-3:]) or default


def _torch_dtype(dtype: trt.DataType) -> torch.dtype:
    import torch

    name = _TORCH_DTYPES.get(dtype.name)
    if name is None:
        raise ResdeployError(f"engine tensor type {dtype.name} is not supported by the TensorRT runner")
    result: torch.dtype = getattr(torch, name)
    return result

