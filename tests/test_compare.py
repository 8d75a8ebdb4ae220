"""Top-k with ties, NaN and fewer classes than k: the rules top-1 accuracy and agreement share."""

from __future__ import annotations

import numpy as np
import pytest

from resdeploy.compare import parity_metrics, topk_accuracy, topk_indices


def test_ties_go_to_the_lower_index_like_argmax() -> None:
    logits = np.array([[1.0, 1.0, 1.0, 1.0], [0.0, 2.0, 2.0, 1.0], [3.0, 3.0, 0.0, 3.0]])
    assert topk_indices(logits, 1)[:, 0].tolist() == [0, 1, 0]
    assert topk_indices(logits, 2).tolist() == [[0, 1], [1, 2], [0, 1]]
    assert topk_indices(logits, 3).tolist() == [[0, 1, 2], [1, 2, 3], [0, 1, 3]]


def test_topk_equals_a_stable_sort_on_many_ties() -> None:
    # Logits rounded to one decimal: most rows have ties at the k-th place.
    x = np.round(np.random.default_rng(0).standard_normal((3000, 40)), 1)
    for k in (1, 2, 5, 10, 40):
        np.testing.assert_array_equal(topk_indices(x, k), np.argsort(-x, axis=1, kind="stable")[:, :k])


def test_k_larger_than_classes_and_nan() -> None:
    logits = np.array([[0.1, 0.9, 0.0], [np.nan, 0.2, 0.1]])
    assert topk_indices(logits, 5).tolist() == [[1, 0, 2], [1, 2, 0]]  # NaN ranks last
    labels = np.array([2, 0])
    assert topk_accuracy(logits, labels, 1) == 0.0
    assert topk_accuracy(logits, labels, 5) == 1.0  # with 3 classes, top-5 holds every class
    assert topk_accuracy(logits, np.array([1, 1]), 1) == 1.0  # the NaN is never the prediction


def test_constant_logits_give_the_same_answer_to_accuracy_and_agreement() -> None:
    ref = np.zeros((4, 3))
    cand = np.zeros((4, 3))
    cand[:, 2] = 1e-9
    m = parity_metrics(ref, cand)
    assert m.top1_agreement == 0.0  # the reference picks class 0 on every row, the candidate class 2
    assert topk_accuracy(ref, np.zeros(4, dtype=int), 1) == pytest.approx(1.0)
    assert topk_accuracy(cand, np.zeros(4, dtype=int), 1) == 0.0


def test_compare_runners_feeds_the_candidate_what_candidate_inputs_makes_of_each_batch() -> None:
    """validate's path for in-graph preprocessing: the reference gets the tensors, the candidate other inputs."""
    from dataclasses import dataclass

    from resdeploy.compare import compare_runners

    @dataclass
    class Batch:
        inputs: np.ndarray
        labels: np.ndarray | None
        names: list[str]

    rng = np.random.default_rng(0)
    batches = [Batch(rng.standard_normal((n, 4)).astype(np.float32), None, [f"{i}-{j}" for j in range(n)])
               for i, n in enumerate((3, 2))]
    seen: list[list[str]] = []

    def candidate(names: list[str]) -> np.ndarray:  # recomputes the tensors from the names it is given
        seen.append(list(names))
        return np.stack([batches[int(n.split("-")[0])].inputs[int(n.split("-")[1])] for n in names]) * 2.0

    run = compare_runners(lambda x: x * 2.0, candidate, batches, candidate_inputs=lambda b: b.names)
    assert seen == [b.names for b in batches]
    assert run.samples == 5 and run.batch_sizes == [3, 2]
    np.testing.assert_array_equal(run.reference, run.candidate)
    swapped = compare_runners(lambda x: x * 2.0, candidate, batches, candidate_inputs=lambda b: b.names[::-1])
    assert swapped.metrics().max_abs_error > 0  # the hook's inputs are what the candidate ran on
def test_shards_compared_on_open_runners_join_to_the_whole_run_bit_for_bit(tiny_onnx) -> None:  # noqa: ANN001
    """validate --ray's path (compare_batches per shard, joined) equals compare_runners' (one process)."""
    from resdeploy.compare import RunComparison, compare_batches, compare_runners
    from resdeploy.data import Batch
    from resdeploy.runners import RunnerConfig, create_runner

    path, _ = tiny_onnx
    rng = np.random.default_rng(1)
    batches = [Batch(rng.standard_normal((n, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, n), [])
               for n in (4, 4, 3)]
    cfg = RunnerConfig(engine="ort", model=str(path), threads=1)
    ref, cand = create_runner(cfg), create_runner(cfg)
    whole = compare_runners(ref, cand, batches)
    assert not ref.loaded and not cand.loaded  # compare_runners closes what it loaded

    with create_runner(cfg) as r, create_runner(cfg) as c:
        parts = [compare_batches(r, c, [b]) for b in batches]
        assert r.loaded and c.loaded  # kept open for the next shard
        unlabelled = compare_batches(r, c, [batches[0].inputs])
    joined = RunComparison.join(parts)
    assert joined.batch_sizes == whole.batch_sizes == [4, 4, 3]
    np.testing.assert_array_equal(joined.reference, whole.reference)
    np.testing.assert_array_equal(joined.candidate, whole.candidate)
    assert joined.labels is not None and whole.labels is not None
    np.testing.assert_array_equal(joined.labels, whole.labels)
    assert joined.metrics() == whole.metrics() and joined.accuracy() == whole.accuracy()
    with pytest.raises(ValueError, match="labelled and unlabelled"):
        RunComparison.join([parts[0], unlabelled])
