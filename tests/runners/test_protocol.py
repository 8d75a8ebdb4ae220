"""The runner protocol: engine facts live in the runner classes, and a new engine is one class.

A test-only engine (``numpy``: a fixed random projection of the pooled image) is added
to the registry the way docs/architecture.md says, and bench, validate and info use it
without any other change. The real runners are checked for what each must declare.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from resdeploy import runners
from resdeploy.errors import MissingDependencyError, ResdeployError
from resdeploy.runners.base import Availability, Runner, RunnerConfig, RunnerOptions, TensorMeta


@dataclass
class NumpyOptions(RunnerOptions):
    classes: int = 10


class NumpyRunner(Runner):
    """A stand-in engine: logits = pooled channels x a seeded matrix."""

    engine = "numpy"
    Options = NumpyOptions
    precisions = ("fp32",)
    install_hint = "nothing to install"

    def _load(self) -> None:
        assert isinstance(self.options, NumpyOptions)
        self._w = np.random.default_rng(0).standard_normal((3, self.options.classes)).astype(np.float32)
        self._meta = TensorMeta("input", ("batch", 3, 32, 32))

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        return batch.mean(axis=(2, 3)) @ self._w


@pytest.fixture
def numpy_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(runners.RUNNERS, "numpy", f"{__name__}:NumpyRunner")


def test_every_engine_declares_its_facts() -> None:
    for name in runners.RUNNERS:
        cls = runners.runner_class(name)
        assert cls.engine == name and issubclass(cls.Options, RunnerOptions)
        assert cls.precisions and cls.install_hint, name
        probe = cls.probe()
        assert isinstance(probe, Availability) and probe.engine == name
        assert probe.available or probe.note, name
    # a device's subclass comes from the class, not from a second registry
    assert runners.runner_class("ort", "cuda:0").__name__ == "OrtCudaRunner"
    assert "ep" in runners.runner_class("ort").Options.names()


def test_inputs_are_checked_once_in_the_base_class(numpy_engine: None) -> None:
    with runners.create_runner(RunnerConfig(engine="numpy", model="-")) as r:
        assert r.infer(np.ones((2, 3, 32, 32), np.float32)).shape == (2, 10)
        with pytest.raises(ResdeployError, match=r"does not fit the numpy model .*expected \[N, 3, 32, 32\]"):
            r.infer(np.ones((2, 3, 16, 16), np.float32))
        with pytest.raises(ResdeployError, match="0 samples"):
            r.infer(np.ones((0, 3, 32, 32), np.float32))
    runner = runners.create_runner(RunnerConfig(engine="numpy", model="-"))
    with pytest.raises(ResdeployError, match="not loaded"):
        runner.infer(np.ones((1, 3, 32, 32), np.float32))
    runner.activate()
    assert runner.loaded
    runner.deactivate()
    assert not runner.loaded


def test_a_new_engine_is_benched_and_validated_without_other_changes(numpy_engine: None,
                                                                     tiny_onnx: tuple[Path, object]) -> None:
    import resdeploy

    path, _ = tiny_onnx
    res = resdeploy.bench(path, engines=["ort", "numpy"], batches=[2], iterations=2, duration=0.0,
                          warmup_iterations=1)
    assert [r.engine for r in res.runs] == ["ort", "numpy"]
    v = resdeploy.validate(path, engine="numpy", reference=str(path), data="synthetic:4", input_size=32)
    assert v.samples == 4 and v.gates and all(g.samples == 4 for g in v.gates)
    assert resdeploy.machine.engines_info()[-1]["engine"] == "numpy"  # info lists it too


def test_bench_preflight_fails_before_anything_is_measured(numpy_engine: None, tiny_onnx: tuple[Path, object],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import resdeploy
    from resdeploy import benchmark

    def missing(cls, device: str = "cpu", options: object = None) -> None:  # noqa: ANN001
        raise MissingDependencyError("engine 'numpy'", cls.install_hint)

    measured: list[str] = []
    monkeypatch.setattr(NumpyRunner, "check_available", classmethod(missing))
    monkeypatch.setattr(benchmark, "measure", lambda runner, *a, **k: measured.append(runner.engine))
    with pytest.raises(MissingDependencyError, match="nothing to install"):
        resdeploy.bench(tiny_onnx[0], engines=["ort", "numpy"], batches=[1], iterations=1, duration=0.0)
    assert measured == []


def test_stages_share_one_calling_convention() -> None:
    import resdeploy

    for name in ("export", "quantize", "validate", "bench", "build", "report"):
        params = list(inspect.signature(getattr(resdeploy, name)).parameters.values())
        assert [p.name for p in params[:2]] == ["source", "config"], name
        assert params[1].default is None, name
        reporter = inspect.signature(getattr(resdeploy, name)).parameters["reporter"]
        assert reporter.kind is inspect.Parameter.KEYWORD_ONLY and reporter.default is None, name
    for cfg in (resdeploy.ExportConfig(), resdeploy.QuantizeConfig(precision="fp16"), resdeploy.BuildConfig(),
                resdeploy.BenchConfig(model="m"), resdeploy.ReportConfig()):
        cfg.check()
    with pytest.raises(ResdeployError, match="validate needs data"):
        resdeploy.ValidateConfig().check()
