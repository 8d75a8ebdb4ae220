"""TensorRT-style KL ("entropy") thresholds: what they clip, what they keep, and how batches merge."""

from __future__ import annotations

import numpy as np
import pytest

from resdeploy.precision.entropy import AbsHistogram, AbsHistogramCollector, entropy_range, kl_threshold_bins


def _normal(n: int = 400_000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def test_far_outliers_are_clipped_and_the_bulk_is_kept() -> None:
    x = _normal()
    x[:20] = 50.0  # 20 in 400k: minmax would spend 90% of the levels on them
    lo, hi = entropy_range(AbsHistogram.of(x))
    assert 3.0 < hi < 6.0, hi
    assert lo == pytest.approx(max(float(x.min()), -hi))  # -t, or the seen minimum when that is closer


def test_uniform_values_are_not_clipped() -> None:
    u = np.random.default_rng(1).uniform(-1.0, 1.0, 400_000)
    lo, hi = entropy_range(AbsHistogram.of(u))
    assert hi > 0.97 and lo < -0.97


def test_zeros_from_relu_do_not_pull_the_threshold_in() -> None:
    # Half of a ReLU's outputs are exactly 0; counted as they are, that spike made the search
    # clip post-ReLU tensors to a quarter of their range.
    x = _normal()
    _, relu_hi = entropy_range(AbsHistogram.of(np.maximum(x, 0.0)))
    _, abs_hi = entropy_range(AbsHistogram.of(np.abs(x)))
    assert relu_hi == pytest.approx(abs_hi, rel=0.1)
    assert relu_hi > 3.0


def test_ranges_never_exceed_what_was_seen() -> None:
    x = np.abs(_normal()) + 0.5  # all positive: the low end stays at the true minimum, not -t
    h = AbsHistogram.of(x)
    lo, hi = entropy_range(h)
    assert lo == pytest.approx(float(x.min())) and hi <= float(x.max())


@pytest.mark.parametrize("values", [np.zeros(100), np.zeros(0), np.full(10, np.nan)])
def test_degenerate_tensors_keep_their_seen_range(values: np.ndarray) -> None:
    h = AbsHistogram.of(values)
    assert entropy_range(h) == (0.0, 0.0)


def test_few_bins_mean_the_full_range() -> None:
    assert kl_threshold_bins(np.array([5, 0, 3])) == 3  # fewer bins than levels: nothing to search


def test_merging_batches_matches_one_histogram_when_the_first_reaches_furthest() -> None:
    x = _normal()
    x[0] = 9.0  # the first batch holds the largest |x|, so bins never need to grow
    whole = AbsHistogram.of(x)
    merged = AbsHistogram.of(x[:1000])
    for start in range(1000, x.size, 50_000):
        merged.merge(x[start:start + 50_000])
    assert merged.width == whole.width
    np.testing.assert_array_equal(merged.counts, whole.counts)
    assert (merged.lowest, merged.highest) == (whole.lowest, whole.highest)


def test_a_later_batch_that_reaches_further_keeps_bins_bounded() -> None:
    x = _normal()
    h = AbsHistogram.of(x[:1000] * 1e-6)  # a first batch of near-zeros, then the real values
    h.merge(x[1000:])
    assert h.bins <= h.counts.size < 2 * h.bins
    assert int(h.counts.sum()) == x.size
    lo, hi = entropy_range(h)
    _, ref_hi = entropy_range(AbsHistogram.of(x))
    assert hi == pytest.approx(ref_hi, rel=0.05)


def test_zeros_first_then_values() -> None:
    h = AbsHistogram.of(np.zeros(10))
    h.merge(np.array([-2.0, 1.0]))
    assert int(h.counts.sum()) == 12 and (h.lowest, h.highest) == (-2.0, 1.0)


def test_collector_speaks_onnxruntimes_collect_protocol() -> None:
    # ORT's calibrator hands {tensor: [one array per batch]}; ranges come back per tensor.
    c = AbsHistogramCollector()
    x = _normal()
    c.collect({"a": [x[:200_000], x[200_000:]], "b": [np.maximum(x, 0)]})
    c.collect({"a": [x[:10]]})
    r = c.ranges()
    assert set(r) == {"a", "b"}
    assert r["b"][0] == 0.0 and 3.0 < r["b"][1] < float(x.max())
