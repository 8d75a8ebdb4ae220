"""ONNX Runtime on an NVIDIA GPU: the CUDA provider (or TensorRT provider) with I/O binding.

What makes ONNX Runtime fast on a GPU is not the default ``session.run``: that copies
the input from host to device and the output back on every call, and launches each
kernel from the host. So this runner:

* binds input and output to device buffers that stay put (I/O binding), so a benchmark
  can time the device alone (``transfers=False``) or with the copies (``transfers=True``);
* can capture the whole graph as a CUDA graph and replay it (``cuda_graph``), which
  removes per-kernel launch cost (the main cost at batch 1). ONNX Runtime captures on
  the third run on the calling thread, so the runner does three runs while loading;
* asks cuDNN to search its convolution algorithms exhaustively and prefers NHWC kernels
  (the tensor cores' layout) where this build of the provider offers them.

The device buffers are torch CUDA tensors when a CUDA build of PyTorch is present (so a
staged input is copied device-to-device into the bound buffer, on the provider's own
stream), else ONNX Runtime's own ``OrtValue`` buffers, in which case every run copies
its input from the host.

Options (``OrtCudaOptions``, parsed from ``RunnerConfig.options``): ``ep`` ("cuda" | "trt"), ``cuda_graph`` (default
False), ``nhwc`` (default True), ``cudnn_search`` ("EXHAUSTIVE" | "HEURISTIC" |
"DEFAULT", default EXHAUSTIVE), ``trt_fp16`` (TensorRT provider: build FP16 kernels for an
FP32 graph, default False: precision lives in the graph).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resdeploy.errors import MissingDependencyError, ResdeployError
from resdeploy.onnx_io import cast_input
from resdeploy.runners.base import RunnerConfig, TensorMeta, cuda_index, option_flag
from resdeploy.runners.ort import _EP_INSTALL, ORT_EPS, OrtOptions, OrtRunner

CUDNN_SEARCH = ("EXHAUSTIVE", "HEURISTIC", "DEFAULT")
_WARMUP_RUNS = 3  # run 1: cuDNN search + arena growth; run 2: allowed to capture; run 3: captures



def device_index(device: str) -> int:
    """'cuda' -> 0, 'cuda:3' -> 3; anything else is the user's mistake (``runners.base.cuda_index``)."""
    return cuda_index(device, f"ONNX Runtime's GPU runner needs --device cuda[:N], not '{device}'")


def cuda_provider_options(
    device_id: int,
    *,
    cuda_graph: bool = False,
    nhwc: bool = True,
    cudnn_search: str = "EXHAUSTIVE",
    stream: int | None = None,
) -> dict[str, str]:
    """The CUDA provider's options for the fastest inference this provider offers.

    String values, as the provider parses them. ``prefer_nhwc`` only changes anything in
    builds with NHWC kernels (official onnxruntime-gpu wheels have them); older builds
    ignore the key. ``stream`` shares a CUDA stream with the caller, so device-to-device
    copies into the bound input are ordered before the provider's kernels.
    """
    search = cudnn_search.upper()
    if search not in CUDNN_SEARCH:
        raise ResdeployError(f"unknown cuDNN search '{cudnn_search}'; choose from: {', '.join(CUDNN_SEARCH)}")
    opts = {
        "device_id": str(device_id),
        "cudnn_conv_algo_search": search,
        "cudnn_conv_use_max_workspace": "1",
        "do_copy_in_default_stream": "1",
        "prefer_nhwc": "1" if nhwc else "0",
        "enable_cuda_graph": "1" if cuda_graph else "0",
    }
    if stream is not None:
        # Both keys, as ONNX Runtime's own C API wrappers set them (the first alone is parsed
        # as "implies the second" in recent builds only).
        opts["has_user_compute_stream"] = "1"
        opts["user_compute_stream"] = str(int(stream))
    return opts


def trt_provider_options(device_id: int, *, cuda_graph: bool, fp16: bool, cache_dir: Path) -> dict[str, Any]:
    """The TensorRT provider's options: engine and timing caches beside the model."""
    return {
        "device_id": device_id,
        "trt_fp16_enable": bool(fp16),
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache_dir),
        "trt_cuda_graph_enable": bool(cuda_graph),
    }


@dataclass
class OrtCudaOptions(OrtOptions):
    """On CUDA: CUDA-graph replay, NHWC kernels, cuDNN's algorithm search, FP16 in the TensorRT provider."""

    cuda_graph: Any = None
    nhwc: Any = None
    cudnn_search: str | None = None
    trt_fp16: Any = None


class OrtCudaRunner(OrtRunner):
    """ONNX Runtime's CUDA (or TensorRT) provider with device-resident, bound I/O."""

    engine = "ort"
    Options = OrtCudaOptions
    _io_device = "cuda"  # where bound buffers live (ONNX Runtime's device name)

    def __init__(self, config: RunnerConfig) -> None:
        self.device_id = device_index(config.device)
        super().__init__(config)
        opts = self.options  # parsed from config.options by the base class
        assert isinstance(opts, OrtCudaOptions)
        self.cuda_graph = option_flag(opts.cuda_graph, False)
        self.nhwc = option_flag(opts.nhwc, True)
        self.cudnn_search = str(opts.cudnn_search or "EXHAUSTIVE").upper()
        if self.cudnn_search not in CUDNN_SEARCH:
            raise ResdeployError(
                f"unknown cuDNN search '{opts.cudnn_search}'; choose from: {', '.join(CUDNN_SEARCH)}"
            )
        self.trt_fp16 = option_flag(opts.trt_fp16, False)
        self._torch: Any = None  # the torch module when it has CUDA, for device buffers
        self._stream: Any = None
        self._bindings: dict[int, tuple[Any, Any, Any]] = {}  # batch -> (binding, input buf, output buf)
        self._out_meta: tuple[tuple[int, ...], np.dtype] | None = None
        self._run_options: Any = None

    # --- OrtRunner hooks ---------------------------------------------------------------------
    def _default_ep(self) -> str:
        return "cuda"

    def _check_device(self) -> None:
        if self.ep not in ("cuda", "trt"):
            raise ResdeployError(f"--ep {self.ep} does not run on {self.device}; on a GPU use --ep cuda or trt")

    def _providers(self) -> list[Any]:
        ort = self._ort()
        available = ort.get_available_providers()
        if "CUDAExecutionProvider" not in available:
            raise MissingDependencyError("ONNX Runtime's CUDAExecutionProvider", _EP_INSTALL["cuda"])
        stream = self._stream.cuda_stream if self._stream is not None else None
        cuda = ("CUDAExecutionProvider", cuda_provider_options(
            self.device_id, cuda_graph=self.cuda_graph and self.ep == "cuda", nhwc=self.nhwc,
            cudnn_search=self.cudnn_search, stream=stream))
        if self.ep == "trt":
            if ORT_EPS["trt"] not in available:
                raise MissingDependencyError("ONNX Runtime's TensorrtExecutionProvider", _EP_INSTALL["trt"])
            cache = self.model_path.parent / ".ort-trt-cache"
            trt = (ORT_EPS["trt"], trt_provider_options(self.device_id, cuda_graph=self.cuda_graph,
                                                        fp16=self.trt_fp16, cache_dir=cache))
            return [trt, cuda, "CPUExecutionProvider"]
        return [cuda, "CPUExecutionProvider"]

    # --- loading -------------------------------------------------------------------------------
    def _load(self) -> None:
        self._torch = self._buffer_torch()
        if self._torch is not None and self._io_device == "cuda":
            torch = self._torch
            if self.device_id >= torch.cuda.device_count():
                raise ResdeployError(f"no CUDA device {self.device_id}: this machine has {torch.cuda.device_count()}")
            torch.cuda.set_device(self.device_id)
            # A stream of our own, shared with the provider: capture cannot run on the
            # legacy default stream, and our copies must be ordered with its kernels.
            self._stream = torch.cuda.Stream(device=self.device_id)
        super()._load()
        got = list(self.session.get_providers())
        wanted = self._expected_provider()
        if not got or got[0] != wanted:
            raise MissingDependencyError(
                f"ONNX Runtime's {wanted} (the session fell back to {got[0] if got else 'nothing'}; "
                "usually missing CUDA/cuDNN libraries)",
                _EP_INSTALL[self.ep],
            )
        out = self.session.get_outputs()[0]
        from resdeploy.runners.ort import _ORT_DTYPES

        out_dtype = np.dtype(_ORT_DTYPES.get(out.type, "float32"))
        classes = tuple(d for d in out.shape[1:])
        if not all(isinstance(d, int) for d in classes):
            raise ResdeployError(f"{self.model_path}: output '{out.name}' has a dynamic class axis {out.shape}")
        self._out_meta = (tuple(int(d) for d in classes), out_dtype)
        ort = self._ort()
        self._run_options = ort.RunOptions()
        self._warm_up()

    def _buffer_torch(self) -> Any:
        """torch, when it can hold this runner's device buffers; else None (OrtValue buffers)."""
        return _torch_cuda()

    def _expected_provider(self) -> str:
        return ORT_EPS[self.ep]

    def _buffer_device(self) -> str:
        return f"{self._io_device}:{self.device_id}" if self._io_device == "cuda" else self._io_device

    def _on_stream(self) -> Any:
        import contextlib

        if self._torch is None or self._stream is None:
            return contextlib.nullcontext()
        return self._torch.cuda.stream(self._stream)

    def _fixed_batch(self) -> int | None:
        meta = self.input_meta()
        if isinstance(meta.shape[0], int):
            return int(meta.shape[0])
        return self.config.batch_size

    def _warm_up(self) -> None:
        """First runs at the bench's batch size: cuDNN's search, arena growth and graph capture."""
        batch = self._fixed_batch()
        if batch is None:
            if self.cuda_graph:
                raise ResdeployError("CUDA-graph capture needs a fixed batch size (set --batch)")
            return
        meta = self.input_meta()
        shape = (batch, *(int(d) for d in meta.shape[1:]))  # type: ignore[arg-type]
        if not all(isinstance(d, int) for d in meta.shape[1:]):
            raise ResdeployError(f"{self.model_path}: input has dynamic spatial axes {meta.shape}; export a fixed size")
        x = np.random.default_rng(1234).standard_normal(shape).astype(np.float32)
        staged = self.stage(x)
        t0 = time.perf_counter()
        self.run_staged(staged, transfers=False)
        self.synchronize()
        self.setup_seconds["autotune"] = round(time.perf_counter() - t0, 4)
        t0 = time.perf_counter()
        for _ in range(_WARMUP_RUNS - 1):
            self.run_staged(staged, transfers=False)
        self.synchronize()
        self.setup_seconds["capture" if self.cuda_graph else "warmup"] = round(time.perf_counter() - t0, 4)

    def _close(self) -> None:
        self._bindings.clear()
        super()._close()
        self._stream = None
        if self._torch is not None:
            self._torch.cuda.empty_cache()

    # --- buffers ------------------------------------------------------------------------------
    def _binding_for(self, batch: int) -> tuple[Any, Any, Any]:
        """Bound device buffers for one batch size, made once (CUDA graphs need fixed addresses)."""
        entry = self._bindings.get(batch)
        if entry is not None:
            return entry
        if self.cuda_graph and self._bindings:
            fixed = next(iter(self._bindings))
            raise ResdeployError(f"this runner captured a CUDA graph for batch {fixed}; got batch {batch}")
        assert self._out_meta is not None
        meta = self.input_meta()
        in_shape = (batch, *(int(d) for d in meta.shape[1:]))  # type: ignore[arg-type]
        out_shape = (batch, *self._out_meta[0])
        in_dtype, out_dtype = self._np_dtype, self._out_meta[1]
        binding = self.session.io_binding()
        if self._torch is not None:
            torch = self._torch
            tdt = {np.dtype(np.float32): torch.float32, np.dtype(np.float16): torch.float16}
            xin = torch.empty(in_shape, dtype=tdt[in_dtype], device=self._buffer_device())
            yout = torch.empty(out_shape, dtype=tdt[out_dtype], device=self._buffer_device())
            binding.bind_input(self.input_name, self._io_device, self.device_id, in_dtype, list(in_shape),
                               xin.data_ptr())
            binding.bind_output(self.output_names[0], self._io_device, self.device_id, out_dtype,
                                list(out_shape), yout.data_ptr())
        else:
            ort = self._ort()
            xin = ort.OrtValue.ortvalue_from_shape_and_type(list(in_shape), in_dtype, self._io_device, self.device_id)
            yout = ort.OrtValue.ortvalue_from_shape_and_type(list(out_shape), out_dtype, self._io_device,
                                                             self.device_id)
            binding.bind_ortvalue_input(self.input_name, xin)
            binding.bind_ortvalue_output(self.output_names[0], yout)
        entry = (binding, xin, yout)
        self._bindings[batch] = entry
        return entry

    # --- running ------------------------------------------------------------------------------
    def _check(self, batch: np.ndarray) -> None:
        self.check_input(batch)

    def stage(self, batch: np.ndarray) -> Any:
        """Cast to the graph's input dtype and copy to the device (a torch CUDA tensor)."""
        if not isinstance(batch, np.ndarray):
            return batch  # already staged
        self._check(batch)
        host = cast_input(batch, self._np_dtype)
        if self._torch is None:
            return host  # copied into the bound OrtValue at run time
        with self._on_stream():
            return self._torch.from_numpy(host).to(self._buffer_device())

    def run_staged(self, staged: Any, *, transfers: bool = True) -> Any:
        """Copy the staged input into the bound buffer, run, and (with ``transfers``) fetch the logits."""
        if isinstance(staged, np.ndarray) and self._torch is not None:
            staged = self.stage(staged)
        binding, xin, yout = self._binding_for(int(staged.shape[0]))
        if self._torch is not None:
            with self._on_stream():
                xin.copy_(staged)
                self.session.run_with_iobinding(binding, self._run_options)
                if transfers:
                    return yout.float().cpu().numpy()
                return yout
        xin.update_inplace(staged)
        self.session.run_with_iobinding(binding, self._run_options)
        if transfers:
            return np.asarray(yout.numpy(), dtype=np.float32)
        return yout

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        out = self.run_staged(self.stage(batch), transfers=True)
        return np.array(out, dtype=np.float32, copy=True)

    def synchronize(self) -> None:
        if self._stream is not None:
            self._stream.synchronize()

    def input_meta(self) -> TensorMeta:
        return super().input_meta()

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(
            device_id=self.device_id,
            io_binding=True,
            cuda_graph=self.cuda_graph,
            nhwc=self.nhwc,
            cudnn_search=self.cudnn_search,
            device_buffers="torch" if self._torch is not None else "ortvalue",
            setup_seconds=dict(self.setup_seconds),
        )
        if self._torch is not None and self._io_device == "cuda":
            d["gpu"] = self._torch.cuda.get_device_name(self.device_id)
        return d


def _torch_cuda() -> Any:
    """The torch module when it can allocate CUDA memory here, else None."""
    try:
        import torch
    except ImportError:
        return None
    try:
        return torch if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001 - a broken CUDA install reads as "no torch CUDA"
        return None


__all__ = ["OrtCudaRunner", "cuda_provider_options", "device_index", "trt_provider_options"]
