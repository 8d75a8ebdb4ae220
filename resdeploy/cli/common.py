"""Flag parsing helpers shared by the commands (one implementation of each)."""

from __future__ import annotations

import json
import sys
from typing import Any

from resdeploy.artifacts import to_json
from resdeploy.errors import ResdeployError


def parse_int_list(text: str, flag: str, *, minimum: int = 1) -> list[int]:
    """'1,8,32' -> [1, 8, 32]; every value an integer >= ``minimum``, no empty items ('1,,8')."""
    kind = "positive integers" if minimum == 1 else f"integers >= {minimum}"
    try:
        # int('') raises, so '1,,8' and '8,' are refused, not read as a shorter list.
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise ResdeployError(f"{flag} takes comma-separated {kind}, got '{text}'") from None
    if any(v < minimum for v in values):
        raise ResdeployError(f"{flag} takes comma-separated {kind}, got '{text}'")
    return values


def parse_str_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def emit_json(obj: Any) -> None:
    """Print a result as JSON on stdout (the --json contract for scripts)."""
    sys.stdout.write(to_json(obj))
    sys.stdout.flush()


def load_json_file(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise ResdeployError(f"no such file: {path}") from None
    except (OSError, ValueError) as exc:
        raise ResdeployError(f"cannot read {path} as JSON: {exc}") from None
