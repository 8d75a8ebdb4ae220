"""How inferences are issued and timed: the closed loop, and MLPerf's three scenarios on top of it.

* ``sweep`` (default): back-to-back inferences at every ``--batch``, the trtexec /
  benchmark_app way; reports the full latency distribution and throughput.
* ``single-stream``: batch 1, one query after the other; the headline is p90 latency.
* ``offline``: back-to-back at every ``--batch``; the headline is the highest throughput.
* ``server``: queries arrive as a Poisson process at ``--qps`` whether or not the engine
  is free; latency runs from arrival to completion (queueing included), and the headline
  is achieved QPS and p99 against ``--slo-ms``.

Timing: CUDA events around each inference on a GPU (what the device did, not when
Python noticed), ``time.perf_counter`` on a CPU. Either way each iteration ends with the
runner's ``synchronize``, so an asynchronous engine is never timed at its launch.
The loop runs until both the iteration minimum and the duration minimum are met, with
the same semantics as trtexec's ``--iterations`` and ``--duration``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from resdeploy.errors import ResdeployError

SCENARIOS = ("sweep", "single-stream", "offline", "server")


@dataclass(frozen=True)
class LoopLimits:
    """Run until at least ``iterations`` AND at least ``seconds`` (either may be 0, not both)."""

    iterations: int
    seconds: float

    def check(self, what: str) -> None:
        if self.iterations < 0 or self.seconds < 0:
            raise ResdeployError(f"{what} iterations and seconds must be >= 0")
        if self.iterations == 0 and self.seconds == 0:
            raise ResdeployError(f"{what} has zero iterations and zero duration: give at least one of them")


class Timer:
    """Times one call: ``perf_counter`` around call + synchronize (CPU, or GPU without torch)."""

    kind = "perf_counter"

    def __init__(self, synchronize: Callable[[], None]) -> None:
        self._sync = synchronize

    def time_ms(self, fn: Callable[[], Any]) -> float:
        t0 = time.perf_counter()
        fn()
        self._sync()
        return (time.perf_counter() - t0) * 1e3


class CudaEventTimer(Timer):
    """Times one call with a pair of CUDA events recorded around it on the current stream.

    The runner's synchronize sits inside the pair, so engines that run on their own
    stream (ONNX Runtime's CUDA provider) are fully covered too.
    """

    kind = "cuda_events"

    def __init__(self, synchronize: Callable[[], None], device: str) -> None:
        super().__init__(synchronize)
        import torch

        self._torch = torch
        with torch.cuda.device(torch.device(device)):
            self._start = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)

    def time_ms(self, fn: Callable[[], Any]) -> float:
        self._start.record()
        fn()
        self._sync()
        self._end.record()
        self._end.synchronize()
        return float(self._start.elapsed_time(self._end))


def make_timer(device: str, synchronize: Callable[[], None]) -> Timer:
    """CUDA events when the device is a GPU and torch can record them; perf_counter otherwise."""
    if device.startswith("cuda"):
        try:
            import torch

            if torch.cuda.is_available():
                return CudaEventTimer(synchronize, device)
        except ImportError:
            pass
    return Timer(synchronize)


def closed_loop(run: Callable[[int], Any], timer: Timer, limits: LoopLimits,
                progress: Callable[[int, float], None] | None = None) -> tuple[np.ndarray, float]:
    """Back-to-back inferences; returns per-inference latencies (ms) and the wall time (s).

    ``run(i)`` performs inference ``i`` (the caller rotates input buffers by ``i``).
    Wall time spans the first start to the last end, so throughput includes the
    loop's own overhead, as a serving loop would. ``progress(done, elapsed)`` is called
    at most every 0.25 s (outside the timed calls).
    """
    lat: list[float] = []
    t_start = time.perf_counter()
    shown = t_start
    i = 0
    while True:
        lat.append(timer.time_ms(functools.partial(run, i)))
        i += 1
        now = time.perf_counter()
        elapsed = now - t_start
        if progress is not None and now - shown >= 0.25:
            progress(i, elapsed)
            shown = now
        if i >= limits.iterations and elapsed >= limits.seconds:
            break
    return np.asarray(lat, dtype=np.float64), time.perf_counter() - t_start


def warm_up(run: Callable[[int], Any], synchronize: Callable[[], None], limits: LoopLimits) -> int:
    """Untimed inferences until both warm-up minimums are met; returns how many ran."""
    t_start = time.perf_counter()
    i = 0
    while i < limits.iterations or time.perf_counter() - t_start < limits.seconds:
        run(i)
        synchronize()
        i += 1
    return i


def _sleep_until(deadline: float) -> None:
    """Sleep to within ~0.5 ms of a perf_counter deadline, then spin (time.sleep overshoots)."""
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            return
        if left > 0.002:
            time.sleep(left - 0.001)


def server_time_limit(qps: float, limits: LoopLimits) -> float:
    """When a server run gives up on an engine that cannot keep up (seconds after the start).

    Twice the time the run should take, plus 5 s. The run should take ``--duration`` or,
    if longer, the time Poisson arrivals at ``qps`` need to offer ``--iterations`` queries:
    at 2 QPS, 20 queries take 10 s, and stopping at 2 x 1 s + 5 s called an idle engine
    overloaded.
    """
    return 2 * max(limits.seconds, limits.iterations / qps) + 5.0


def server_loop(
    run: Callable[[int], Any],
    synchronize: Callable[[], None],
    *,
    qps: float,
    limits: LoopLimits,
    seed: int = 0,
) -> tuple[np.ndarray, float, dict[str, Any]]:
    """Poisson arrivals at ``qps`` served one at a time; latency = completion - arrival.

    A query that arrives while the engine is busy waits in the queue, and that wait is
    part of its latency, as in MLPerf's server scenario. When the engine cannot keep
    up the queue grows without bound: the loop then stops after twice the run's expected
    length (plus 5 s, see ``server_time_limit``) and says ``overloaded``, instead of
    running forever.

    Overload is judged against the load actually offered (queries over the last
    arrival time), not the nominal ``qps``: a short Poisson run offers 10-20% more or
    less than nominal by chance, and an idle engine must not be called overloaded.
    A stable server finishes each query shortly after it arrives, so achieved and
    offered rates agree; a saturated one falls behind and its backlog shows here.
    """
    if qps <= 0:
        raise ResdeployError("--qps must be > 0 for the server scenario")
    rng = np.random.default_rng(seed)
    lat: list[float] = []
    service: list[float] = []
    hard_stop = server_time_limit(qps, limits)
    t0 = time.perf_counter()
    arrival = 0.0
    last_arrival = 0.0
    done = 0.0
    i = 0
    overloaded = False
    while True:
        last_arrival = arrival
        _sleep_until(t0 + arrival)
        s0 = time.perf_counter()
        run(i)
        synchronize()
        end = time.perf_counter()
        done = end - t0
        lat.append((done - arrival) * 1e3)
        service.append((end - s0) * 1e3)
        i += 1
        arrival += float(rng.exponential(1.0 / qps))
        if i >= limits.iterations and arrival >= limits.seconds:
            break
        if done > hard_stop:
            overloaded = True
            break
    achieved = i / done if done > 0 else 0.0
    # i queries arrived over [0, last_arrival] plus one mean inter-arrival gap.
    offered = i / (last_arrival + 1.0 / qps)
    if achieved < 0.95 * offered:
        overloaded = True
    summary = {
        "target_qps": qps,
        "offered_qps": offered,
        "achieved_qps": achieved,
        "queries": i,
        "service_p50_ms": float(np.percentile(service, 50)),
        "overloaded": overloaded,
    }
    return np.asarray(lat, dtype=np.float64), done, summary
