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
