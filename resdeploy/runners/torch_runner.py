"""PyTorch as an engine: eager on CPU, and on CUDA the fast paths a user would try first.

The torch engine is the reference every other engine is compared against, and on a
GPU without TensorRT it is also one of the fastest paths. So it offers, on CUDA:
FP16/BF16 weights, channels_last, cuDNN autotuning, ``torch.compile`` (Inductor) and
CUDA-graph replay for fixed shapes. Everything that happens once (building the model,
compiling, autotuning, capturing a graph) happens in ``_load`` and is timed into
``setup_seconds``, so a benchmark's inference numbers never hide a compile.

Every path takes the same input as the other engines (float32 NCHW) and gives float32
logits: the cast to FP16/BF16 and to channels_last runs inside the timed forward (and
inside the CUDA graph or the compiled graph), as the Cast nodes do in an FP16 ONNX graph
with FP32 I/O. That keeps engine comparisons like for like.

Options (``TorchOptions``, parsed from ``RunnerConfig.options`` by the base class):

``compile``        False | True | an Inductor mode ("default", "reduce-overhead",
                   "max-autotune", "max-autotune-no-cudagraphs"). True means
                   "max-autotune-no-cudagraphs" on CPU and "reduce-overhead" on CUDA.
``freeze``         Inductor freezing (folds BatchNorm into the convolutions, constant-folds
                   weights); default on for compile modes without CUDA graphs, off for those
                   with them (frozen weights are re-copied on every graph replay).
``cuda_graph``     capture the forward once with ``torch.cuda.CUDAGraph`` and replay it (CUDA,
                   fixed batch size). Alone: the eager kernels. With a compile mode that has no
                   CUDA graphs of its own ("default", "max-autotune-no-cudagraphs"): Inductor's
                   kernels, so a call is one graph launch with no Dynamo guard or cudagraph-tree
                   bookkeeping on the host, and frozen weights are baked into the graph rather
                   than copied per replay. With "reduce-overhead"/"max-autotune" Inductor's own
                   CUDA graphs are used and this option changes nothing.
``channels_last``  default True on CUDA (the tensor cores' native layout), False on CPU.
``cudnn_benchmark`` default True on CUDA: cuDNN picks the fastest algorithm per shape.
``weights``, ``num_classes``, ``seed``, ``input_size``: how to build a zoo model by name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from resdeploy.errors import MissingDependencyError, ResdeployError
from resdeploy.runners.base import Availability, Runner, RunnerConfig, RunnerOptions, TensorMeta, option_flag

if TYPE_CHECKING:  # pragma: no cover
    import torch

PRECISIONS = ("fp32", "fp16", "bf16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# torch.compile takes either a mode or an options dict, not both; freezing needs the dict,
# so each mode is spelled out as the Inductor settings it stands for.
_MODE_OPTIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "reduce-overhead": {"triton.cudagraphs": True},
    "max-autotune": {"max_autotune": True, "triton.cudagraphs": True},
    "max-autotune-no-cudagraphs": {"max_autotune": True},
}



def compile_mode(value: Any, device_kind: str) -> str | None:
    """Normalise the ``compile`` option to an Inductor mode name, or None for eager.

    On CUDA ``True`` means "reduce-overhead" (compiled kernels replayed as a CUDA graph:
    the cheapest mode to compile that removes launch overhead); on CPU there are no
    graphs, so it means plain Inductor.
    """
    if value is None or value is False:
        return None
    if value is True or (isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on")):
        return "reduce-overhead" if device_kind == "cuda" else "default"
    if isinstance(value, str):
        mode = value.strip().lower()
        if mode in ("0", "false", "no", "off", "", "none"):
            return None
        if mode not in COMPILE_MODES:
            raise ResdeployError(f"unknown torch.compile mode '{value}'; choose from: {', '.join(COMPILE_MODES)}")
        if device_kind != "cuda" and _MODE_OPTIONS[mode].get("triton.cudagraphs"):
            raise ResdeployError(
                f"torch.compile mode '{mode}' uses CUDA graphs, which need --device cuda",
                hint="on CPU use --compile default or max-autotune-no-cudagraphs",
            )
        return mode
    raise ResdeployError(f"the compile option takes true/false or a mode name, got {value!r}")


def _input_hw_from_manifest(manifest: dict[str, Any]) -> tuple[int, int] | None:
    """Height and width of the exported input, read from the manifest's inputs or preprocessing."""
    for entry in manifest.get("inputs") or []:
        shape = entry.get("shape") or []
        if len(shape) == 4 and all(isinstance(v, int) for v in shape[2:]):
            return int(shape[2]), int(shape[3])
    spec = (manifest.get("model") or {}).get("spec") or {}
    if isinstance(spec.get("input_size"), int):
        return spec["input_size"], spec["input_size"]
    crop = (manifest.get("preprocess") or {}).get("crop")
    if isinstance(crop, int):
        return crop, crop
    return None


# bench makes one runner per batch size; building (and calibrating a random init of) the
# same FP32 model for each would cost more than the measurement. Keyed by what defines
# the model, plus the weights file's size and mtime so an edited file is rebuilt.
_MODEL_CACHE: dict[str, Any] = {}
_MODEL_CACHE_SIZE = 2


def _cached(key_source: dict[str, Any], build: Any) -> Any:
    """A private copy of the FP32 CPU model for ``key_source``, built once per process."""
    import copy
    import json
    import os

    weights = key_source.get("weights") or (key_source.get("spec") or {}).get("weights")
    stamp = None
    if isinstance(weights, dict):
        weights = weights.get("path")
    if isinstance(weights, str) and os.path.isfile(weights):
        st = os.stat(weights)
        stamp = (st.st_size, st.st_mtime_ns)
    key = json.dumps([key_source, stamp], sort_keys=True, default=str)
    model = _MODEL_CACHE.get(key)
    if model is None:
        model = build()
        while len(_MODEL_CACHE) >= _MODEL_CACHE_SIZE:
            _MODEL_CACHE.pop(next(iter(_MODEL_CACHE)))
        _MODEL_CACHE[key] = model
    return copy.deepcopy(model)


class _Forward:
    """Input cast + layout change + model + cast back to float32, as one callable.

    Kept as a module so torch.compile and CUDA-graph capture take the casts in with the
    network (the ONNX FP16 graph has the same Cast nodes at its edges).
    """

    @staticmethod
    def make(model: torch.nn.Module, dtype: torch.dtype, channels_last: bool) -> torch.nn.Module:
        import torch

        class Forward(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                x = x.to(dtype)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                return self.model(x).float()

        return Forward().eval()


@dataclass
class TorchOptions(RunnerOptions):
    """torch.compile mode, freezing, CUDA-graph replay, memory format, cuDNN autotune; and how to build a zoo model."""

    compile: Any = None  # True/False or an Inductor mode name
    freeze: Any = None
    cuda_graph: Any = None
    channels_last: Any = None
    cudnn_benchmark: Any = None
    input_size: int | None = None
    weights: str | None = None
    num_classes: int | None = None
    seed: int = 0


class TorchRunner(Runner):
    """PyTorch eager / compiled / graph-replayed, on CPU or one CUDA device."""

    engine = "torch"
    Options = TorchOptions
    precisions = PRECISIONS  # engine-side: the module is cast, the ONNX graph is not involved
    package = "torch"
    install_hint = "pip install torch"
    input_hint = "a compiled or CUDA-graph runner runs the batch it was created for"

    @classmethod
    def probe(cls) -> Availability:
        try:
            import torch
        except ImportError:
            return Availability(cls.engine, False, note=cls.install_hint)
        devs = ["cpu"] + [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())
                          if torch.cuda.is_available()]
        note = "" if torch.cuda.is_available() else (
            "CPU build: for CUDA install torch from PyTorch's CUDA index" if torch.version.cuda is None
            else "CUDA build, but no GPU/driver visible")
        return Availability(cls.engine, True, torch.__version__, tuple(devs), note)

    @classmethod
    def check_available(cls, device: str = "cpu", options: dict[str, Any] | None = None) -> None:
        super().check_available(device, options)
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise MissingDependencyError("CUDA for the torch engine",
                                             "install a CUDA build of PyTorch on a machine with an NVIDIA GPU")

    def __init__(self, config: RunnerConfig) -> None:
        super().__init__(config)
        opts = self.options  # parsed from config.options by the base class
        assert isinstance(opts, TorchOptions)
        self.device_kind = config.device.split(":")[0]
        if self.device_kind not in ("cpu", "cuda"):
            raise ResdeployError(f"the torch engine runs on cpu or cuda[:N], not '{config.device}'")
        self.precision = (config.precision or "fp32").lower()
        if self.precision not in PRECISIONS:
            raise ResdeployError(
                f"the torch engine has no precision '{config.precision}'; choose from: {', '.join(PRECISIONS)}"
            )
        if self.precision == "fp16" and self.device_kind == "cpu":
            raise ResdeployError(
                "torch fp16 runs on CUDA only: CPU kernels for FP16 convolutions are slow reference code",
                hint="use --precision bf16 or fp32 on CPU, or --device cuda",
            )
        self.compile_mode = compile_mode(opts.compile, self.device_kind)
        self.freeze: bool | None = None if opts.freeze is None else option_flag(opts.freeze, False)
        self.cuda_graph = option_flag(opts.cuda_graph, False)
        if self.cuda_graph and self.device_kind != "cuda":
            raise ResdeployError("CUDA-graph replay needs --device cuda")
        if self.cuda_graph and self._inductor_graphs:
            self.cuda_graph = False  # Inductor replays its own CUDA graphs in this mode
        if self.freeze is None:
            # Measured on an H100 (benchmarks/GPU_NOTES.md): with freezing, Inductor's CUDA graphs
            # treat the frozen weights as non-static inputs and copy all of them on every replay
            # (batch 1: 3.7 ms instead of 0.65 ms). So freeze only where no CUDA graph is replayed.
            self.freeze = not self._inductor_graphs
        self.channels_last = option_flag(opts.channels_last, self.device_kind == "cuda")
        self.cudnn_benchmark = option_flag(opts.cudnn_benchmark, True)
        self.model_info: dict[str, Any] = {}
        self._hw: tuple[int, int] | None = None
        self._fn: Any = None
        self._graph: Any = None
        self._static_in: Any = None
        self._static_out: Any = None
        self._saved_threads: int | None = None
        self._saved_cudnn: bool | None = None
        self._torch_device: Any = None

    # --- building ---------------------------------------------------------------------------
    def _build_model(self) -> torch.nn.Module:
        """A zoo name (or torchvision:/timm:/module:factory) or an exported artifact's manifest."""
        opts = self.options
        assert isinstance(opts, TorchOptions)
        ref = str(self.config.model)
        path = Path(ref)
        from resdeploy.artifacts import is_model_path
        from resdeploy.resolve import resolve_artifact

        if is_model_path(ref):  # the one rule build and the ORT runner use too
            # the one resolver: artifact dir, model.onnx, manifest.json or engine plan; the file is
            # checked against its manifest; a directory without model.onnx (a torch artifact) is kept
            typed = resolve_artifact(ref, onnx_dir=False).describing_manifest()
            manifest = typed.to_dict() if typed is not None else None
            if manifest is None or not manifest.get("model"):
                # no model entry: a variant of a plain ONNX file (quantize of a foreign model)
                why = ("has no resdeploy manifest saying how to build one" if manifest is None
                       else "comes from a plain ONNX file, so its manifest cannot say how to build one")
                raise ResdeployError(f"the torch engine needs a PyTorch model, and {ref} {why}",
                                     hint="bench the ONNX file with --engine ort (or openvino), or give torch a "
                                     "zoo name or module:factory")
            from resdeploy.models.zoo import model_from_manifest

            self._hw = _input_hw_from_manifest(manifest)
            if self._hw is None:
                raise ResdeployError(f"the manifest beside {ref} does not say the input size")
            info = manifest.get("model") or {}
            self.model_info = {"name": info.get("name"), "source": info.get("source"),
                               "from": str(path), "weights": info.get("weights")}
            return _cached(info, lambda: model_from_manifest(manifest))
        from resdeploy.models.zoo import ModelSpec

        input_size = opts.input_size
        spec = ModelSpec(name=ref, weights=opts.weights, num_classes=opts.num_classes,
                         seed=int(opts.seed), input_size=input_size)
        size = int(input_size or spec.default_input_size)
        self._hw = (size, size)
        self.model_info = {"name": ref, "source": spec.source,
                           "weights": opts.weights or f"random, seed {spec.seed}"}
        return _cached(spec.to_dict(), spec.build)

    def _load(self) -> None:
        try:
            import torch
        except ImportError as exc:  # pragma: no cover - torch is a core dependency
            raise MissingDependencyError("PyTorch", "pip install torch") from exc
        if self.device_kind == "cuda" and not torch.cuda.is_available():
            raise MissingDependencyError(
                f"CUDA device '{self.config.device}' for the torch engine",
                "install a CUDA build of PyTorch (https://pytorch.org/get-started) on a machine with an NVIDIA GPU",
            )
        self._torch_device = torch.device(self.config.device)
        if self.device_kind == "cuda":
            index = self._torch_device.index or 0
            self._torch_device = torch.device("cuda", index)
            if index >= torch.cuda.device_count():
                raise ResdeployError(
                    f"no CUDA device {index}: this machine has {torch.cuda.device_count()}"
                )
            if self.precision == "bf16" and not torch.cuda.is_bf16_supported():
                raise ResdeployError("this GPU has no BF16 support; use --precision fp16")
            torch.cuda.set_device(self._torch_device)
            self._saved_cudnn = torch.backends.cudnn.benchmark
            torch.backends.cudnn.benchmark = self.cudnn_benchmark
        if self.config.threads is not None:
            self._saved_threads = torch.get_num_threads()
            torch.set_num_threads(self.config.threads)

        t0 = time.perf_counter()
        with torch.inference_mode(False), torch.no_grad():
            model = self._build_model().eval()
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[self.precision]
        model = model.to(device=self._torch_device, dtype=dtype)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        fn: Any = _Forward.make(model, dtype, self.channels_last)
        self._sync()
        self.setup_seconds["load"] = round(time.perf_counter() - t0, 4)

        if self.compile_mode:
            options = dict(_MODE_OPTIONS[self.compile_mode])
            if self.freeze:
                options["freezing"] = True
            try:
                fn = torch.compile(fn, dynamic=False, fullgraph=True, options=options)
            except RuntimeError as exc:  # e.g. no C++ compiler or Triton for this device
                raise ResdeployError(f"torch.compile is not usable here: {exc}") from exc
        self._fn = fn
        self._warm_up()

    def _example(self) -> torch.Tensor:
        import torch

        assert self._hw is not None
        n = self.config.batch_size or 1
        g = torch.Generator().manual_seed(1234)
        x = torch.randn((n, 3, *self._hw), generator=g)
        return x.to(self._torch_device)

    def _warm_up(self) -> None:
        """Compile, autotune and capture now, so none of it lands in the timed region.

        With a known batch size the first calls happen here at that shape: Inductor
        compiles (and, in a CUDA-graph mode, records its graph on the following calls),
        cuDNN benchmarks its algorithms, and a requested eager CUDA graph is captured.
        """
        import torch

        if self.config.batch_size is None and not (self.cuda_graph or self.compile_mode):
            return  # eager without a fixed shape: nothing worth doing ahead
        x = self._example()
        with torch.inference_mode():
            if self.compile_mode:
                t0 = time.perf_counter()
                try:
                    self._call(x)
                    self._sync()
                except Exception as exc:  # noqa: BLE001 - Inductor raises many kinds
                    raise ResdeployError(
                        f"torch.compile ({self.compile_mode}) failed: {type(exc).__name__}: {str(exc)[:300]}",
                        hint="run without --compile",
                    ) from exc
                self.setup_seconds["compile"] = round(time.perf_counter() - t0, 4)
                t0 = time.perf_counter()
                if self.cuda_graph:
                    self._capture(x)  # warms up on a side stream, then captures Inductor's kernels
                else:
                    for _ in range(3):  # cudagraph trees warm up once, then record, then replay
                        self._call(x)
                    self._sync()
                key = "capture" if self._inductor_graphs or self.cuda_graph else "warmup"
                self.setup_seconds[key] = round(time.perf_counter() - t0, 4)
                return
            if self.device_kind == "cuda":
                t0 = time.perf_counter()
                self._side_stream_warm_up(x)
                self.setup_seconds["autotune" if self.cudnn_benchmark else "warmup"] = round(
                    time.perf_counter() - t0, 4
                )
                if self.cuda_graph:
                    t0 = time.perf_counter()
                    self._capture(x)
                    self.setup_seconds["capture"] = round(time.perf_counter() - t0, 4)
            else:
                t0 = time.perf_counter()
                self._fn(x)
                self.setup_seconds["warmup"] = round(time.perf_counter() - t0, 4)

    def _side_stream_warm_up(self, x: torch.Tensor) -> None:
        """A few calls on a side stream: cuDNN's algorithm search runs on the first calls at a
        new shape (benchmark mode), and graph capture wants its warm-up off the default stream."""
        import torch

        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                self._fn(x)
        torch.cuda.current_stream().wait_stream(stream)
        self._sync()

    def _capture(self, x: torch.Tensor) -> None:
        """Record one forward (eager or Inductor-compiled kernels) into a CUDA graph.

        Replay then costs one graph launch plus the input copy into the static buffer,
        whatever the host-side cost of the Python or Dynamo call was.
        """
        import torch

        if self.compile_mode:
            self._side_stream_warm_up(x)
        self._static_in = x.clone()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._static_out = self._fn(self._static_in)
        except RuntimeError as exc:  # an op that syncs with the host cannot be captured
            raise ResdeployError(
                f"CUDA-graph capture failed: {str(exc).splitlines()[0][:300]}",
                hint="run without --cuda-graph" + (" or with --compile reduce-overhead" if self.compile_mode else ""),
            ) from exc
        self._graph = graph
        graph.replay()
        self._sync()

    def _close(self) -> None:
        import torch

        self._fn = self._graph = self._static_in = self._static_out = None
        if self._saved_threads is not None:
            torch.set_num_threads(self._saved_threads)
        if self._saved_cudnn is not None:
            torch.backends.cudnn.benchmark = self._saved_cudnn
        if self.device_kind == "cuda":
            torch.cuda.empty_cache()

    # --- description ----------------------------------------------------------------------
    def input_meta(self) -> TensorMeta:
        if self._hw is None:
            raise ResdeployError("the runner is not loaded; use it as a context manager")
        batch: int | str = self.config.batch_size if self.config.batch_size and self._fixed_batch() else "batch"
        return TensorMeta("input", (batch, 3, *self._hw), "float32")

    @property
    def _inductor_graphs(self) -> bool:
        """Whether the compile mode replays Inductor's own CUDA graphs (cudagraph trees)."""
        return bool(self.compile_mode and _MODE_OPTIONS[self.compile_mode].get("triton.cudagraphs"))

    def _fixed_batch(self) -> bool:
        return self.config.batch_size is not None and (self.cuda_graph or self.compile_mode is not None)

    def describe(self) -> dict[str, Any]:
        import torch

        d = super().describe()
        d.update(
            precision=self.precision,
            model=self.model_info,
            torch=torch.__version__,
            compile=self.compile_mode,
            freeze=bool(self.compile_mode and self.freeze),
            cuda_graph=self._graph is not None or self._inductor_graphs,
            graph_replay=("torch.cuda.CUDAGraph" if self._graph is not None
                          else "inductor cudagraph trees" if self._inductor_graphs else None),
            channels_last=self.channels_last,
            setup_seconds=dict(self.setup_seconds),
        )
        if self.device_kind == "cuda" and torch.cuda.is_available():
            index = self._torch_device.index if self._torch_device is not None else None
            d.update(gpu=torch.cuda.get_device_name(index or 0), cuda=torch.version.cuda,
                     cudnn=torch.backends.cudnn.version(), cudnn_benchmark=self.cudnn_benchmark)
        else:
            d.update(threads=self.config.threads or torch.get_num_threads())
        return d

    # --- running --------------------------------------------------------------------------
    def _check(self, batch: np.ndarray) -> None:
        if not isinstance(batch, np.ndarray):
            raise ResdeployError(f"expected a numpy array as input, got {type(batch).__name__}")
        self.check_input(batch)  # input_meta holds the fixed batch of a compiled/captured runner

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        """One forward on a device tensor of the runner's input shape."""
        if self._graph is not None:
            self._static_in.copy_(x)
            self._graph.replay()
            return self._static_out
        if self._inductor_graphs:
            import torch

            # Tell cudagraph trees that the previous output is no longer read, so it may
            # reuse the memory instead of checkpointing it.
            torch.compiler.cudagraph_mark_step_begin()
        return self._fn(x)

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        return self.run_staged(self.stage(batch), transfers=True)

    def stage(self, batch: np.ndarray) -> Any:
        """Copy a host float32 batch to the runner's device (a no-op view on CPU)."""
        import torch

        if not self.loaded:
            raise ResdeployError("the runner is not loaded; use it as a context manager")
        if isinstance(batch, torch.Tensor):
            return batch.to(self._torch_device)
        self._check(batch)
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        if self.device_kind == "cuda":
            x = x.to(self._torch_device)
        return x

    def run_staged(self, staged: Any, *, transfers: bool = True) -> Any:
        """Run on a staged tensor; with ``transfers`` return host float32 logits, else the device tensor."""
        import torch

        if isinstance(staged, np.ndarray):
            staged = self.stage(staged)
        with torch.inference_mode():
            out = self._call(staged)
            if transfers:
                return out.detach().to("cpu").numpy().astype(np.float32, copy=True)
            return out

    def synchronize(self) -> None:
        self._sync()

    def _sync(self) -> None:
        if self.device_kind == "cuda":
            import torch

            torch.cuda.synchronize(self._torch_device)


__all__ = ["COMPILE_MODES", "PRECISIONS", "TorchRunner", "compile_mode"]
