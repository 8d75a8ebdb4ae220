"""An INT8 variant that meets an accuracy budget by itself: automatic mixed precision.

``quantize --val-data V --max-top1-drop D`` (or any of validate's gates as budgets)
first validates plain INT8 on V with exactly ``validate``'s gates: when it passes, that
*is* the result (one validation, zero layers kept in FP32). Otherwise it keeps the most
sensitive layers in FP32, in the groups engines fuse (``revert.fusable_groups``: a Conv
with the residual Add it feeds), and searches how many it needs with few full
validations:

1. rank the layers by the error their quantization alone adds (``layers.layer_errors``,
   on calibration samples, never on V);
2. gallop (1, 2, 4, ... of the top-ranked groups) until the gate passes, then bisect
   between the last failing and the first passing count: that assumes the error is
   roughly monotone in the ranking, which holds when a few layers dominate;
3. prune: drop each kept group in turn, least sensitive first, and keep it out when the
   gate still passes (bisection over-counts when the ranking is not exactly right).

``--max-trials`` caps the validations of all three steps. Each trial's gates are
recorded, and the speed cost of the kept layers against full INT8 is measured on this
host with ``bench``'s harness. When no trial meets the budget, the best one is written
and the caller exits 1 (``GateFailure``).

Trials are plain ``validate`` runs on a temporary variant whose manifest names the FP32
parent, so the gates, labels checks and warnings are validate's own, not a copy.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from resdeploy.console import Reporter
from resdeploy.errors import ResdeployError

DEFAULT_MAX_TRIALS = 8
_RANK_SAMPLES = 64  # calibration samples the per-layer ranking runs on


@dataclass
class Budget:
    """The gates INT8 must pass on held-out data (validate's flags), and the search cap."""

    val_data: str | None = None
    max_top1_drop: float | None = None
    min_top1_ratio: float | None = None
    min_agreement: float | None = None
    min_cosine: float | None = None
    max_abs_error: float | None = None
    val_samples: int | None = None
    labels: str | None = None
    max_trials: int = DEFAULT_MAX_TRIALS

    def gates_given(self) -> bool:
        return any(v is not None for v in (self.max_top1_drop, self.min_top1_ratio, self.min_agreement,
                                            self.min_cosine, self.max_abs_error))

    def check(self) -> None:
        """Bad budgets as one line (exit 2), before any calibration runs."""
        if not self.val_data:
            raise ResdeployError("an accuracy budget needs held-out data: pass --val-data (a labelled image folder "
                                 "or .npz), not the calibration data")
        if isinstance(self.max_trials, bool) or not isinstance(self.max_trials, int) or self.max_trials < 1:
            raise ResdeployError(f"--max-trials must be a positive integer (full validations allowed), "
                                 f"got {self.max_trials}")
        from resdeploy.data import check_source

        check_source(self.val_data)
        self.validate_config().check()

    def validate_config(self) -> Any:
        from resdeploy.validation import ValidateConfig

        return ValidateConfig(data=self.val_data, samples=self.val_samples, labels=self.labels,
                              max_top1_drop=self.max_top1_drop, min_top1_ratio=self.min_top1_ratio,
                              min_agreement=self.min_agreement, min_cosine=self.min_cosine,
                              max_abs_error=self.max_abs_error)


@dataclass
class Trial:
    """One full validation of a candidate with ``kept`` groups in FP32."""

    index: int
    step: str  # plain | gallop | bisect | prune
    kept: list[str]  # lead node of each group kept in FP32
    passed: bool
    top1_drop_points: float | None
    gates: list[dict[str, Any]]
    seconds: float


@dataclass
class BudgetOutcome:
    """What the search found; ``model`` is the chosen graph (a ModelProto)."""

    met: bool
    model: Any
    kept: list[str]
    trials: list[Trial] = field(default_factory=list)
    ranking: list[dict[str, Any]] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)


def _shortfall(trial: Trial) -> tuple[int, float]:
    """How far a trial is from passing: failed gates, then their summed relative miss."""
    miss = 0.0
    failed = 0
    for g in trial.gates:
        if g["passed"]:
            continue
        failed += 1
        gap = (g["threshold"] - g["value"]) if g["op"] == ">=" else (g["value"] - g["threshold"])
        miss += max(0.0, float(gap)) / max(abs(float(g["threshold"])), 1e-9)
    return failed, miss


def search(groups: list[list[str]], evaluate: Callable[[int, list[int], str], Trial], max_trials: int
           ) -> tuple[list[int], Trial | None, list[Trial]]:
    """Which of the ranked ``groups`` (indices) to keep in FP32, with at most ``max_trials`` evaluations.

    ``evaluate(trial_index, kept_indices, step)`` validates one candidate. Returns the
    kept indices of the chosen trial (a passing one when any passed, else the best) and
    chosen trial and every trial run.
    """
    trials: list[Trial] = []
    cache: dict[tuple[int, ...], Trial] = {}

    def run(kept: list[int], step: str) -> Trial | None:
        key = tuple(sorted(kept))
        if key in cache:
            return cache[key]
        if len(trials) >= max_trials:
            return None
        t = evaluate(len(trials), sorted(kept), step)
        trials.append(t)
        cache[key] = t
        return t

    first = run([], "plain")
    if first is None or first.passed:
        return [], first, trials
    n = len(groups)
    lo, hi, k = 0, None, 1
    while k <= n:
        t = run(list(range(k)), "gallop")
        if t is None:
            break
        if t.passed:
            hi = k
            break
        lo = k
        if k == n:
            break
        k = min(2 * k, n)
    if hi is None:
        best = min(cache.items(), key=lambda kv: _shortfall(kv[1]))
        return list(best[0]), best[1], trials
    while hi - lo > 1:
        mid = (lo + hi) // 2
        t = run(list(range(mid)), "bisect")
        if t is None:
            break
        if t.passed:
            hi = mid
        else:
            lo = mid
    kept = list(range(hi))
    for g in sorted(kept, reverse=True):  # least sensitive first
        if len(kept) <= 1:
            break
        t = run([i for i in kept if i != g], "prune")
        if t is None:
            break
        if t.passed:
            kept = [i for i in kept if i != g]
    return kept, cache[tuple(kept)], trials


def meet_budget(budget: Budget, *, fp32_path: Path, pre_path: Path, int8_path: Path, preprocess: dict[str, Any],
                rank_inputs: np.ndarray, node_modules: dict[str, str], work_dir: Path,
                reporter: Reporter, fp32_sha256: str | None = None) -> BudgetOutcome:
    """Validate plain INT8 against ``budget``; if it fails, keep ranked layer groups in FP32 until it passes.

    ``fp32_path`` is the FP32 parent (validate's reference), ``pre_path`` the
    pre-processed FP32 graph the INT8 one was quantized from (same node names; the
    source of the FP32 weights), ``int8_path`` plain INT8. Raises ResdeployError for
    bad validation data (labels not the model's, ...): validate's own checks.
    """
    import onnx

    from resdeploy.artifacts import Lineage, Manifest, sha256_file
    from resdeploy.precision.layers import layer_errors
    from resdeploy.precision.revert import fusable_groups, revert
    from resdeploy.validation import validate

    int8 = onnx.load(os.fspath(int8_path))
    fp32 = onnx.load(os.fspath(pre_path))
    vcfg = budget.validate_config()
    fp32_sha = fp32_sha256 or sha256_file(Path(fp32_path))
    state: dict[str, Any] = {"ranked": None, "groups": []}

    def candidate(kept: list[int]) -> Any:
        names = [n for i in kept for n in state["groups"][i]]
        return revert(int8, fp32, names) if names else int8

    def evaluate(index: int, kept: list[int], step: str) -> Trial:
        trial_dir = work_dir / f"trial-{index}"
        trial_dir.mkdir(parents=True, exist_ok=True)
        onnx.save(candidate(kept), os.fspath(trial_dir / "model.onnx"))
        # validate finds the FP32 reference through this manifest's lineage, as for a written variant
        Manifest.for_file(trial_dir / "model.onnx", stage="quantize", precision="int8", preprocess=preprocess,
                          parent=Lineage.of(Path(fp32_path), trial_dir, sha256=fp32_sha, precision="fp32"),
                          ).write(trial_dir)
        t0 = time.perf_counter()
        res = validate(trial_dir / "model.onnx", config=vcfg)
        leads = [state["groups"][i][0] for i in kept]
        trial = Trial(index=index, step=step, kept=leads, passed=bool(res.passed),
                      top1_drop_points=None if res.top1_drop_points is None else round(res.top1_drop_points, 4),
                      gates=[asdict(g) for g in res.gates], seconds=round(time.perf_counter() - t0, 3))
        drop = "" if trial.top1_drop_points is None else f", top-1 drop {trial.top1_drop_points:.2f} points"
        reporter.info(f"trial {index + 1}/{budget.max_trials} ({step}): {len(kept)} layer group(s) in FP32"
                      f"{drop}: {'pass' if trial.passed else 'fail'}")
        return trial

    # Plain INT8 first: when it passes, nothing else runs (not even the ranking).
    plain = evaluate(0, [], "plain")
    if plain.passed:
        return BudgetOutcome(met=True, model=int8, kept=[], trials=[plain])
    with reporter.step(f"ranking layers by the error their quantization alone adds ({len(rank_inputs)} samples)"):
        rows = layer_errors(int8, fp32, rank_inputs, node_modules=node_modules)
    state["ranked"] = rows
    state["groups"] = [g.nodes for g in fusable_groups(int8, [r.node for r in rows])]

    replay = {(): plain}

    def evaluate_cached(index: int, kept: list[int], step: str) -> Trial:
        if not kept and () in replay:
            return replay[()]
        return evaluate(index, kept, step)

    kept, chosen, trials = search(state["groups"], evaluate_cached, budget.max_trials)
    assert chosen is not None  # the plain trial always ran
    ranking = [{"node": r.node, "module": r.module, "op_type": r.op_type, "isolated_sqnr_db": r.isolated_sqnr_db}
               for r in rows]
    return BudgetOutcome(met=chosen.passed, model=candidate(kept), kept=[state["groups"][i][0] for i in kept],
                         trials=trials, ranking=ranking,
                         groups={state["groups"][i][0]: state["groups"][i] for i in kept})


def speed_cost(full_int8: Path, mixed: Path, *, reporter: Reporter) -> dict[str, Any]:
    """Latency of the mixed variant against full INT8, measured here with ``bench``'s harness (batch 1)."""
    from resdeploy.benchmark import BenchConfig, bench
    from resdeploy.machine import cpu_flags, cpu_model

    out: dict[str, Any] = {"engine": "ort", "batch": 1}
    with reporter.step("timing the kept layers' cost against full INT8 (bench harness, batch 1)"):
        for key, path in (("int8", full_int8), ("mixed", mixed)):
            res = bench(BenchConfig(model=str(path), engines=["ort"], batches=[1], iterations=20, duration=1.0,
                                    warmup_iterations=5, keep_latencies=False))
            out[f"{key}_p50_ms"] = round(res.runs[0].latency.p50_ms, 4)
    out["slowdown"] = round(out["mixed_p50_ms"] / max(out["int8_p50_ms"], 1e-9), 3)
    out["host"] = {"cpu": cpu_model(), "flags": cpu_flags(), "cpus": os.cpu_count()}
    return out


def apply_budget(budget: Budget, *, src: Any, calib_data: str | None, seed: int, work_dir: Path, int8_path: Path,
                 info: dict[str, Any], reporter: Reporter) -> dict[str, Any]:
    """quantize's one call: search, replace ``int8_path`` by the chosen graph, update ``info``; the manifest record.

    ``src`` is quantize's SourceModel; ``work_dir`` holds ``preprocessed.onnx`` (the graph
    ``int8_path`` was quantized from). The ranking runs on calibration samples; with saved
    ranges (no calibration data) on the first validation samples.
    """
    import shutil

    import onnx

    from resdeploy.data import open_data
    from resdeploy.onnx_io import static_sample_shape
    from resdeploy.precision import int8 as int8_mod
    from resdeploy.precision.layers import node_modules_of

    pre = work_dir / "preprocessed.onnx"
    rank_source = calib_data or budget.val_data
    assert rank_source is not None
    ds = open_data(rank_source, src.preprocess, samples=_RANK_SAMPLES, seed=seed, reporter=reporter,
                   tensor_shape=static_sample_shape(src.path))
    rank_inputs, _ = ds.load(reporter, description="ranking samples")
    full = work_dir / "full-int8.onnx"
    shutil.copyfile(int8_path, full)
    outcome = meet_budget(budget, fp32_path=src.path, pre_path=pre, int8_path=full,
                          preprocess=src.preprocess.to_dict(), rank_inputs=rank_inputs,
                          node_modules=node_modules_of(src.manifest or {}, onnx.load(os.fspath(pre))),
                          work_dir=work_dir / "trials", reporter=reporter, fp32_sha256=src.sha256)
    onnx.save(outcome.model, os.fspath(int8_path))
    chosen = next(t for t in outcome.trials if sorted(t.kept) == sorted(outcome.kept))
    record: dict[str, Any] = {
        "met": outcome.met,
        "gates": chosen.gates,
        "top1_drop_points": chosen.top1_drop_points,
        "val_data": budget.val_data,
        "max_trials": budget.max_trials,
        "full_validations": len(outcome.trials),
        "kept_fp32": [{"node": lead, "module": (node_modules_of(src.manifest or {}) or {}).get(lead),
                       "group": outcome.groups.get(lead, [lead])} for lead in outcome.kept],
        "trials": [asdict(t) for t in outcome.trials],
        "ranking": outcome.ranking[:20],
        "speed_cost": None,
    }
    if outcome.kept:
        model = onnx.load(os.fspath(int8_path))
        info["quantized_ops"] = int8_mod.quantized_ops(model)
        adds = int8_mod.add_input_quantization(model)
        info["residual_adds"] = {"count": len(adds), "both_inputs_quantized": sum(all(q) for _, q in adds)}
        bench_dir = work_dir / "bench"
        for name, path in (("int8", full), ("mixed", int8_path)):
            (bench_dir / name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, bench_dir / name / "model.onnx")
        try:
            record["speed_cost"] = speed_cost(bench_dir / "int8" / "model.onnx", bench_dir / "mixed" / "model.onnx",
                                              reporter=reporter)
        except ResdeployError as exc:  # the variant is sound; only the timing could not run here
            reporter.warn(f"speed cost not measured: {exc}")
            record["speed_cost"] = {"error": str(exc)}
    return record


__all__ = ["apply_budget", "DEFAULT_MAX_TRIALS", "Budget", "BudgetOutcome", "Trial", "meet_budget", "search", "speed_cost"]
