"""Import TensorRT lazily, tell a real TensorRT from a stand-in, and describe the GPU.

``import resdeploy`` must not import TensorRT (seconds, and absent on most machines),
so every TensorRT entry point calls :func:`require_tensorrt` first. It turns "not
installed", "only the type stubs are installed" and "too old" into one line naming
what to install, before any TensorRT call can fail obscurely.

Two small seams live here so that tests can run the build and run logic without a
GPU: :func:`gpu_info` (name and compute capability of the CUDA device) and the
``tensorrt`` entry of ``sys.modules`` (tests install a recording fake there).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from resdeploy.errors import MissingDependencyError, ResdeployError

if TYPE_CHECKING:
    import tensorrt as trt

MIN_MAJOR = 10
INSTALL_HINT = (
    "pip install tensorrt (TensorRT 10 or newer, the wheel matching your CUDA: tensorrt-cu12 or tensorrt-cu13), "
    "on a machine with an NVIDIA GPU and driver"
)


@dataclass(frozen=True)
class GpuInfo:
    """The GPU an engine is built for: TensorRT engines are tied to its architecture."""

    name: str
    compute_capability: str  # "8.6"

    @property
    def major(self) -> int:
        return int(self.compute_capability.split(".")[0])


def require_tensorrt() -> ModuleType:
    """Import ``tensorrt`` or raise a one-line ``MissingDependencyError`` naming what to install.

    ``tensorrt-stubs`` installs a ``tensorrt/`` folder holding only ``.pyi`` files, which
    Python imports as an empty namespace package; checking for ``Builder`` tells that
    apart from the real module.
    """
    try:
        module = importlib.import_module("tensorrt")
    except ImportError as exc:
        raise MissingDependencyError("TensorRT", INSTALL_HINT) from exc
    except Exception as exc:  # a broken install (missing libnvinfer, CUDA mismatch) raises OSError & co.
        raise MissingDependencyError(f"TensorRT (import failed: {exc})", INSTALL_HINT) from exc
    if not hasattr(module, "Builder"):
        raise MissingDependencyError("TensorRT (only type stubs are installed)", INSTALL_HINT)
    version = str(getattr(module, "__version__", "0"))
    if version_tuple(version)[0] < MIN_MAJOR:
        raise MissingDependencyError(f"TensorRT {MIN_MAJOR} or newer (found {version})", INSTALL_HINT)
    return module


def tensorrt_version() -> str:
    return str(getattr(require_tensorrt(), "__version__", "0"))


def tensorrt_status() -> dict[str, Any]:
    """What ``resdeploy info`` shows: whether TensorRT can be used here, and if not, why."""
    try:
        module = require_tensorrt()
    except MissingDependencyError as exc:
        return {"available": False, "version": None, "reason": str(exc)}
    return {"available": True, "version": str(getattr(module, "__version__", "?")), "reason": None}


def version_tuple(version: str) -> tuple[int, ...]:
    """'10.13.0.35' -> (10, 13, 0, 35); non-numeric parts (rc tags) end the tuple."""
    parts: list[int] = []
    for piece in version.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) != len(piece):
            break
    return tuple(parts) or (0,)


def gpu_info(device: str = "cuda") -> GpuInfo:
    """Name and compute capability of ``device`` (a seam: tests replace this function).

    Read through PyTorch, a dependency already, rather than pycuda or cuda-python.
    """
    import torch

    index = cuda_index(device)
    if not torch.cuda.is_available():
        raise MissingDependencyError(
            "an NVIDIA GPU with CUDA",
            "TensorRT engines run on NVIDIA GPUs; install a CUDA build of torch "
            "(see README, 'CUDA') on a machine with an NVIDIA driver",
        )
    if index >= torch.cuda.device_count():
        raise ResdeployError(f"no CUDA device {device}: this machine has {torch.cuda.device_count()}")
    major, minor = torch.cuda.get_device_capability(index)
    return GpuInfo(name=torch.cuda.get_device_name(index), compute_capability=f"{major}.{minor}")


def cuda_index(device: str) -> int:
    """'cuda' -> 0, 'cuda:1' -> 1; anything else is not a device TensorRT can use (``runners.base.cuda_index``)."""
    from resdeploy.runners.base import cuda_index as parse

    return parse(device, f"engine 'trt' runs on an NVIDIA GPU, not on '{device}'")


def cache_dir() -> Path:
    """Where built engines and timing caches are kept; RESDEPLOY_CACHE_DIR overrides it."""
    root = os.environ.get("RESDEPLOY_CACHE_DIR")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "resdeploy"


# --- logging -------------------------------------------------------------------------------------

def severity_for(verbose: int, quiet: bool = False) -> str:
    """Map the CLI's -v count to a TensorRT severity name (quiet: errors only)."""
    if quiet:
        return "ERROR"
    return {0: "WARNING", 1: "INFO"}.get(verbose, "VERBOSE")


def make_logger(verbose: int = 0, quiet: bool = False) -> trt.ILogger:
    """A TensorRT logger that prints through our stderr console and keeps the errors.

    The kept errors go into the one-line message when a build or load fails, so the
    user sees TensorRT's reason instead of "returned None".
    """
    import tensorrt as trt
    from rich.markup import escape

    from resdeploy.console import stderr

    threshold = getattr(trt.ILogger.Severity, severity_for(verbose, quiet))
    error_levels = (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR)

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
            if severity in error_levels:
                self.errors.append(msg.strip())
            # Lower value = more severe (INTERNAL_ERROR 0 ... VERBOSE 4).
            if int(severity) <= int(threshold):
                stderr.print(f"[dim]\\[TensorRT {severity.name}][/] {escape(msg)}", highlight=False, markup=True)

    return _Logger()


def dims_tuple(dims: trt.Dims) -> tuple[int, ...]:
    """TensorRT ``Dims`` -> a tuple of ints (-1 for a dynamic axis); Dims iterate only by index."""
    return tuple(int(dims[i]) for i in range(len(dims)))


def logged_errors(logger: trt.ILogger) -> list[str]:
    errors: list[str] = getattr(logger, "errors", [])
    return errors
