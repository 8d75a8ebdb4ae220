"""OpenVINO runner: OpenVINO's own runtime on the same ONNX file, the common Intel CPU and edge target.

Two settings matter for honest numbers, so they are explicit and recorded:

* ``INFERENCE_PRECISION_HINT``: on CPUs with AVX512-BF16 or AMX, OpenVINO silently runs
  an FP32 graph in bf16 by default. We pin f32 unless ``--precision bf16|fp16`` asks
  for a lower inference precision, and refuse one the CPU cannot run.
* a static input shape when the batch is known, as ``benchmark_app -shape`` does,
  so the compiled model is the one a deployment would compile.

What a ``benchmark_app -hint latency`` user expects, and gets: PERFORMANCE_HINT LATENCY
(one stream, OpenVINO's own thread count), one synchronous infer request, inputs set
once and not copied (``share_inputs``). Two differences are deliberate and recorded in
``describe()``: the input stays f32 (benchmark_app feeds u8 to 4-D image inputs unless
``-ip f32``, converting inside the model), and there is no multi-stream THROUGHPUT mode:
every engine runs one inference at a time (docs/bench.md compares the two tools).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from resdeploy.errors import MissingDependencyError, ResdeployError
from resdeploy.onnx_io import cast_input
from resdeploy.runners.base import Availability, Runner, RunnerConfig, TensorMeta
from resdeploy.runners.ort import check_graph_precision, onnx_model_path

_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
_CAPABILITY = {"bf16": "BF16", "fp16": "FP16"}
_OV_DTYPES = {"f32": "float32", "f16": "float16", "u8": "uint8", "i8": "int8"}
PERFORMANCE_HINT = "LATENCY"  # benchmark_app -hint latency: one stream; bench runs one request at a time
# Settings of the compiled model that decide speed, read back (not assumed) for every result.
_RECORDED = {"NUM_STREAMS": "num_streams", "INFERENCE_NUM_THREADS": "inference_num_threads",
             "PERFORMANCE_HINT": "performance_hint", "INFERENCE_PRECISION_HINT": "compiled_precision_hint",
             "ENABLE_CPU_PINNING": "cpu_pinning", "ENABLE_HYPER_THREADING": "hyper_threading",
             "SCHEDULING_CORE_TYPE": "scheduling_core_type", "EXECUTION_MODE_HINT": "execution_mode"}


def _ov() -> Any:
    try:
        import openvino
    except ImportError:
        raise MissingDependencyError("OpenVINO (the 'openvino' package)", "pip install openvino") from None
    return openvino


class OpenVinoRunner(Runner):
    """``openvino.Core().compile_model`` on an ONNX file, one synchronous infer request."""

    engine = "openvino"
    precisions = ("fp32", "fp16", "bf16", "int8")  # fp16/bf16 as a compile hint on an fp32 graph
    package = "openvino"
    install_hint = "pip install openvino"
    input_hint = "create the runner with batch_size=None for varying batches"

    @classmethod
    def probe(cls) -> Availability:
        try:
            import openvino as ov
        except ImportError:
            return Availability(cls.engine, False, note=cls.install_hint)
        core = ov.Core()
        devs = [f"{d} ({core.get_property(d, 'FULL_DEVICE_NAME')})" for d in core.available_devices]
        return Availability(cls.engine, True, ov.__version__, tuple(devs))

    def __init__(self, config: RunnerConfig) -> None:
        super().__init__(config)
        if config.device.startswith("cuda"):
            raise ResdeployError("OpenVINO does not run on CUDA devices: use --device cpu "
                                 "(or gpu/npu for Intel accelerators)")
        # cpu -> CPU; Intel accelerators by OpenVINO's own names (gpu, gpu.1, npu).
        self.ov_device = "CPU" if config.device.startswith("cpu") else config.device.upper()
        self.model_path = onnx_model_path(config.model, self.engine)
        req = (config.precision or "").lower() or None
        self.graph_precision = check_graph_precision(req, self.model_path, self.engine, allowed_casts=("bf16", "fp16"))
        if req in ("bf16", "fp16") and self.graph_precision != "fp32":
            raise ResdeployError(f"--precision {req} with OpenVINO needs an fp32 graph, {self.model_path} is "
                                 f"{self.graph_precision}")
        # f32 unless asked: the graph's own precision (fp16 weights, int8 Q/DQ) still applies.
        self.hint = _HINTS[req] if req in _HINTS else "f32"
        self.precision = req if req in ("bf16", "fp16") else self.graph_precision
        self._compiled: Any = None
        self._request: Any = None

        self._np_dtype = np.dtype(np.float32)

    def _load(self) -> None:
        ov = _ov()
        core = ov.Core()
        if self.ov_device not in core.available_devices:
            raise MissingDependencyError(
                f"OpenVINO device {self.ov_device}",
                f"this machine offers {', '.join(core.available_devices) or 'none'}; use --device cpu",
            )
        if self.hint != "f32":
            caps = core.get_property(self.ov_device, "OPTIMIZATION_CAPABILITIES")
            if _CAPABILITY[self.precision] not in caps:
                raise ResdeployError(
                    f"OpenVINO on this {self.ov_device} cannot run {self.precision} "
                    f"(it supports {', '.join(caps)}); drop --precision or use another machine"
                )
        t0 = time.perf_counter()
        try:
            model = core.read_model(str(self.model_path))
        except Exception as exc:
            raise ResdeployError(f"OpenVINO cannot read {self.model_path}: {str(exc).strip().splitlines()[0][:300]}"
                                 ) from None
        if len(model.inputs) != 1:
            raise ResdeployError(f"{self.model_path} has {len(model.inputs)} inputs; resdeploy runs single-input models")
        pshape = model.inputs[0].get_partial_shape()
        if self.config.batch_size and pshape.rank.is_static and pshape[0].is_dynamic:
            dims = [self.config.batch_size] + [d.get_length() if d.is_static else -1 for d in list(pshape)[1:]]
            if all(d > 0 for d in dims):
                model.reshape({model.inputs[0].get_any_name(): ov.PartialShape(dims)})
        props: dict[str, Any] = {"INFERENCE_PRECISION_HINT": self.hint, "PERFORMANCE_HINT": PERFORMANCE_HINT}
        if self.config.threads:
            props["INFERENCE_NUM_THREADS"] = int(self.config.threads)
        try:
            self._compiled = core.compile_model(model, self.ov_device, props)
        except Exception as exc:
            raise ResdeployError(f"OpenVINO cannot compile {self.model_path} for {self.ov_device}: "
                                 f"{str(exc).strip().splitlines()[0][:300]}") from None
        self._request = self._compiled.create_infer_request()
        self.setup_seconds["load"] = round(time.perf_counter() - t0, 4)
        port = self._compiled.inputs[0]
        ps = port.get_partial_shape()
        shape = tuple(d.get_length() if d.is_static else "?" for d in ps)
        dtype = _OV_DTYPES.get(port.get_element_type().get_type_name(), "float32")
        self._meta = TensorMeta(port.get_any_name(), shape, dtype)
        self._np_dtype = np.dtype(dtype)

    def _close(self) -> None:
        self._request = None
        self._compiled = None

    def stage(self, batch: np.ndarray) -> Any:
        """Cast to the compiled input's dtype (outside timing) and check a static shape fits."""
        self.check_input(batch)
        return cast_input(batch, self._np_dtype)

    def run_staged(self, staged: Any, *, transfers: bool = True) -> Any:
        # share_inputs avoids a copy, as a deployment feeding its own buffers would.
        self._request.infer({0: staged}, share_inputs=True)
        return self._request.get_output_tensor(0).data

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        return np.array(self.run_staged(self.stage(batch)), dtype=np.float32, copy=True)

    def describe(self) -> dict[str, Any]:
        from resdeploy.artifacts import package_versions

        d = super().describe()
        d.update({"precision": self.precision, "graph_precision": self.graph_precision,
                  "model_path": str(self.model_path), "ov_device": self.ov_device,
                  "inference_precision_hint": self.hint,
                  "api": "sync, 1 infer request, inputs shared (not copied)",
                  "input_element_type": self._meta.dtype if self._meta is not None else None,
                  "openvino": package_versions(["openvino"])["openvino"]})
        if self._compiled is not None:
            for prop, key in _RECORDED.items():
                try:
                    value = self._compiled.get_property(prop)
                except Exception:  # older OpenVINO lacks some; the rest stays useful
                    continue
                d[key] = value if isinstance(value, (bool, int, float)) else _ov_text(value)
        return d


def _ov_text(value: Any) -> str:
    """OpenVINO enums and types as the words benchmark_app prints (LATENCY, f32, ANY_CORE)."""
    if hasattr(value, "get_type_name"):  # ov.Type
        return str(value.get_type_name())
    name = getattr(value, "name", None)
    return str(name) if isinstance(name, str) else str(value)
