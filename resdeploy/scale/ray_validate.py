"""``validate --ray``: one variant over a large data set, sharded over a Ray cluster with Ray Data.

How it stays the same ValidateResult as a run in one process, bit for bit:

- ``resdeploy.validation.validate`` does everything before and after running the models
  (resolving the reference, opening the data, gates, the result); only its ``executor``
  is replaced, so nothing of that is written twice.
- A shard is exactly one of the in-process run's batches (positions ``k*B .. (k+1)*B`` of
  the data's sorted or seeded order), batched by ``Dataset.batches`` and compared by
  ``compare.compare_batches``, the comparison step ``compare.compare_runners`` runs in one
  process. The same tensors through the same sessions in the same batch give the same logits.
- The driver puts the shards' ``RunComparison`` back in order (``RunComparison.join``) and
  keeps each shard once (by its index), so a shard recomputed after a worker died is never
  counted twice.

Files that fail to load are replaced by the next ones, as in one process: a round of
extra shards follows when some were skipped. Then a batch can hold other samples than in
one process, which changes nothing for engines whose per-sample results do not depend on
the batch (ONNX Runtime's CPU convolutions), but the bit-for-bit promise is for data
without unreadable files.

Workers are a Ray Data actor pool (``map_batches`` with ``concurrency``); each actor loads
one reference and one candidate runner once, with ``--threads`` threads each. Ray restarts
an actor that dies and retries the shards it held.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from resdeploy.compare import RunComparison
from resdeploy.console import Reporter
from resdeploy.errors import ResdeployError, check_positive_int


@dataclasses.dataclass
class _Shard:
    """What one worker sends back for one shard: its comparison (None when every file failed), what it skipped."""

    index: int
    positions: list[int]
    comparison: RunComparison | None
    skipped: list[tuple[int, str, str]]  # (position, name, reason)
    pid: int


class _ValidateWorker:
    """One Ray Data actor: a reference and a candidate runner, loaded once, reused for every shard."""

    def __init__(self, dataset: Any, ref_cfg: Any, cand_cfg: Any) -> None:
        from resdeploy.runners import create_runner

        self.ds = dataset
        self.ref = create_runner(ref_cfg).__enter__()
        self.cand = create_runner(cand_cfg).__enter__()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = [pickle.dumps(self.shard(int(k), int(a), int(b)))
               for k, a, b in zip(batch["shard"], batch["start"], batch["stop"], strict=True)]
        return {"shard": np.asarray(batch["shard"], dtype=np.int64), "payload": np.asarray(out, dtype=object)}

    def shard(self, index: int, start: int, stop: int) -> _Shard:
        from resdeploy.compare import compare_batches
        from resdeploy.validation import candidate_side, reference_side

        sub = dataclasses.replace(self.ds, items=self.ds.items[start:stop], limit=None, skipped=[],
                                  labels=None if self.ds.labels is None else self.ds.labels[start:stop])
        offset = {sub._name(i): i for i in range(len(sub.items))}  # names are unique within a data set
        try:
            batches = list(sub.batches(stop - start))  # the shard's good samples, batched as in one process
        except ResdeployError:
            if len(sub.skipped) != stop - start:  # "no usable samples" in this shard alone is fine
                raise
            batches = []
        skipped = [(start + offset.get(n, 0), n, why) for n, why in sub.skipped]
        if not batches:
            return _Shard(index, [], None, skipped, os.getpid())
        positions = [start + offset[name] for b in batches for name in b.names]
        # Runners stay loaded for the next shard: compare_batches, not compare_runners (which closes them).
        # `sub`, not self.ds: the decoded images a raw-image candidate gets are named within the shard.
        cand, feed = candidate_side(self.cand, sub)
        return _Shard(index, positions, compare_batches(reference_side(self.ref, self.ds), cand, batches,
                                                        candidate_inputs=feed), skipped, os.getpid())


def _shards(start: int, stop: int, batch: int, first_index: int) -> list[dict[str, int]]:
    return [{"shard": first_index + i, "start": a, "stop": min(a + batch, stop)}
            for i, a in enumerate(range(start, stop, batch))]


@dataclasses.dataclass
class RayExecutor:
    """Runs ``validate``'s models on a Ray Data actor pool; pass it as ``validate(..., executor=)``.

    ``workers``: actors in the pool (default: the cluster's CPUs // threads, at least 1);
    ``threads``: CPUs each actor reserves (its runners' threads; default 1).
    """

    workers: int | None = None
    threads: int | None = None
    shard_pids: dict[int, int] = dataclasses.field(default_factory=dict)  # shard -> pid that computed it

    def __call__(self, ds: Any, ref_cfg: Any, cand_cfg: Any, batch_size: int, reporter: Reporter,
                 data_reporter: Reporter, *, on_first: Callable[[np.ndarray], None] | None = None) -> RunComparison:
        import ray

        from resdeploy.scale.cluster import quiet_ray_data

        quiet_ray_data(ray)
        threads = self.threads or 1
        cpus = int(ray.cluster_resources().get("CPU", 1))
        workers = self.workers or max(1, cpus // threads)
        if workers * threads > cpus:  # Ray would wait for CPUs that never come
            raise ResdeployError(f"{workers} Ray worker(s) x {threads} thread(s) need {workers * threads} CPUs; "
                                 f"the cluster has {cpus}", hint="lower --ray-workers or --threads")
        ref_cfg = dataclasses.replace(ref_cfg, threads=threads, model=_absolute(ref_cfg.model))
        cand_cfg = dataclasses.replace(cand_cfg, threads=threads, model=_absolute(cand_cfg.model))
        wanted = len(ds)
        results: dict[int, _Shard] = {}
        reporter.info(f"validating {wanted} samples on Ray: {workers} worker(s) x {threads} thread(s), "
                      f"shards of {batch_size}")
        track = reporter.track(self._rounds(ds, ref_cfg, cand_cfg, batch_size, workers, threads, results),
                               total=wanted, description="validating (ray)")
        for _ in track:
            pass
        # Merge: shards in order; the first `wanted` good samples, as samples() would give them.
        ordered = [results[k] for k in sorted(results)]
        good = [pos for sh in ordered for pos in sh.positions]
        # samples() stops right after the wanted-th good sample: files after it were never tried.
        end = good[wanted - 1] if len(good) >= wanted else None
        skipped = [(name, why) for sh in ordered for pos, name, why in sh.skipped if end is None or pos < end]
        # Rounds add only as many files as samples are missing, so the shards never hold more than `wanted`.
        parts = [sh.comparison for sh in ordered if sh.comparison is not None]
        assert sum(p.samples for p in parts) <= wanted
        ds.skipped = skipped
        if parts and on_first is not None:  # as compare_runners does on the first batch (the label check)
            on_first(parts[0].reference)
        # After the last batch, as Dataset.samples does: the warnings come in the same order.
        ds._report_skipped(data_reporter)
        if not parts:
            raise ResdeployError(
                f"no usable samples in {ds.source}: all {len(skipped)} files failed to load "
                f"(first: {skipped[0][0]}: {skipped[0][1]})" if skipped else f"no usable samples in {ds.source}")
        return RunComparison.join(parts)

    def _rounds(self, ds: Any, ref_cfg: Any, cand_cfg: Any, batch_size: int, workers: int, threads: int,
                results: dict[int, _Shard]) -> Iterator[None]:
        """Yield once per sample computed; more rounds while skipped files left the count short."""
        import ray

        wanted, start, index = len(ds), 0, 0
        stop = min(wanted, len(ds.items))
        # Workers may start in another directory: absolute file paths (the names, relative to root, stay).
        worker_ds = dataclasses.replace(ds, root=ds.root.resolve() if ds.root else None, skipped=[],
                                        items=[i.resolve() if isinstance(i, Path) else i for i in ds.items])
        while start < stop:
            shards = _shards(start, stop, batch_size, index)
            data = ray.data.from_items(shards, override_num_blocks=len(shards))
            mapped = data.map_batches(_ValidateWorker, fn_constructor_kwargs={
                "dataset": worker_ds, "ref_cfg": ref_cfg, "cand_cfg": cand_cfg},
                # Ray Data's actor pools restart a dead actor and retry its tasks by default
                # (max_restarts=-1, max_task_retries=-1): the driver only has to count shards once.
                batch_size=1, compute=ray.data.ActorPoolStrategy(size=min(workers, len(shards))), num_cpus=threads)
            for row in mapped.iter_rows():
                sh: _Shard = pickle.loads(row["payload"])
                if sh.index in results:  # a retried shard delivered twice: count it once
                    continue
                results[sh.index] = sh
                self.shard_pids[sh.index] = sh.pid
                for _ in sh.positions:
                    yield None
            index += len(shards)
            good = sum(len(s.positions) for s in results.values())
            start, stop = stop, min(stop + (wanted - good), len(ds.items))
            if good >= wanted:
                break


def _absolute(model: str) -> str:
    """Workers may run in another directory: hand them absolute paths ('torch' and zoo names stay)."""
    p = Path(model)
    return str(p.resolve()) if p.exists() else model


def validate_on_ray(candidate: str | os.PathLike[str], *, config: Any, address: str | None = None,
                    workers: int | None = None, reporter: Reporter | None = None,
                    executor: RayExecutor | None = None) -> Any:
    """``resdeploy.validate`` with the models run on a Ray cluster; the same ``ValidateResult``.

    ``address``: None or 'local' starts a local Ray for this call; 'auto' or ``host:port``
    connects to a running cluster. ``config.threads`` is each worker's thread count.
    """
    from resdeploy.scale.cluster import ray_session
    from resdeploy.validation import validate

    check_positive_int(workers, "--ray-workers")
    check_positive_int(config.threads, "--threads")
    run = executor or RayExecutor(workers=workers, threads=config.threads)
    with ray_session(address):
        return validate(candidate, config=config, reporter=reporter, executor=run)


__all__ = ["RayExecutor", "validate_on_ray"]
