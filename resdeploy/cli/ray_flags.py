"""``--ray [ADDRESS]``: the flags every command that can run on Ray shares (validate, bench, sweep).

click has no option whose value may be left out (``--ray`` alone, or ``--ray HOST:PORT``),
so ``expand_ray_flag`` gives a bare ``--ray`` its default value 'local' before parsing.
Ray itself is imported only by the library, when such a command runs with ``--ray``.
"""

from __future__ import annotations

import os
from typing import Any

import typer

RAY_FLAG = "--ray"
LOCAL = "local"


def _is_address(token: str) -> bool:
    """'auto', 'local', 'host:port' or 'ray://host:port'; not a model path or another flag."""
    if token in ("auto", LOCAL) or token.startswith("ray://"):
        return True
    return ":" in token and not token.startswith("-") and not os.path.exists(token)


def expand_ray_flag(args: list[str]) -> list[str]:
    """``--ray`` without an address becomes ``--ray local`` (start a local Ray for the command)."""
    out: list[str] = []
    for i, a in enumerate(args):
        out.append(a)
        if a == RAY_FLAG and (i + 1 == len(args) or not _is_address(args[i + 1])):
            out.append(LOCAL)
    return out


def ray_option() -> Any:
    return typer.Option(None, RAY_FLAG, metavar="[ADDRESS]",
                        help="Run on Ray: alone, a local Ray started for this command; or 'auto' / HOST:PORT "
                             "of a running cluster (needs pip install 'resdeploy\\[ray]').")


def ray_address(value: str | None) -> str | None:
    """None for a local cluster ('local'), else the address as given."""
    return None if value in (None, LOCAL) else value
