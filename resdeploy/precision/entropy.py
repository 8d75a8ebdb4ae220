"""KL-divergence ("entropy") calibration, the way TensorRT's entropy calibrator chooses ranges.

Why our own: ONNX Runtime's entropy calibrator histograms values symmetrically over
(-t, t). With its default 128 bins and 128 quantized bins the KL search has one candidate,
the full range, so it returns minmax's ranges; with more bins, half of them are empty for
post-ReLU tensors and it clipped ResNet-20's activations to 1/8..3/8 of their range
(docs/precision.md). TensorRT's method (Migacz, "8-bit Inference with TensorRT", GTC 2017)
histograms |x| from 0 in 2048 bins and, for every candidate threshold from bin 128 to the
end, compares the clipped distribution P (outliers folded into its last bin) with Q, the
same bins quantized to 128 levels and expanded back; the threshold of least KL(P||Q) wins.

ONNX Runtime still runs the model and hands over the activations: only the collector that
turns them into histograms and the threshold search are ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

HISTOGRAM_BINS = 2048  # TensorRT's resolution for |x|
LEVELS = 128  # the positive INT8 levels a symmetric threshold is divided into
_ROWS = 128  # candidate thresholds evaluated per vectorised chunk (bounds memory to a few MB)


@dataclass
class AbsHistogram:
    """Counts of |x| in equal bins from 0, with the signed extremes seen (ranges never exceed them)."""

    counts: np.ndarray  # int64; grows past ``bins`` (up to twice) when later values reach further
    width: float  # bin width; bin k covers [k * width, (k + 1) * width)
    lowest: float
    highest: float
    bins: int = HISTOGRAM_BINS  # the resolution asked for

    @classmethod
    def of(cls, values: np.ndarray, bins: int = HISTOGRAM_BINS) -> AbsHistogram:
        flat = _finite(values)
        if flat.size == 0:
            return cls(np.zeros(bins, dtype=np.int64), 0.0, 0.0, 0.0, bins)
        amax = float(np.abs(flat).max())
        width = amax / bins if amax > 0 else 0.0
        counts = _count(np.abs(flat), width, bins)
        return cls(counts, width, float(flat.min()), float(flat.max()), bins)

    def merge(self, values: np.ndarray) -> None:
        """Add more values; bins keep their width and more are appended when |x| grows."""
        flat = _finite(values)
        if flat.size == 0:
            return
        seen = int(self.counts.sum())
        lo, hi = float(flat.min()), float(flat.max())
        if self.width == 0.0:  # everything so far was exactly 0 (or nothing): start from these values
            fresh = AbsHistogram.of(flat, self.bins)
            fresh.counts[0] += seen
            self.counts, self.width = fresh.counts, fresh.width
        else:
            absolute = np.abs(flat)
            amax = float(absolute.max())
            while int(amax // self.width) + 1 >= 2 * self.bins:
                # These values reach much further than the first ones: halve the resolution
                # (pairs of bins merge exactly, since edges are multiples of the width).
                if self.counts.size % 2:
                    self.counts = np.append(self.counts, 0)
                self.counts = self.counts.reshape(-1, 2).sum(axis=1)
                self.width *= 2
            needed = int(amax // self.width) + 1
            if needed > self.counts.size:
                self.counts = np.concatenate([self.counts, np.zeros(needed - self.counts.size, dtype=np.int64)])
            self.counts += _count(absolute, self.width, self.counts.size)
        self.lowest, self.highest = (min(self.lowest, lo), max(self.highest, hi)) if seen else (lo, hi)

    def edge(self, k: int) -> float:
        return k * self.width


def _finite(values: np.ndarray) -> np.ndarray:
    """The values as one flat float32 array, NaN and infinities left out (they have no bin)."""
    flat = np.asarray(values, dtype=np.float32).reshape(-1)
    return flat[np.isfinite(flat)]


def _count(absolute: np.ndarray, width: float, bins: int) -> np.ndarray:
    if width == 0.0:
        out = np.zeros(bins, dtype=np.int64)
        out[0] = absolute.size
        return out
    idx = np.minimum((absolute / width).astype(np.int64), bins - 1)  # the maximum falls in the last bin
    return np.bincount(idx, minlength=bins).astype(np.int64)


def kl_threshold_bins(counts: np.ndarray, levels: int = LEVELS) -> int:
    """How many bins the best threshold keeps (``levels`` .. ``len(counts)``).

    Ties go to the wider threshold: clipping that buys nothing is not worth its risk on
    images calibration did not see.
    """
    hist = np.asarray(counts, dtype=np.float64).copy()
    n = hist.size
    if n > 1:
        # The first bin holds every exact zero: ReLU outputs and zero padding put half or more
        # of a tensor there. That spike says nothing about the range, yet Q smears it over its
        # level's bins, so wider thresholds (more bins per level) look worse and ResNet-20's
        # post-ReLU tensors were clipped to a quarter of their range (57.9% on digits, from
        # 96.9%). Counting it like its neighbour, as NVIDIA's pytorch-quantization does, fixes that.
        hist[0] = hist[1]
    if n <= levels or hist.sum() == 0:
        return n
    tail = np.concatenate([np.cumsum(hist[::-1])[::-1], [0.0]])  # tail[i] = sum(hist[i:])
    best_kl, best_i = np.inf, n
    for start in range(levels, n + 1, _ROWS):
        cand = np.arange(start, min(start + _ROWS, n + 1))
        kl = _kl_for(hist, tail, cand, levels)
        k = int(np.argmin(kl[::-1]))  # last minimum within the chunk: the widest of equals
        j = len(kl) - 1 - k
        if kl[j] <= best_kl:
            best_kl, best_i = float(kl[j]), int(cand[j])
    return best_i


def _kl_for(hist: np.ndarray, tail: np.ndarray, cand: np.ndarray, levels: int) -> np.ndarray:
    """KL(P || Q) for each candidate bin count in ``cand``, all in one set of array operations."""
    width = int(cand.max())
    j = np.arange(width)
    inside = j[None, :] < cand[:, None]  # bin j kept by candidate i
    h = np.where(inside, hist[None, :width], 0.0)
    p = h.copy()
    rows = np.arange(cand.size)
    p[rows, cand - 1] += tail[cand]  # outliers folded into the last kept bin
    # Q: the kept bins merged into `levels` equal groups, each group's count spread evenly
    # over its non-empty bins (empty bins stay empty, so Q has no mass where the data has none).
    group = np.where(inside, (j[None, :] * levels) // cand[:, None], 0)
    flat = rows[:, None] * levels + group
    nonzero = (h > 0).astype(np.float64)
    sums = np.bincount(flat.ravel(), weights=h.ravel(), minlength=cand.size * levels).reshape(cand.size, levels)
    fill = np.bincount(flat.ravel(), weights=nonzero.ravel(), minlength=cand.size * levels).reshape(cand.size, levels)
    per_bin = np.divide(sums, fill, out=np.zeros_like(sums), where=fill > 0)
    q = np.where(h > 0, np.take_along_axis(per_bin, group, axis=1), 0.0)
    p /= p.sum(axis=1, keepdims=True)
    qsum = q.sum(axis=1, keepdims=True)
    q = np.divide(q, qsum, out=np.zeros_like(q), where=qsum > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p / q), 0.0)  # p > 0 where q == 0: infinite divergence
    return np.asarray(terms.sum(axis=1))


def entropy_range(hist: AbsHistogram, levels: int = LEVELS) -> tuple[float, float]:
    """The (lowest, highest) range for one tensor: the KL threshold, never wider than what was seen."""
    if hist.width == 0.0:
        return hist.lowest, hist.highest
    t = hist.edge(kl_threshold_bins(hist.counts, levels))
    return max(hist.lowest, -t), min(hist.highest, t)


class AbsHistogramCollector:
    """Stands in for ONNX Runtime's ``HistogramCollector`` inside its histogram calibrator.

    The calibrator runs the augmented model and calls ``collect({tensor: [batch arrays]})``;
    we keep |x| histograms from 0 instead of ORT's symmetric ones.
    """

    def __init__(self, bins: int = HISTOGRAM_BINS) -> None:
        self.bins = bins
        self.histograms: dict[str, AbsHistogram] = {}

    def collect(self, name_to_arr: Mapping[str, Sequence[np.ndarray] | np.ndarray]) -> None:
        for name, arrays in name_to_arr.items():
            parts = list(arrays) if isinstance(arrays, list | tuple) else [arrays]
            values = np.concatenate([np.asarray(a, dtype=np.float32).reshape(-1) for a in parts]) if parts else (
                np.zeros(0, dtype=np.float32))
            if name in self.histograms:
                self.histograms[name].merge(values)
            else:
                self.histograms[name] = AbsHistogram.of(values, self.bins)

    def ranges(self, levels: int = LEVELS) -> dict[str, tuple[float, float]]:
        return {name: entropy_range(h, levels) for name, h in self.histograms.items()}
