"""Run a reference and a candidate on the same batches, compare them, and gate the result.

Export parity (PyTorch vs ONNX Runtime), quantize's self-check (FP32 vs the variant) and
``validate`` (reference vs candidate on a data set) all go through ``compare_runners``:
the same inputs reach both sides batch by batch, and the per-sample outputs come back
in one ``RunComparison``. The metrics (``parity_metrics``), label accuracy and the gates
live here once. Gates are data (``Gate``: name, metric, comparison, threshold, value,
samples measured), so the table, the JSON and the JUnit XML are all made from one list.
"""

from __future__ import annotations

import contextlib
import operator
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from resdeploy.errors import ResdeployError


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

    def gates(self, m: ParityMetrics) -> list[Gate]:
        """These tolerances as gates on ``m``."""
        return [
            make_gate("max_abs_error", "max_abs_error", m.max_abs_error, "<=", self.max_abs_error, m.samples,
                      "largest absolute difference between logits"),
            make_gate("max_rel_error", "max_rel_error", m.max_rel_error, "<=", self.max_rel_error, m.samples,
                      "largest absolute difference relative to max |reference logit|"),
            make_gate("cosine_min", "cosine_min", m.cosine_min, ">=", self.min_cosine, m.samples,
                      "worst per-sample cosine similarity of the logits"),
            make_gate("top1_agreement", "top1_agreement", m.top1_agreement, ">=", self.min_top1_agreement, m.samples,
                      "fraction of samples whose top-1 class matches the reference's"),
        ]

    def failures(self, m: ParityMetrics) -> list[str]:
        """Human-readable reasons the metrics fail these tolerances (empty when they pass)."""
        labels = {"max_abs_error": ("max abs error", ".3g"), "max_rel_error": ("max rel error", ".3g"),
                  "cosine_min": ("min cosine", ".6f"), "top1_agreement": ("top-1 agreement", ".4f")}
        out = []
        for g in self.gates(m):
            if not g.passed:
                label, spec = labels[g.name]
                bad = ">" if g.op == "<=" else "<"
                out.append(f"{label} {format(g.value, spec)} {bad} {format(g.threshold, spec)}")
        return out


# --- gates as data -------------------------------------------------------------------------------------
_OPS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le, ">": operator.gt,
                                                    "<": operator.lt}


@dataclass
class Gate:
    """One check: ``value`` (of ``metric``, over ``samples`` samples) compared with ``threshold`` by ``op``.

    The table, ``--json`` and JUnit XML all render this one record, so they cannot disagree.
    """

    name: str
    value: float
    op: str  # ">=" | "<=" | ">" | "<"
    threshold: float
    passed: bool
    description: str
    metric: str = ""  # the measured quantity (ParityMetrics field or accuracy key)
    samples: int = 0  # how many samples the value was measured on

    def text(self) -> str:
        return f"{self.name}: {_fmt(self.value)} {self.op} {_fmt(self.threshold)}"


def make_gate(name: str, metric: str, value: float, op: str, threshold: float, samples: int,
              description: str) -> Gate:
    """A gate with its verdict; NaN fails every comparison (a value that is not a number passes nothing)."""
    v, t = float(value), float(threshold)
    return Gate(name, v, op, t, bool(_OPS[op](v, t)), description, metric or name, int(samples))


def _fmt(v: float) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


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


# --- one comparison path -----------------------------------------------------------------------------------
@dataclass
class RunComparison:
    """Per-sample outputs of a reference and a candidate that ran on the very same inputs."""

    reference: np.ndarray  # [samples, outputs], float32
    candidate: np.ndarray
    labels: np.ndarray | None = None  # when the batches carried labels
    batch_sizes: list[int] = field(default_factory=list)
    candidate_seconds: list[float] = field(default_factory=list)  # wall time of each candidate batch

    @property
    def samples(self) -> int:
        return int(self.reference.shape[0])

    @classmethod
    def join(cls, parts: Sequence[RunComparison]) -> RunComparison:
        """Comparisons of consecutive batches as one, in the given order (``validate --ray``'s shards)."""
        if not parts:
            raise ResdeployError("nothing to compare: no batches")
        labelled = [p.labels is not None for p in parts]
        if any(labelled) and not all(labelled):
            raise ValueError("cannot join labelled and unlabelled comparisons")
        return cls(np.concatenate([p.reference for p in parts]), np.concatenate([p.candidate for p in parts]),
                   np.concatenate([p.labels for p in parts if p.labels is not None]) if all(labelled) else None,
                   [n for p in parts for n in p.batch_sizes], [t for p in parts for t in p.candidate_seconds])

    def metrics(self) -> ParityMetrics:
        return parity_metrics(self.reference, self.candidate)

    def batch(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Reference and candidate outputs of the i-th batch."""
        start = sum(self.batch_sizes[:i])
        end = start + self.batch_sizes[i]
        return self.reference[start:end], self.candidate[start:end]

    def per_sample(self) -> dict[str, np.ndarray]:
        """Per-sample max abs error, cosine and top-1 agreement (what a report would plot)."""
        ref, cand = _as_2d(self.reference), _as_2d(self.candidate)
        den = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
        cos = np.where(den > 0, np.sum(ref * cand, axis=1) / np.maximum(den, 1e-300), 1.0)
        return {"max_abs_error": np.max(np.abs(ref - cand), axis=1), "cosine": cos,
                "top1_agree": topk_indices(ref, 1)[:, 0] == topk_indices(cand, 1)[:, 0]}

    def accuracy(self) -> dict[str, dict[str, float]] | None:
        """Top-1/top-5 of both sides against the labels; None without labels."""
        if self.labels is None:
            return None
        y = self.labels
        return {"reference": {"top1": topk_accuracy(self.reference, y, 1), "top5": topk_accuracy(self.reference, y, 5)},
                "candidate": {"top1": topk_accuracy(self.candidate, y, 1), "top5": topk_accuracy(self.candidate, y, 5)}}


def per_batch_parity(run: RunComparison, batches: Sequence[int], tolerances: ParityTolerances
                     ) -> tuple[dict[str, Any], list[str]]:
    """Metrics and tolerance failures per batch size of an export parity run (PyTorch or Keras against ORT).

    Each batch size is gated on its own: a batch-dependent bug (a fixed batch dimension, a
    broadcast over the batch) shows up in the batch it breaks, not diluted in the overall metrics.
    """
    per_batch: dict[str, Any] = {}
    failures: list[str] = []
    for i, b in enumerate(batches):
        m = parity_metrics(*run.batch(i))
        fails = tolerances.failures(m)
        per_batch[str(b)] = {**m.to_dict(), "passed": not fails, "ort_seconds": round(run.candidate_seconds[i], 4)}
        failures += [f"batch {b}: {f}" for f in fails]
    return per_batch, failures


def infer_batched(runner: Any, x: np.ndarray) -> np.ndarray:
    """Run a batch, splitting/padding it for runners whose model has a fixed batch size."""
    shape = runner.input_meta().shape
    fixed = shape[0] if shape and isinstance(shape[0], int) and shape[0] > 0 else None
    if not fixed or fixed == len(x):
        return np.asarray(runner.infer(x), dtype=np.float32).reshape(len(x), -1)
    outs = []
    for i in range(0, len(x), fixed):
        chunk = x[i:i + fixed]
        n = len(chunk)
        if n < fixed:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed - n, axis=0)])
        outs.append(np.asarray(runner.infer(chunk), dtype=np.float32).reshape(fixed, -1)[:n])
    return np.concatenate(outs)


Side = Any  # a RunnerConfig, a Runner, or a callable batch -> logits (PyTorch's model in export parity)


def compare_runners(reference: Side, candidate: Side, batches: Iterable[Any], *,
                    on_first: Callable[[np.ndarray], None] | None = None,
                    candidate_error: Callable[[ResdeployError], BaseException] | None = None,
                    candidate_inputs: Callable[[Any], Any] | None = None) -> RunComparison:
    """Run ``reference`` and ``candidate`` on each batch (an array, or an object with ``inputs``/``labels``).

    Runners are loaded (reference first) and closed here. ``on_first`` sees the first
    reference outputs before the rest run (validate checks the labels against the class
    count there); ``candidate_error`` turns an error of the candidate into another one.
    ``candidate_inputs`` maps a batch to what the candidate is fed instead of the
    reference's inputs (validate: the decoded images, for a model with its preprocessing
    in the graph); the samples must be the same ones, in the same order.
    """
    with contextlib.ExitStack() as stack:
        ref = _activate(reference, stack)
        try:
            cand = _activate(candidate, stack)
        except ResdeployError as exc:
            if candidate_error is None:
                raise
            raise candidate_error(exc) from None
        return compare_batches(ref, cand, batches, on_first=on_first, candidate_error=candidate_error,
                               candidate_inputs=candidate_inputs)


def compare_batches(reference: Side, candidate: Side, batches: Iterable[Any], *,
                    on_first: Callable[[np.ndarray], None] | None = None,
                    candidate_error: Callable[[ResdeployError], BaseException] | None = None,
                    candidate_inputs: Callable[[Any], Any] | None = None) -> RunComparison:
    """``compare_runners`` on sides the caller has loaded and keeps open: loaded runners or callables.

    The one per-batch comparison step: ``compare_runners`` calls it after loading, and
    ``validate --ray``'s workers call it on each shard with the runners they keep for the
    next one, so both give the same per-sample outputs for the same batch.
    """
    ref_run, cand_run = _as_function(reference), _as_function(candidate)
    refs: list[np.ndarray] = []
    cands: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    sizes: list[int] = []
    seconds: list[float] = []
    for batch in batches:
        x = getattr(batch, "inputs", batch)
        y = getattr(batch, "labels", None)
        r = ref_run(x)
        t0 = time.perf_counter()
        try:
            c = cand_run(x if candidate_inputs is None else candidate_inputs(batch))
        except ResdeployError as exc:
            if candidate_error is None:
                raise
            raise candidate_error(exc) from None
        seconds.append(time.perf_counter() - t0)
        if r.shape != c.shape:
            raise ResdeployError(f"the candidate gives outputs of shape {c.shape[1:]}, the reference {r.shape[1:]}: "
                                 "they are not the same model")
        if not refs and on_first is not None:
            on_first(r)
        refs.append(r)
        cands.append(c)
        sizes.append(len(r))
        if y is not None:
            labels.append(np.asarray(y))
    if not refs:
        raise ResdeployError("nothing to compare: no batches")
    return RunComparison(np.concatenate(refs), np.concatenate(cands), np.concatenate(labels) if labels else None,
                         sizes, seconds)


def _activate(side: Side, stack: contextlib.ExitStack) -> Side:
    """One side made ready: a RunnerConfig's runner created, a runner entered on ``stack``."""
    from resdeploy.runners.base import Runner, RunnerConfig

    if isinstance(side, RunnerConfig):
        from resdeploy.runners import create_runner

        side = create_runner(side)
    if isinstance(side, Runner):
        stack.enter_context(side)
    return side


def _as_function(side: Side) -> Callable[[np.ndarray], np.ndarray]:
    """A batch -> float32 [batch, outputs] function for a loaded runner or a callable."""
    from resdeploy.runners.base import Runner

    if isinstance(side, Runner):
        runner = side
        return lambda x: infer_batched(runner, x)
    if callable(side):
        return lambda x: np.asarray(side(x), dtype=np.float32).reshape(len(x), -1)
    raise TypeError(f"cannot compare with {type(side).__name__}")
