"""Errors a user can act on.

Every failure that comes from the user's input or environment is raised as a
``ResdeployError`` with a message that says what to do. The CLI catches it once,
prints one line and exits with ``exit_code``; library users catch it like any
other exception. Tracebacks are for bugs, not for bad input.
"""

from __future__ import annotations


class ResdeployError(Exception):
    """Bad input or a missing dependency: one line for the user, exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class MissingDependencyError(ResdeployError):
    """An optional package, device or provider is not available on this machine."""

    def __init__(self, what: str, install: str) -> None:
        super().__init__(f"{what} is not available: {install}")
        self.what = what
        self.install = install


class GateFailure(ResdeployError):
    """A check ran and its result failed a gate (parity, accuracy): exit code 1.

    Distinct from bad input so that CI can tell "the model got worse" (1)
    from "the job was set up wrong" (2).
    """

    exit_code = 1


def check_positive_int(value: object, what: str) -> None:
    """None (unset) or an integer >= 1; else one line naming the flag.

    bool is refused although it is an int: ``threads=True`` is a mistake, not 1.
    """
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise ResdeployError(f"{what} must be a positive integer, got {value!r}")


def require(module: str, install: str | None = None, what: str | None = None):  # noqa: ANN201
    """Import an optional module or raise a one-line error naming what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised where the package is absent
        pkg = install or module.split(".")[0]
        raise MissingDependencyError(what or f"the '{module}' package", f"pip install {pkg}") from exc
