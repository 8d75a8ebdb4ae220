"""LatencyStats: the one statistics implementation, checked against numpy and by hand."""

from __future__ import annotations

import numpy as np
import pytest

from resdeploy.stats import LatencyStats, empirical_cdf


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
