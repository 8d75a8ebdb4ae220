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

import typer

from resdeploy.errors import ResdeployError

app = typer.Typer(
    name="resdeploy",
    help="ResNets from PyTorch to deployment: export, quantize, build, bench, validate, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Command modules, each with a ``register(app)`` function. Order is the order in --help.
COMMAND_MODULES = ["models", "export", "quantize", "build", "bench", "validate", "report", "info"]


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show Python tracebacks instead of one-line errors."),
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
    """Console entry point: run the app, turning ResdeployError into one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    try:
        # With standalone_mode=False, click returns the code of a typer.Exit instead of raising.
        rc = app(args=args, standalone_mode=False)
        if isinstance(rc, int) and rc != 0:
            sys.exit(rc)
    except ResdeployError as exc:
        if _debug_requested(args):
            raise
        from rich.markup import escape

        from resdeploy.console import stderr

        # The message holds user paths and names ('x[/].json'): text, never markup.
        stderr.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # click usage errors and the like
        try:
            from click import exceptions as click_exceptions
        except ImportError:  # typer >= 0.2x vendors click as typer._click (no 'click' package)
            from typer._click import exceptions as click_exceptions  # type: ignore[no-redef]

        if isinstance(exc, click_exceptions.ClickException):
            exc.show()
            sys.exit(2 if exc.exit_code == 1 else exc.exit_code)
        if isinstance(exc, getattr(click_exceptions, "Exit", ())):
            sys.exit(getattr(exc, "exit_code", 1))
        raise
