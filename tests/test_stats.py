"""LatencyStats: the one statistics implementation, checked against numpy and by hand."""

from __future__ import annotations

import numpy as np
import pytest

from resdeploy.stats import LatencyStats, empirical_cdf, nearest_rank


def test_percentiles_and_moments_match_numpy() -> None:
    lat = np.random.default_rng(1).gamma(4.0, 2.5, size=1000)
    s = LatencyStats.from_latencies(lat, images=8000, wall_seconds=12.5)
    assert s.count == 1000
    assert s.p50_ms == pytest.approx(np.median(lat))
    for q, v in ((90, s.p90_ms), (95, s.p95_ms), (99, s.p99_ms)):
        assert v == pytest.approx(np.percentile(lat, q))
    assert s.min_ms == lat.min() and s.max_ms == lat.max()
    assert s.mean_ms == pytest.approx(lat.mean())
    assert s.std_ms == pytest.approx(lat.std(ddof=1))
    assert s.min_ms <= s.p50_ms <= s.p90_ms <= s.p95_ms <= s.p99_ms <= s.max_ms
    assert s.tail_reliable


def test_throughput_is_images_over_wall_time_not_one_over_mean() -> None:
    # 10 inferences of batch 4 at 10 ms each, but 0.2 s of wall time (loop overhead, queueing).
    s = LatencyStats.from_latencies([10.0] * 10, images=40, wall_seconds=0.2)
    assert s.throughput == pytest.approx(200.0)
    assert s.std_ms == 0.0
    assert not s.tail_reliable  # 10 samples: p99 is the maximum


def test_small_hand_checked_example() -> None:
    s = LatencyStats.from_latencies([1.0, 2.0, 3.0, 4.0, 100.0], images=5, wall_seconds=1.0)
    assert s.p50_ms == 3.0
    assert s.p90_ms == pytest.approx(4.0 + 0.6 * 96.0)  # linear between the 4th and 5th values
    assert s.mean_ms == pytest.approx(22.0)


def test_round_trip_and_bad_input() -> None:
    s = LatencyStats.from_latencies([1.0, 2.0], images=2, wall_seconds=0.01)
    assert LatencyStats.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="lack"):
        LatencyStats.from_dict({"count": 1})
    for bad in ([], [1.0, float("nan")], [-1.0]):
        with pytest.raises(ValueError):
            LatencyStats.from_latencies(bad, images=1, wall_seconds=1.0)
    with pytest.raises(ValueError):
        LatencyStats.from_latencies([1.0], images=1, wall_seconds=0.0)


def test_empirical_cdf_is_sorted_and_ends_at_one() -> None:
    xs, ys = empirical_cdf([3.0, 1.0, 2.0])
    assert list(xs) == [1.0, 2.0, 3.0]
    assert list(ys) == pytest.approx([1 / 3, 2 / 3, 1.0])


# --- percentile definitions against the peer tools ----------------------------------------------------
def _trtexec_percentile(sorted_values: list[float], p: float) -> float:
    """trtexec's findPercentile (sampleReporting.cpp), float32 arithmetic included."""
    n = len(sorted_values)
    exclude = int((np.float32(1) - np.float32(p) / np.float32(100)) * np.float32(n))
    return sorted_values[max(n - 1 - exclude, 0)]


def _trtexec_median(sorted_values: list[float]) -> float:
    n = len(sorted_values)
    m = n // 2
    return sorted_values[m] if n % 2 else (sorted_values[m - 1] + sorted_values[m]) / 2


def test_ten_values_by_hand_linear_and_nearest_rank() -> None:
    lat = [7.0, 3.0, 10.0, 1.0, 9.0, 2.0, 8.0, 5.0, 4.0, 6.0]  # 1..10, shuffled
    s = LatencyStats.from_latencies(lat, images=10, wall_seconds=1.0)
    assert s.percentile_method == "linear"
    # linear: rank 1 + p/100 * (n - 1), interpolated
    assert s.p50_ms == pytest.approx(5.5)  # (5 + 6) / 2: the median
    assert s.p90_ms == pytest.approx(9.1)  # 9 + 0.1 * (10 - 9)
    assert s.p99_ms == pytest.approx(9.91)
    # nearest rank: the ceil(p/100 * 10)-th smallest
    assert s.nearest_rank_ms == {"p50": 5.0, "p90": 9.0, "p95": 10.0, "p99": 10.0}


@pytest.mark.parametrize("n", [1, 2, 5, 20, 99, 100, 101, 257, 1000])
def test_nearest_rank_matches_benchmark_app_trtexec_and_numpy(n: int) -> None:
    values = np.random.default_rng(n).permutation(np.arange(1, n + 1, dtype=np.float64) * 1.5)
    srt = sorted(values.tolist())
    for p in (50, 90, 95, 99):
        ours = nearest_rank(values, p)
        k = -(-p * n // 100)  # ceil(p * n / 100) in integers: the definition
        assert ours == srt[k - 1]
        assert ours == pytest.approx(float(np.percentile(values, p, method="inverted_cdf")))
        trt = _trtexec_percentile(srt, p)
        if trt != ours:
            # trtexec computes (1 - p/100) * n in float32: for p99 of a multiple of 100
            # samples that truncates one value short (0.99999 -> 0 excluded at n = 100),
            # so it prints the next rank (the maximum at n = 100). Elsewhere: the same rank.
            assert (p, n % 100) == (99, 0) and trt == srt[k]
    # our p50 (linear) is trtexec's median; benchmark_app's "Median" is the nearest-rank p50
    s = LatencyStats.from_latencies(values, images=n, wall_seconds=1.0)
    assert s.p50_ms == pytest.approx(_trtexec_median(srt))
    assert s.nearest_rank_ms is not None and s.nearest_rank_ms["p50"] == srt[-(-n // 2) - 1]


def test_nearest_rank_is_benchmark_app_s_own_function() -> None:
    bench = pytest.importorskip("openvino.tools.benchmark.benchmark", reason="OpenVINO's benchmark_app not installed")
    values = np.random.default_rng(3).gamma(2.0, 3.0, size=37).tolist()
    for p in (50, 90, 95, 99):
        assert nearest_rank(values, p) == bench.percentile(sorted(values), p)


def test_nearest_rank_bad_percent_and_old_results_read_back() -> None:
    for bad in (0, 101, 99.5):
        with pytest.raises(ValueError):
            nearest_rank([1.0, 2.0], bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        nearest_rank([], 50)
    s = LatencyStats.from_latencies([1.0, 2.0, 3.0], images=3, wall_seconds=1.0)
    old = {k: v for k, v in s.to_dict().items() if k not in ("percentile_method", "nearest_rank_ms")}
    back = LatencyStats.from_dict(old)  # a result file from before these fields existed
    assert back.percentile_method == "linear" and back.nearest_rank_ms is None
    assert back.p50_ms == s.p50_ms
