"""Latency statistics: the one implementation used by bench, scenarios, reports and the harness.

Every number a user compares (p50 of ONNX Runtime on this CPU against p50 of TensorRT on
a GPU server) is computed here, from raw per-inference latencies, the same way. Reports
recompute nothing from summaries: they read these fields, so two tables never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np

PERCENTILES: tuple[int, ...] = (50, 90, 95, 99)
# How p50/p90/p95/p99 are computed, recorded in every result so a reader can tell.
# numpy's default ("linear", Hyndman & Fan type 7): interpolates between the two closest
# ranks, so p50 is the median (trtexec's "median" too). benchmark_app and trtexec report
# their other percentiles by nearest rank (numpy's "inverted_cdf"): see ``nearest_rank``.
PERCENTILE_METHOD: Final = "linear"


def nearest_rank(latencies_ms: Sequence[float] | np.ndarray, percent: int) -> float:
    """The ceil(percent/100 * n)-th smallest value: the percentile peer tools print.

    OpenVINO's benchmark_app reports ``values[ceil(n * p / 100) - 1]`` of the sorted
    latencies (its "Median" is this at p = 50: the lower middle value for even n), and
    trtexec's percentiles are ``values[n - 1 - int((1 - p/100) * n)]``, the same rank up
    to float32 rounding. Integer arithmetic here, so p99 of exactly 100 samples is the
    99th value, never the maximum by a rounding accident.
    """
    arr = np.sort(np.asarray(latencies_ms, dtype=np.float64).reshape(-1))
    if arr.size == 0:
        raise ValueError("no latencies")
    if not 0 < int(percent) <= 100 or int(percent) != percent:
        raise ValueError(f"percent must be an integer in 1..100, got {percent}")
    rank = -(-int(percent) * arr.size // 100)  # ceil without floats
    return float(arr[max(rank, 1) - 1])


@dataclass(frozen=True)
class LatencyStats:
    """Summary of per-inference latencies in milliseconds.

    ``throughput`` is images per second over the measured wall time (not 1/mean): it
    includes whatever the loop does between inferences, which is what a user's
    service will pay too. ``tail_reliable`` is False when there are too few samples
    for p99 to differ from the maximum, so a report can say so instead of
    presenting the maximum as a percentile.

    ``p50_ms``..``p99_ms`` use ``percentile_method`` (linear interpolation, numpy's
    default, so p50 is the median); ``nearest_rank_ms`` holds the same percentiles the
    way benchmark_app and trtexec compute them, for like-for-like comparisons (they
    differ most in the tail of short runs). Results written before these two fields
    existed read back with the method they used (linear) and no nearest-rank values.
    """

    count: int
    min_ms: float
    mean_ms: float
    std_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    wall_seconds: float
    images: int
    throughput: float
    tail_reliable: bool
    percentile_method: str = PERCENTILE_METHOD
    nearest_rank_ms: dict[str, float] | None = None

    @classmethod
    def from_latencies(
        cls, latencies_ms: Sequence[float] | np.ndarray, *, images: int, wall_seconds: float
    ) -> LatencyStats:
        """Summarise raw latencies; ``images`` processed in ``wall_seconds`` give throughput."""
        arr = np.asarray(latencies_ms, dtype=np.float64).reshape(-1)
        if arr.size == 0:
            raise ValueError("no latencies to summarise")
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError("latencies must be finite and non-negative")
        if wall_seconds <= 0:
            raise ValueError("wall_seconds must be positive")
        # Linear interpolation between closest ranks (numpy's default, same as
        # optimum-benchmark and most dashboards), so our p50 equals np.median.
        p50, p90, p95, p99 = (float(v) for v in np.percentile(arr, PERCENTILES, method=PERCENTILE_METHOD))
        return cls(
            count=int(arr.size),
            min_ms=float(arr.min()),
            mean_ms=float(arr.mean()),
            std_ms=float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
            p50_ms=p50,
            p90_ms=p90,
            p95_ms=p95,
            p99_ms=p99,
            max_ms=float(arr.max()),
            wall_seconds=float(wall_seconds),
            images=int(images),
            throughput=float(images) / float(wall_seconds),
            # Below 100 samples p99 interpolates into the single largest value.
            tail_reliable=bool(arr.size >= 100),
            percentile_method=PERCENTILE_METHOD,
            nearest_rank_ms={f"p{q}": nearest_rank(arr, q) for q in PERCENTILES},
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LatencyStats:
        known = cls.__dataclass_fields__
        optional = ("percentile_method", "nearest_rank_ms")  # absent from older result files
        missing = [k for k in known if k not in d and k not in optional]
        if missing:
            raise ValueError(f"latency stats lack {', '.join(missing)}")
        return cls(**{k: d[k] for k in known if k in d})


def empirical_cdf(latencies_ms: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted latencies and their cumulative fraction, for latency-CDF plots."""
    arr = np.sort(np.asarray(latencies_ms, dtype=np.float64).reshape(-1))
    frac = np.arange(1, arr.size + 1, dtype=np.float64) / max(arr.size, 1)
    return arr, frac
