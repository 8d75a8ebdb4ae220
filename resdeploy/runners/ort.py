"""ONNX Runtime runner: the CPU provider by default, ONNX Runtime's OpenVINO provider on request.

Built for subclassing: the GPU path (``OrtCudaRunner``) overrides ``_providers``,
``_session_options`` or ``_make_session`` and the staging hooks, and inherits model
resolution, precision checks, error messages and ``describe``.

Precision lives in the ONNX graph (see DESIGN.md): ONNX Runtime runs what the graph
holds, so ``--precision`` here is a check that the graph is what the user thinks it
is, never a silent cast.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resdeploy.artifacts import GraphSummary, load_manifest
from resdeploy.errors import MissingDependencyError, ResdeployError, require
from resdeploy.onnx_io import cast_input, check_batch_shape
from resdeploy.resolve import resolve_artifact
from resdeploy.runners.base import Availability, Runner, RunnerConfig, RunnerOptions, TensorMeta

_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
               "tensor(bfloat16)": "bfloat16", "tensor(uint8)": "uint8", "tensor(int8)": "int8"}

ORT_EPS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}
_EP_INSTALL = {
    "cuda": "pip install onnxruntime-gpu (it replaces onnxruntime), with a CUDA GPU and driver",
    "trt": "pip install onnxruntime-gpu and TensorRT (pip install tensorrt), with a CUDA GPU",
    "openvino": "pip install onnxruntime-openvino (it replaces onnxruntime)",
}


def onnx_model_path(model: str, engine: str) -> Path:
    """The ONNX file behind what the user typed (``resolve.resolve_artifact``), with a message for zoo names."""
    art = resolve_artifact(model)
    if art.kind == "zoo":
        raise ResdeployError(
            f"engine '{engine}' runs an ONNX model, and '{model}' is not a file or directory",
            hint=f"export it first with `resdeploy export {model}` and pass the directory it writes",
        )
    assert art.path is not None
    return art.path


def graph_precision(path: Path) -> str:
    """fp32 | fp16 | int8 for an ONNX file: from its manifest, else measured from the graph itself."""
    manifest = load_manifest(path)
    if manifest is not None and manifest.precision:
        return manifest.precision.lower()
    try:
        return GraphSummary.measure(path).precision
    except ResdeployError as exc:
        raise ResdeployError(f"cannot read {path} as an ONNX model: {exc.message}") from None


def check_graph_precision(requested: str | None, path: Path, engine: str, allowed_casts: tuple[str, ...] = ()
                          ) -> str:
    """Refuse a precision the graph does not hold (unless the engine can cast to it)."""
    actual = graph_precision(path)
    if requested is None or requested.lower() == actual or requested.lower() in allowed_casts:
        return actual
    wanted = requested.lower()
    known = ("fp32", "fp16", "int8", *allowed_casts)
    if wanted not in known:
        raise ResdeployError(f"unknown precision '{requested}' for engine '{engine}'; choose from: "
                             f"{', '.join(dict.fromkeys(known))}, or drop --precision")
    if wanted == "fp32" or actual != "fp32":
        # quantize makes variants from an FP32 graph only: point at that graph, not at this one.
        hint = f"bench the FP32 model this {actual} graph was made from, or drop --precision"
    else:
        hint = (f"make an {wanted} variant with `resdeploy quantize {path.parent} --precision {wanted}` "
                "and bench that, or drop --precision")
    raise ResdeployError(
        f"engine '{engine}' runs the precision stored in the ONNX graph ({actual} in {path}), not {requested}",
        hint=hint,
    )


@dataclass
class OrtOptions(RunnerOptions):
    """``ep``: the execution provider (cpu, openvino; cuda, trt with --device cuda)."""

    ep: str | None = None


class OrtRunner(Runner):
    """An ``onnxruntime.InferenceSession`` on the CPU provider, or the OpenVINO provider (ep='openvino')."""

    engine = "ort"
    Options = OrtOptions
    precisions = ("fp32", "fp16", "int8")  # what the graph holds (a check, never a cast)
    package = "onnxruntime"
    install_hint = "pip install onnxruntime (or onnxruntime-gpu for CUDA)"

    device_classes = {"cuda": "resdeploy.runners.ort_cuda:OrtCudaRunner"}  # bound, device-resident I/O

    @classmethod
    def probe(cls) -> Availability:
        try:
            import onnxruntime as ort
        except ImportError:
            return Availability(cls.engine, False, note="pip install onnxruntime")
        providers = ort.get_available_providers()
        devs = ["cpu"] + (["cuda"] if "CUDAExecutionProvider" in providers else [])
        hints = []
        if "CUDAExecutionProvider" not in providers:
            hints.append("GPU: pip install onnxruntime-gpu")
        if "OpenVINOExecutionProvider" not in providers:
            hints.append("--ep openvino: pip install onnxruntime-openvino")
        return Availability(cls.engine, True, ort.__version__, tuple(devs), "; ".join(hints),
                            {"providers": providers})

    @classmethod
    def check_available(cls, device: str = "cpu", options: dict[str, Any] | None = None) -> None:
        super().check_available(device, options)
        ep_opt = (options or {}).get("ep")
        if device.startswith("cuda") or ep_opt:
            # A missing provider would otherwise surface only when this engine's turn comes.
            import onnxruntime

            ep = str(ep_opt or "cuda").lower()
            name = ORT_EPS.get(ep)
            if name and name not in onnxruntime.get_available_providers():
                raise MissingDependencyError(f"ONNX Runtime's {name}", _EP_INSTALL.get(ep, "pip install onnxruntime"))

    def __init__(self, config: RunnerConfig) -> None:
        super().__init__(config)
        assert isinstance(self.options, OrtOptions)
        self.ep: str = str(self.options.ep or self._default_ep()).lower()
        if self.ep not in ORT_EPS:
            raise ResdeployError(f"unknown ONNX Runtime provider '{self.ep}'; choose from: {', '.join(ORT_EPS)}")
        self._check_device()
        self.model_path = onnx_model_path(config.model, self.engine)
        self.precision = check_graph_precision(config.precision, self.model_path, self.engine)
        self.session: Any = None
        self.input_name = ""
        self.output_names: list[str] = []

        self._np_dtype = np.dtype(np.float32)

    # --- hooks for subclasses ----------------------------------------------------------------
    def _default_ep(self) -> str:
        return "cpu"

    def _check_device(self) -> None:
        if not self.device.startswith("cpu"):
            raise ResdeployError(f"OrtRunner runs on the CPU, not {self.device}",
                                 hint="ONNX Runtime on a GPU goes through --device cuda, which picks OrtCudaRunner")
        if self.ep in ("cuda", "trt"):
            raise ResdeployError(f"--ep {self.ep} runs on a GPU: add --device cuda")

    def _providers(self) -> list[Any]:
        """Provider list for the session; the OpenVINO provider gets our thread and precision settings."""
        ort = self._ort()
        name = ORT_EPS[self.ep]
        if name not in ort.get_available_providers():
            raise MissingDependencyError(f"ONNX Runtime's {name}", _EP_INSTALL.get(self.ep, "pip install onnxruntime"))
        if self.ep == "openvino":
            opts: dict[str, Any] = {"device_type": "CPU", "precision": "FP32"}
            if self.config.threads:
                opts["num_of_threads"] = int(self.config.threads)
            return [(name, opts), "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]

    def _session_options(self) -> Any:
        """One inference at a time, all graph optimisations, ``--threads`` intra-op threads."""
        ort = self._ort()
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.inter_op_num_threads = 1
        if self.config.threads:
            so.intra_op_num_threads = int(self.config.threads)
        so.log_severity_level = 3  # errors only: provider chatter would break --json on stdout
        return so

    def _make_session(self, path: Path) -> Any:
        ort = self._ort()
        providers = self._providers()
        try:
            return ort.InferenceSession(str(path), sess_options=self._session_options(), providers=providers)
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ResdeployError(f"ONNX Runtime cannot load {path}: {first[:300]}") from None

    @staticmethod
    def _ort() -> Any:
        return require("onnxruntime", "onnxruntime", "ONNX Runtime (the 'onnxruntime' package)")

    # --- Runner interface ------------------------------------------------------------------------
    def _load(self) -> None:
        t0 = time.perf_counter()
        self.session = self._make_session(self.model_path)
        self.setup_seconds["load"] = round(time.perf_counter() - t0, 4)
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ResdeployError(f"{self.model_path} has {len(inputs)} inputs; resdeploy runs single-input models")
        inp = inputs[0]
        dtype = _ORT_DTYPES.get(inp.type, "float32")
        self._meta = TensorMeta(inp.name, tuple(d if isinstance(d, int) else str(d) for d in inp.shape), dtype)
        self._np_dtype = np.dtype(dtype) if dtype != "bfloat16" else np.dtype(np.float32)
        self.input_name = inp.name
        self.output_names = [o.name for o in self.session.get_outputs()][:1]

    def _close(self) -> None:
        self.session = None

    def stage(self, batch: np.ndarray) -> Any:
        """Cast to the graph's input dtype once, outside the timed region."""
        return cast_input(batch, self._np_dtype)

    def run_staged(self, staged: Any, *, transfers: bool = True) -> Any:
        return self.session.run(self.output_names, {self.input_name: staged})[0]

    def check_input(self, batch: Any) -> None:
        """The base check, worded with the model file's name and the graph's shape (and a layout mismatch named)."""
        if self._meta is not None and getattr(batch, "shape", None) is not None:
            check_batch_shape(tuple(self._meta.shape), tuple(batch.shape), str(self.model_path))
        super().check_input(batch)

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        out = self.run_staged(self.stage(batch))
        return np.asarray(out, dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        from resdeploy.artifacts import package_versions

        d = super().describe()
        versions = package_versions(["onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino"])
        d.update({
            "precision": self.precision,
            "model_path": str(self.model_path),
            "ep": self.ep,
            "providers": list(self.session.get_providers()) if self.session is not None else None,
            "onnxruntime": next((v for v in versions.values() if v), None),
            "intra_op_threads": self.config.threads or "runtime default (one per physical core)",
        })
        if self.session is not None:  # read back from the session, as onnxruntime_perf_test users set them
            so = self.session.get_session_options()
            d["graph_optimization_level"] = str(so.graph_optimization_level).rsplit(".", 1)[-1]
            d["execution_mode"] = str(so.execution_mode).rsplit(".", 1)[-1]
        return d
