"""The one runner interface every engine implements, used by bench and validate alike.

After Polygraphy's runners: ``activate`` loads, ``infer`` runs one batch (its input
checked here, once, for every engine), ``deactivate`` frees; a runner is also a
context manager doing the same. Timing, statistics, data and comparisons live outside
the runners, so every engine is measured the same way.

A runner class owns what there is to know about its engine, so nothing else keeps
per-engine branches: ``Options`` (a dataclass of the options it reads), ``probe``
(is it installed, which version, which devices: ``resdeploy info``),
``check_available`` (bench's preflight, before anything is measured), ``install_hint``
and ``precisions``. Adding an engine is one module under ``runners/`` with one such
class, plus one line in the registry (``runners/__init__.py``).

The bench loop needs one thing more than ``infer``: a way to run with the input
already where the engine reads it (device memory on a GPU), so that host-device
copies can be included or excluded (``--transfers``). ``stage`` + ``run_staged``
provide that; CPU runners get it for free from the defaults here.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib.util
import sys
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar

import numpy as np

from resdeploy.errors import MissingDependencyError, ResdeployError, check_positive_int
from resdeploy.onnx_io import batch_fits, layout_mismatch


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


@dataclass
class RunnerOptions:
    """The options an engine reads, declared as fields; each runner subclasses this as ``Options``.

    Built from ``RunnerConfig.options`` (a plain dict, as CLI flags and library callers
    give them). Keys another engine reads are ignored here: ``bench`` hands one dict to
    every engine and checks itself that each option is read by one of them.
    """

    @classmethod
    def names(cls) -> frozenset[str]:
        return frozenset(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, options: dict[str, Any]) -> RunnerOptions:
        return cls(**{k: v for k, v in options.items() if k in cls.names() and v is not None})


@dataclass(frozen=True)
class Availability:
    """What ``probe`` found: is the engine usable here, which version, on which devices, what to install."""

    engine: str
    available: bool
    version: str | None = None
    devices: tuple[str, ...] = ()
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # engine-specific facts (ORT's providers)

    def to_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "available": self.available, "version": self.version,
                "devices": list(self.devices), "note": self.note, **self.extra}


def cuda_index(device: str, not_cuda: str) -> int:
    """'cuda' -> 0, 'cuda:3' -> 3: the one parser of CUDA device names; ``not_cuda`` is the error otherwise."""
    kind, _, index = device.partition(":")
    if kind != "cuda":
        raise ResdeployError(not_cuda, hint="pass --device cuda")
    if not index:
        return 0
    if not index.isdigit():
        raise ResdeployError(f"bad device '{device}': expected cuda or cuda:N with N a device number")
    return int(index)


def option_flag(value: Any, default: bool) -> bool:
    """A boolean runner option from Python or from text ("0", "off", "false" are False)."""
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(value)


class Runner(abc.ABC):
    """Base class: subclasses implement ``_load`` (which sets ``_meta`` or overrides ``input_meta``), ``_close``
    and ``_infer``; they declare ``Options``, ``precisions``, ``install_hint`` and ``package`` (or override
    ``probe``/``check_available``)."""

    engine: ClassVar[str] = "?"
    Options: ClassVar[type[RunnerOptions]] = RunnerOptions
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "fp16", "int8")  # what it runs (graph or engine-side)
    install_hint: ClassVar[str] = ""  # what to install when ``probe`` says no
    package: ClassVar[str | None] = None  # the module whose presence means "installed" (the default probe)

    def __init__(self, config: RunnerConfig) -> None:
        # Checked here for every engine: ONNX Runtime and OpenVINO read 0 threads as "all cores",
        # which would quietly time a different configuration than the one asked for.
        check_positive_int(config.threads, "threads")
        check_positive_int(config.batch_size, "batch size")
        self.config = config
        self.options = self.Options.from_dict(config.options)
        self.loaded = False
        self.setup_seconds: dict[str, float] = {}  # load/compile/autotune time, reported apart
        self._meta: TensorMeta | None = None  # set by _load in runners that use the default input_meta

    # --- what the engine is ----------------------------------------------------------------------
    # "module:function" turning a RunnerConfig into one this runner can load (TensorRT: ONNX -> plan),
    # called by the stages before they create runners (resdeploy.prepare); None: nothing to prepare
    prepare: ClassVar[str | None] = None
    # device kind -> "module:Class" of a subclass that runs this engine there (ONNX Runtime on CUDA);
    # a string, so the base module does not import the subclass that imports it
    device_classes: ClassVar[dict[str, str]] = {}

    @classmethod
    def probe(cls) -> Availability:
        """Installed, version, devices: the default looks for ``package`` without importing it."""
        if cls.package is None:
            return Availability(cls.engine, True)
        installed = cls.package in sys.modules or importlib.util.find_spec(cls.package) is not None
        return Availability(cls.engine, installed, None, ("cpu",) if installed else (),
                            "" if installed else cls.install_hint)

    @classmethod
    def check_available(cls, device: str = "cpu", options: dict[str, Any] | None = None) -> None:
        """Raise ``MissingDependencyError`` when this engine cannot run on ``device`` here (bench's preflight).

        Cheap: it looks for the package (and for a GPU path, the device), without loading a model.
        """
        module = cls.package
        # find_spec raises ValueError for an imported module without __spec__: imported is installed.
        if module and module not in sys.modules and importlib.util.find_spec(module) is None:
            raise MissingDependencyError(f"engine '{cls.engine}' (the '{module}' package)", cls.install_hint)

    # --- lifecycle (Polygraphy's activate / infer / deactivate) ------------------------------------
    def activate(self) -> Runner:
        """Load the model (idempotent)."""
        if not self.loaded:
            self._load()
            self.loaded = True
        return self

    def deactivate(self) -> None:
        """Free the model (idempotent)."""
        if self.loaded:
            self._close()
            self.loaded = False

    def __enter__(self) -> Runner:
        return self.activate()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.deactivate()

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
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """One batch in (host, float32 NCHW), logits out (host, float32); the input is checked once, here."""
        if not self.loaded:
            raise ResdeployError(f"the {self.engine} runner is not loaded; use it as a context manager "
                                 "(`with runner:`) or call activate()")
        self.check_input(batch)
        return self._infer(batch)

    def check_input(self, batch: Any) -> None:
        """The batch fits the model's input: an array of its rank, with its fixed dimensions.

        One message for every engine, instead of each engine's own error (or a crash in
        its C++ core). Dynamic axes (strings, or -1/0) accept any size.
        """
        meta = self.input_meta()
        shape = getattr(batch, "shape", None)
        if shape is None:
            raise ResdeployError(f"the {self.engine} runner takes an array, not {type(batch).__name__}")
        want = list(meta.shape)
        got = tuple(int(g) for g in shape)
        if len(got) != len(want) or (got[:1] != tuple(want[:1]) and isinstance(want[0], int) and want[0] > 0) \
                or not batch_fits(tuple(want), got):
            shown = ", ".join(str(w) if isinstance(w, int) and w > 0 else "N" if i == 0 else "?"
                              for i, w in enumerate(want))
            note = " (a layout mismatch: NCHW data for an NHWC model, or the other way round)" \
                if layout_mismatch(tuple(want), got) else ""
            raise ResdeployError(f"input of shape {list(shape)} does not fit the {self.engine} model "
                                 f"(input '{meta.name}'): expected [{shown}]{note}", hint=self.input_hint)
        if len(shape) and int(shape[0]) == 0:
            raise ResdeployError("input batch is empty (0 samples)")

    input_hint: ClassVar[str | None] = None  # what to do when a batch does not fit (fixed-shape engines)

    @abc.abstractmethod
    def _infer(self, batch: np.ndarray) -> np.ndarray:
        """Run one checked batch."""

    def stage(self, batch: np.ndarray) -> Any:
        """Place an input where the engine reads it; GPU runners copy to device here."""
        return batch

    def run_staged(self, staged: Any, *, transfers: bool = True) -> Any:
        """Run one inference on a staged input; with ``transfers`` also copy the output to host."""
        return self._infer(staged)

    def synchronize(self) -> None:  # noqa: B027 - a no-op on CPU is the right default
        """Wait until queued device work is done (no-op on CPU)."""
