"""Parity metrics between a reference and a candidate, and the tolerances that gate them.

Export parity, precision checks and ``validate`` all compare logits the same way, so
the metrics live here once. Labels-based accuracy lives here too, because a gate
often mixes both (top-1 drop and agreement).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ParityMetrics:
    """How far a candidate's outputs are from the reference's on the same inputs."""

    samples: int
    max_abs_error: float
    mean_abs_error: float
    max_rel_error: float
    cosine_min: float
    cosine_mean: float
    top1_agreement: float
    top5_agreement: float
    reference_logit_std: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class ParityTolerances:
    """Defaults suit FP32 ONNX against FP32 PyTorch; precision variants pass their own.

    Measured in the exporter (see ``resdeploy.exporter``): honest FP32 exports reach a
    relative error (to max |logit|) of at most ~4e-4 (resnet152), while 0.1 % noise on one
    convolution gives ~2e-3. The absolute bound is a backstop for logits of a few tens.
    """

    max_abs_error: float = 2e-2
    max_rel_error: float = 1e-3
    min_cosine: float = 0.99999
    min_top1_agreement: float = 1.0

    def failures(self, m: ParityMetrics) -> list[str]:
        """Human-readable reasons the metrics fail these tolerances (empty when they pass)."""
        out = []
        if not m.max_abs_error <= self.max_abs_error:
            out.append(f"max abs error {m.max_abs_error:.3g} > {self.max_abs_error:.3g}")
        if not m.max_rel_error <= self.max_rel_error:
            out.append(f"max rel error {m.max_rel_error:.3g} > {self.max_rel_error:.3g}")
        if not m.cosine_min >= self.min_cosine:
            out.append(f"min cosine {m.cosine_min:.6f} < {self.min_cosine:.6f}")
        if not m.top1_agreement >= self.min_top1_agreement:
            out.append(f"top-1 agreement {m.top1_agreement:.4f} < {self.min_top1_agreement:.4f}")
        return out


def _as_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(x.shape[0], -1) if x.ndim != 2 else x


def topk_indices(logits: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest logits per row, best first; ties go to the lower index.

    The tie rule is ``np.argmax``'s (and PyTorch's), so top-1 here, top-1 agreement and
    top-1 accuracy always pick the same class, whichever the partition happens to
    return: ties are common in FP16/INT8 logits and in degenerate (constant) outputs.
    NaN ranks below every number, so a NaN logit is never a prediction.
    """
    x = _as_2d(logits)
    if np.isnan(x).any():
        x = np.where(np.isnan(x), -np.inf, x)
    k = max(1, min(k, x.shape[1]))
    if k == 1:
        return np.argmax(x, axis=1)[:, None]
    part = np.argpartition(-x, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(x, part, axis=1)
    kth = vals.min(axis=1, keepdims=True)
    # Rows where the k-th value also occurs outside the chosen k: which of the tied indices
    # argpartition kept is arbitrary, so those rows are ranked by a stable full sort.
    tied = (x == kth).sum(axis=1) > (vals == kth).sum(axis=1)
    if tied.any():
        part[tied] = np.argsort(-x[tied], axis=1, kind="stable")[:, :k]
        vals[tied] = np.take_along_axis(x[tied], part[tied], axis=1)
    order = np.lexsort((part, -vals), axis=1)  # by value (descending), then index
    return np.take_along_axis(part, order, axis=1)


def parity_metrics(reference: np.ndarray, candidate: np.ndarray) -> ParityMetrics:
    """Compare two batches of logits row by row.

    The relative error is taken against the reference's overall logit scale
    (max |ref|), not element-wise: element-wise relative error explodes on logits
    near zero and would fail every FP16 model for no useful reason.
    """
    ref, cand = _as_2d(reference), _as_2d(candidate)
    if ref.shape != cand.shape:
        raise ValueError(f"shape mismatch: reference {ref.shape} vs candidate {cand.shape}")
    diff = np.abs(ref - cand)
    scale = max(float(np.max(np.abs(ref))), 1e-12)
    num = np.sum(ref * cand, axis=1)
    den = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cos = np.where(den > 0, num / np.maximum(den, 1e-300), np.where(np.all(ref == cand, axis=1), 1.0, 0.0))
    top1_ref, top1_cand = topk_indices(ref, 1)[:, 0], topk_indices(cand, 1)[:, 0]
    k = min(5, ref.shape[1])
    top5_ref = np.sort(topk_indices(ref, k), axis=1)
    top5_cand = np.sort(topk_indices(cand, k), axis=1)
    finite = bool(np.all(np.isfinite(cand)))
    return ParityMetrics(
        samples=int(ref.shape[0]),
        max_abs_error=float(np.max(diff)) if finite else float("inf"),
        mean_abs_error=float(np.mean(diff)) if finite else float("inf"),
        max_rel_error=float(np.max(diff) / scale) if finite else float("inf"),
        cosine_min=float(np.min(cos)) if finite else 0.0,
        cosine_mean=float(np.mean(cos)) if finite else 0.0,
        top1_agreement=float(np.mean(top1_ref == top1_cand)),
        top5_agreement=float(np.mean(np.all(top5_ref == top5_cand, axis=1))),
        reference_logit_std=float(np.mean(np.std(ref, axis=1))),
    )


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Fraction of rows whose label is among the k largest logits."""
    labels = np.asarray(labels).reshape(-1)
    if labels.size == 0:
        return float("nan")
    top = topk_indices(logits, k)
    return float(np.mean(np.any(top == labels[:, None], axis=1)))
