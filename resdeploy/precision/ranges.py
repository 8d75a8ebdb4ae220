"""Saved calibration ranges: rebuild the same INT8 model later without the calibration data.

Calibration is the slow, data-dependent half of INT8; placing Q/DQ nodes from ranges
is fast and deterministic. Saving the ranges (a small JSON) beside the model lets CI
rebuild or retarget (``--target cpu`` vs ``trt``) the INT8 variant without the images.
The file is keyed by the FP32 model's sha256, because ranges are tensor names plus
numbers: applied to a different FP32 graph they would be silently wrong.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from resdeploy.artifacts import atomic_write_json, utc_now
from resdeploy.errors import ResdeployError

RANGES_SCHEMA = "resdeploy.calibration-ranges/1"
RANGES_NAME = "calibration_ranges.json"
METHODS = ("avgminmax", "minmax", "entropy", "percentile")


@dataclass
class CalibrationRanges:
    """Per-tensor (lowest, highest) activation ranges from one calibration run."""

    model_sha256: str
    method: str
    samples: int
    source: str
    seed: int
    percentile: float | None = None
    equalized: bool = False  # computed on the cross-layer-equalized graph (precision/equalize.py)
    # Bias corrections (precision/bias_correction.py) per Q/DQ form (pipeline's correction key):
    # node -> per-channel shift, so that a rebuild from these ranges is the same model without data.
    bias_corrections: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    created: str = field(default_factory=utc_now)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ranges"] = {k: [float(lo), float(hi)] for k, (lo, hi) in sorted(self.ranges.items())}
        return {"schema": RANGES_SCHEMA, **d}

    def save(self, path: str | os.PathLike[str], *, force: bool = False) -> Path:
        return atomic_write_json(path, self.to_dict(), force=force)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CalibrationRanges:
        from resdeploy.artifacts import read_json

        p = Path(path)
        data = read_json(p, schema=RANGES_SCHEMA, what="calibration ranges file")
        try:
            ranges = {str(k): (float(v[0]), float(v[1])) for k, v in data["ranges"].items()}
            return cls(model_sha256=str(data["model_sha256"]), method=str(data["method"]),
                       samples=int(data["samples"]), source=str(data["source"]), seed=int(data["seed"]),
                       percentile=data.get("percentile"), ranges=ranges,
                       equalized=bool(data.get("equalized", False)),
                       bias_corrections={str(k): {str(n): [float(x) for x in v] for n, v in d.items()}
                                         for k, d in (data.get("bias_corrections") or {}).items()}, created=str(data.get("created", "")))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ResdeployError(f"{p} is a damaged calibration ranges file: {exc}") from None

    def check_model(self, sha256: str, where: str) -> None:
        """Refuse ranges computed for a different FP32 model (tensor names would not mean the same)."""
        if self.model_sha256 != sha256:
            raise ResdeployError(
                f"the ranges in {where} were computed for FP32 model sha256 {self.model_sha256[:12]}…, "
                f"not this one ({sha256[:12]}…)",
                hint="recalibrate with --calib-data, or pass the FP32 model the ranges came from",
            )

    # -- ONNX Runtime interop -------------------------------------------------------------
    def to_tensors_data(self) -> Any:
        """As ``onnxruntime.quantization.calibrate.TensorsData`` (what its quantizers consume)."""
        from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData

        method = {"minmax": CalibrationMethod.MinMax, "avgminmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[self.method]
        data = {k: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for k, (lo, hi) in self.ranges.items()}
        return TensorsData(method, data)

    @staticmethod
    def ranges_from_tensors_data(tensors_data: Any) -> dict[str, tuple[float, float]]:
        out: dict[str, tuple[float, float]] = {}
        for name in tensors_data:
            lo, hi = tensors_data[name].range_value
            out[name] = (float(np.asarray(lo).reshape(-1)[0]), float(np.asarray(hi).reshape(-1)[0]))
        return out
