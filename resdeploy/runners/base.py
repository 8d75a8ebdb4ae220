"""The one runner interface every engine implements, used by bench and validate alike.

After Polygraphy's runners: a context manager that loads on enter and frees on
exit, describes its input, and runs one batch. Timing, statistics, data and
comparisons live outside the runners, so every engine is measured the same way.

The bench loop needs one thing more than ``infer``: a way to run with the input
already where the engine reads it (device memory on a GPU), so that host-device
copies can be included or excluded (``--transfers``). ``stage`` + ``run_staged``
provide that; CPU runners get it for free from the defaults here.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np

from resdeploy.errors import check_positive_int


@dataclass(frozen=True)
class TensorMeta:
    """Name, shape (ints, or strings for dynamic axes) and numpy dtype name of one tensor."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"


@dataclass
class RunnerConfig:
    """What to run and how. ``model`` is an ONNX path/artifact dir, an engine file or a zoo name."""

    engine: str
    model: str
    device: str = "cpu"  # "cpu" | "cuda" | "cuda:N"
    precision: str | None = None  # engine-side precision where the engine chooses (torch: fp32|fp16|bf16)
    threads: int | None = None  # intra-op threads for CPU engines
    batch_size: int | None = None  # the batch the caller intends to run (for fixed-shape engines)
    options: dict[str, Any] = field(default_factory=dict)  # engine-specific (compile, cuda_graph, ...)


def option_flag(value: Any, default: bool) -> bool:
    """A boolean runner option from Python or from text ("0", "off", "false" are False)."""
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(value)


class Runner(abc.ABC):
    """Base class: subclasses implement ``_load`` (which sets ``_meta`` or overrides ``input_meta``), ``_close`` and ``infer``."""

    engine: str = "?"

    def __init__(self, config: RunnerConfig) -> None:
        # Checked here for every engine: ONNX Runtime and OpenVINO read 0 threads as "all cores",
        # which would quietly time a different configuration than the one asked for.
        check_positive_int(config.threads, "threads")
        check_positive_int(config.batch_size, "batch size")
        self.config = config
        self.loaded = False
        self.setup_seconds: dict[str, float] = {}  # load/compile/autotune time, reported apart
        self._meta: TensorMeta | None = None  # set by _load in runners that use the default input_meta

    # --- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Runner:
        if not self.loaded:
            self._load()
            self.loaded = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.loaded:
            self._close()
            self.loaded = False

    @abc.abstractmethod
    def _load(self) -> None: ...

    def _close(self) -> None:  # noqa: B027 - optional hook
        pass

    # --- description -----------------------------------------------------------------------
    @property
    def device(self) -> str:
        return self.config.device

    def input_meta(self) -> TensorMeta:
        if self._meta is None:
            raise RuntimeError("runner not loaded: use it as a context manager")
        return self._meta

    def describe(self) -> dict[str, Any]:
        """Engine, device, versions and options, recorded in every result."""
        return {"engine": self.engine, "device": self.device, "precision": self.config.precision,
                "threads": self.config.threads, "options": dict(self.config.options)}

    # --- running -----------------------------------------------------------------------------
    @abc.abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """One batch in (host, float32 NCHW), logits out (host, float32)."""

    def stage(self, batch: np.ndarray) -> Any:
        """Place an input where the engine reads it; GPU runners copy to device here."""
        return batch

    def run_staged(self, staged: Any, *, transfers: bool = True) -> Any:
        """Run one inference on a staged input; with ``transfers`` also copy the output to host."""
        return self.infer(staged)

    def synchronize(self) -> None:  # noqa: B027 - a no-op on CPU is the right default
        """Wait until queued device work is done (no-op on CPU)."""
