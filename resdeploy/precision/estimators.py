"""Range estimators that survive outliers: per-sample min/max, averaged over the samples.

Global min/max (``minmax``) takes the single most extreme value any calibration image
produced: one outlier channel or one odd image widens a tensor's range and every other
value loses resolution. Averaging each sample's own min and max (what NNCF does by
default for activations) keeps the typical extent; the rare larger values saturate
instead. It was ``--target cpu``'s default until cross-layer equalization and bias correction
landed; with them it measured worse than entropy and minmax (docs/precision.md).

Like ``entropy.AbsHistogramCollector``, this stands in for the collector of ONNX Runtime's
histogram calibrator, which runs the model and hands over each batch's activations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


class PerSampleMinMaxCollector:
    """Mean over samples of each sample's min and max, per tensor."""

    def __init__(self) -> None:
        self.sums: dict[str, list[float]] = {}  # name -> [sum of mins, sum of maxes, samples]

    def collect(self, name_to_arr: Mapping[str, Sequence[np.ndarray] | np.ndarray]) -> None:
        for name, arrays in name_to_arr.items():
            parts = list(arrays) if isinstance(arrays, list | tuple) else [arrays]
            acc = self.sums.setdefault(name, [0.0, 0.0, 0.0])
            for a in parts:
                x = np.asarray(a, dtype=np.float32)
                if x.size == 0:
                    continue
                rows = x.reshape(x.shape[0], -1) if x.ndim > 1 else x.reshape(1, -1)
                rows = np.where(np.isfinite(rows), rows, 0.0)
                acc[0] += float(rows.min(axis=1).sum())
                acc[1] += float(rows.max(axis=1).sum())
                acc[2] += rows.shape[0]

    def ranges(self) -> dict[str, tuple[float, float]]:
        out: dict[str, tuple[float, float]] = {}
        for name, (lo, hi, n) in self.sums.items():
            out[name] = (lo / n, hi / n) if n else (0.0, 0.0)
        return out
