"""BenchConfig refuses non-finite numbers from library callers (the CLI checks its own flags)."""

from __future__ import annotations

import math

import pytest

from resdeploy.benchmark import BenchConfig
from resdeploy.errors import ResdeployError


@pytest.mark.parametrize("field, value, flag", [
    ("qps", math.nan, "--qps"),
    ("qps", math.inf, "--qps"),
    ("slo_ms", math.nan, "--slo-ms"),
    ("duration", math.inf, "--duration"),
    ("duration", math.nan, "--duration"),
    ("warmup_seconds", math.nan, "--warmup-seconds"),
])
def test_non_finite_numbers_are_refused_before_anything_runs(field: str, value: float, flag: str) -> None:
    kw: dict[str, object] = {"model": "unused.onnx", "scenario": "server", "qps": 10.0}
    kw[field] = value
    with pytest.raises(ResdeployError, match=f"{flag} must be a finite number"):
        BenchConfig(**kw).validate()  # type: ignore[arg-type]


def test_finite_server_settings_still_pass() -> None:
    BenchConfig(model="unused.onnx", scenario="server", qps=10.0, slo_ms=50.0, duration=1.0).validate()
