"""The ``resdeploy`` command: a thin Typer layer over the library.

Each command lives in its own module here and does three things: parse flags into
the library's config dataclass, call one library function, print the result (table
or ``--json``). Errors a user can act on are ``ResdeployError``s, caught once in
``main`` and printed as one line; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable

import typer

from resdeploy.errors import ResdeployError

app = typer.Typer(
    name="resdeploy",
    help="ResNets from PyTorch to deployment: train, export, quantize, build, bench, validate, report, inspect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Command modules, each with a ``register(app)`` function. Order is the order in --help.
COMMAND_MODULES = ["models", "train", "export", "quantize", "layers", "build", "bench", "validate", "report", "package",
                   "sweep", "info", "inspect"]


def _print_version(value: bool) -> None:
    if value:
        from resdeploy import __version__

        print(f"resdeploy {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show Python tracebacks instead of one-line errors."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print resdeploy's version and exit."),
) -> None:
    if debug:
        os.environ["RESDEPLOY_DEBUG"] = "1"


def _register_all() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"resdeploy.cli.{name}_cmd")
        module.register(app)


_register_all()


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("RESDEPLOY_DEBUG") == "1"


def main(argv: list[str] | None = None) -> None:
    """Console entry point: every error a user can cause ends as one line on stderr and an exit code.

    2: bad input (a ResdeployError, a usage error, a file that cannot be read or written);
    1: a failed gate; 130: interrupted (Ctrl-C). Outputs are written atomically, so an error
    or an interrupt leaves no half-written file behind. ``--debug`` shows tracebacks instead.
    """
    from resdeploy.cli.ray_flags import expand_ray_flag

    args = expand_ray_flag(sys.argv[1:] if argv is None else argv)
    _importable_from_cwd()
    signals, restore = _raise_on_signals()
    try:
        _main(args, signals)
    finally:
        restore()


def _stdout_went_away() -> bool:
    """Whether typer met a broken pipe: it swaps stdout for click's PacifyFlushWrapper then."""
    return type(sys.stdout).__name__ == "PacifyFlushWrapper"


def _importable_from_cwd() -> None:
    """Let ``resdeploy export mymodule:factory`` find ``mymodule.py`` in the current directory.

    ``python -m resdeploy`` puts the current directory on ``sys.path``; the ``resdeploy``
    console script does not, so the same command failed with "No module named ..." depending
    on how it was started (and so did ``bench --engine torch`` / ``validate --reference torch``
    rebuilding such a model from its manifest). The directory goes at the *end* of the path:
    a stray ``onnx.py`` in it cannot shadow an installed package.
    """
    try:
        cwd = os.getcwd()
    except OSError:  # the directory was deleted under us: nothing to import from there
        return
    if "" not in sys.path and cwd not in sys.path:
        sys.path.append(cwd)


def _main(args: list[str], signals: list[int]) -> None:
    try:
        # With standalone_mode=False, click returns the code of a typer.Exit instead of raising;
        # typer turns Ctrl-C inside a command into a silent Exit(130).
        from resdeploy.cli import conventions

        group = conventions.apply(typer.main.get_command(app))  # help in words, an example per command
        try:
            rc = group.main(args=conventions.check_arguments(group, args), prog_name="resdeploy", standalone_mode=False)
        except SystemExit as exc:
            if exc.code == 1 and _stdout_went_away():
                from resdeploy.console import BROKEN_PIPE_EXIT

                # `resdeploy validate --json ... | head` (print, not rich): typer ends a broken pipe
                # with exit 1, this CLI's "a gate failed"; rich's consoles exit 141 there too.
                sys.exit(BROKEN_PIPE_EXIT)
            raise
        if rc == 130:
            _exit_interrupted(signals)
        if isinstance(rc, int) and rc != 0:
            sys.exit(rc)
    except ResdeployError as exc:
        if _debug_requested(args):
            raise
        _error(str(exc))
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _exit_interrupted(signals)
    except Exception as exc:  # click usage errors, and files the library did not expect to fail
        # typer >= 0.2x vendors click as typer._click and raises its exceptions; a separate 'click'
        # package (Ray brings one) has classes of the same names that these errors are not.
        try:
            from typer._click import exceptions as click_exceptions
        except ImportError:  # an older typer on the real click
            from click import exceptions as click_exceptions  # type: ignore[no-redef]

        if isinstance(exc, click_exceptions.UsageError):
            _error(_usage_line(exc, args))
            sys.exit(2)
        if isinstance(exc, click_exceptions.ClickException):
            _error(exc.format_message())
            sys.exit(2 if exc.exit_code == 1 else exc.exit_code)
        if isinstance(exc, getattr(click_exceptions, "Exit", ())):
            sys.exit(getattr(exc, "exit_code", 1))
        if isinstance(exc, OSError) and not _debug_requested(args):
            # A last resort (a full disk, a path that turned into a directory): the library checks
            # what it can before working, but one line is still better than a traceback.
            where = f": {exc.filename}" if exc.filename else ""
            _error(f"{exc.strerror or exc}{where}")
            sys.exit(2)
        raise


def _exit_interrupted(signals: list[int]) -> None:
    """One line naming the signal, and the shell's exit code for it (128 + signal number)."""
    import signal

    if signal.SIGTERM in signals:
        _error("terminated (SIGTERM)")
        sys.exit(128 + signal.SIGTERM)
    _error("interrupted (Ctrl-C)")
    sys.exit(128 + signal.SIGINT)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, unwinding through every ``except KeyboardInterrupt`` cleanup.

    A subclass, not KeyboardInterrupt itself: when an exception of exactly that type is ever
    raised inside ``PyRun_String`` (C++ extensions evaluating Python do this), CPython marks
    the interpreter as interrupted and ``python -m resdeploy`` then exits by SIGINT (-2),
    whatever code we chose. CI saw exactly that once; the exact-type check skips subclasses.
    """


def _raise_on_signals() -> tuple[list[int], Callable[[], None]]:
    """Make SIGTERM (a CI job's timeout, ``kill``) unwind like Ctrl-C, and both raise ``Interrupted``.

    SIGTERM's default action kills the process on the spot, so the ``finally`` blocks that
    remove a half-built output's temporary sibling never run. Returns a list of the signals
    that arrived, so the exit says which one it was (143 = 128 + SIGTERM, 130 for Ctrl-C), and
    a function that puts the previous handlers back (main() may be called in-process). A
    handler someone else installed (an embedding program, SIGINT ignored in a background job)
    is left alone.
    """
    import signal
    import threading

    seen: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        return seen, lambda: None

    def handler(signum: int, frame: object) -> None:
        seen.append(signum)
        raise Interrupted

    ours = {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler}
    previous = {sig: signal.getsignal(sig) for sig in ours}
    replaced = [sig for sig, default in ours.items() if previous[sig] is default]
    for sig in replaced:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig in replaced:
            signal.signal(sig, previous[sig])

    return seen, restore


def _error(message: str) -> None:
    """One line on stderr: the message holds user paths and names ('x[/].json'), so text, never markup."""
    from rich.markup import escape

    from resdeploy.console import stderr

    line = " ".join(message.split())  # one line, whatever the message held
    stderr.print(f"[bold red]error:[/] {escape(line)}", highlight=False, markup=True, soft_wrap=True)


def _usage_line(exc: Exception, args: list[str]) -> str:
    """click's four-line usage error ('Usage: ...', 'Try ...', '', 'Error: ...') as one line."""
    # typer's pydantic-backed parsing prefixes a parser's ValueError with 'Value error, '.
    message = str(exc.format_message()).replace("Value error, ", "")  # type: ignore[attr-defined]
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        command = ctx.command_path
    else:  # errors raised while parsing (a flag without its value) come without a context
        named = [a for a in args if a in COMMAND_MODULES]
        command = f"resdeploy {named[0]}" if named else "resdeploy"
    return f"{message} (see `{command} --help`)"
