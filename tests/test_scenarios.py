"""The timing loops: stop conditions, timers, and the server scenario's queueing."""

from __future__ import annotations

import time

import numpy as np
import pytest

from resdeploy.errors import ResdeployError
from resdeploy.scenarios import LoopLimits, Timer, closed_loop, make_timer, server_loop, warm_up


def _sleeper(ms: float):  # noqa: ANN202 - a workload of known duration
    def run(i: int) -> int:
        time.sleep(ms / 1e3)
        return i
    return run


def test_closed_loop_meets_both_minimums() -> None:
    timer = Timer(lambda: None)
    lat, wall = closed_loop(_sleeper(1), timer, LoopLimits(iterations=5, seconds=0.0))
    assert len(lat) == 5 and np.all(lat >= 1.0)
    lat, wall = closed_loop(_sleeper(1), timer, LoopLimits(iterations=1, seconds=0.05))
    assert wall >= 0.05 and len(lat) >= 10  # duration, not the single iteration, ended it
    assert wall * 1e3 >= lat.sum()  # wall time covers every timed inference


def test_timer_counts_synchronize() -> None:
    # An asynchronous engine returns at once and finishes in synchronize: that time must count.
    timer = Timer(lambda: time.sleep(0.003))
    assert timer.time_ms(lambda: None) >= 3.0
    assert make_timer("cpu", lambda: None).kind == "perf_counter"


def test_warm_up_runs_until_both_minimums() -> None:
    calls: list[int] = []
    n = warm_up(calls.append, lambda: None, LoopLimits(iterations=3, seconds=0.0))
    assert n == 3 and calls == [0, 1, 2]
    t0 = time.perf_counter()
    n = warm_up(_sleeper(1), lambda: None, LoopLimits(iterations=0, seconds=0.03))
    assert time.perf_counter() - t0 >= 0.03 and n >= 2


def test_zero_iterations_and_zero_duration_is_an_error() -> None:
    with pytest.raises(ResdeployError, match="zero iterations and zero duration"):
        LoopLimits(0, 0.0).check("the measurement")
    with pytest.raises(ResdeployError):
        LoopLimits(-1, 1.0).check("warm-up")


def test_server_under_capacity_reaches_target_qps() -> None:
    # 1 ms service at 100 QPS: 10% utilisation, so achieved QPS tracks the target.
    lat, wall, summary = server_loop(_sleeper(1), lambda: None, qps=100, limits=LoopLimits(20, 0.4), seed=3)
    assert not summary["overloaded"]
    assert summary["achieved_qps"] == pytest.approx(100, rel=0.5)
    assert np.all(lat >= 1.0)
    assert summary["queries"] == len(lat)


def test_server_short_runs_at_low_load_are_never_called_overloaded(monkeypatch) -> None:  # noqa: ANN001
    # ~15 Poisson arrivals offer anywhere from ~60% to ~150% of the nominal rate by chance;
    # at 10% utilisation none of these runs is overloaded, whatever the draw. On the virtual
    # clock: with real 1 ms sleeps the 10% bound would depend on a busy CI machine's scheduler.
    import resdeploy.scenarios as scenarios

    clock = _VirtualClock()
    monkeypatch.setattr(scenarios, "time", clock)

    def run(i: int) -> int:
        clock.now += 0.001
        return i

    for seed in range(6):
        _, _, summary = server_loop(run, lambda: None, qps=100, limits=LoopLimits(5, 0.15), seed=seed)
        assert not summary["overloaded"], summary
        assert summary["achieved_qps"] == pytest.approx(summary["offered_qps"], rel=0.1)


def test_server_overload_shows_queueing_in_latency() -> None:
    # 4 ms service at 1000 QPS: queries pile up; latency (arrival -> completion) grows far beyond service time.
    lat, wall, summary = server_loop(_sleeper(4), lambda: None, qps=1000, limits=LoopLimits(30, 0.0), seed=0)
    assert summary["overloaded"]
    assert summary["achieved_qps"] < 400
    assert lat[-1] > 5 * summary["service_p50_ms"]
    with pytest.raises(ResdeployError, match="qps"):
        server_loop(_sleeper(1), lambda: None, qps=0, limits=LoopLimits(1, 0.0))


class _VirtualClock:
    """Stands in for the time module inside scenarios: sleeping and work advance a virtual clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 1e-6  # each reading takes a moment, so the last-millisecond spin ends
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)


def test_server_at_low_qps_is_not_overloaded_when_the_iteration_minimum_outlasts_the_duration(monkeypatch) -> None:  # noqa: ANN001,E501
    import resdeploy.scenarios as scenarios

    clock = _VirtualClock()
    monkeypatch.setattr(scenarios, "time", clock)

    def run(i: int) -> int:  # 1 ms of work per query: an idle engine at 2 QPS
        clock.now += 0.001
        return i

    # 20 queries at 2 QPS need ~10 s of arrivals, far past 2 x --duration + 5 s.
    lat, _, summary = server_loop(run, lambda: None, qps=2, limits=LoopLimits(20, 1.0), seed=0)
    assert summary["queries"] == 20 and not summary["overloaded"], summary
    assert float(np.max(lat)) < 5.0
    assert scenarios.server_time_limit(2, LoopLimits(20, 1.0)) >= 2 * 10
    assert scenarios.server_time_limit(100, LoopLimits(20, 3.0)) == pytest.approx(2 * 3.0 + 5)
