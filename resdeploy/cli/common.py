"""Flag parsing helpers shared by the commands (one implementation of each)."""

from __future__ import annotations

import functools
import inspect
import math
import sys
from collections.abc import Callable
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import typer

from resdeploy.artifacts import read_json, to_json
from resdeploy.errors import ResdeployError

if TYPE_CHECKING:  # resdeploy.preprocess imports PIL: not for `resdeploy --help`
    from resdeploy.preprocess import PreprocessFlags


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


def parse_channel_values(text: str | None, flag: str) -> tuple[float, ...] | None:
    """'0.485,0.456,0.406' (per channel, R,G,B) or '0.5' (every channel) -> a tuple of finite floats."""
    if text is None:
        return None
    message = f"{flag} takes three comma-separated numbers (R,G,B), or one for every channel, got '{text}'"
    try:
        # float('') raises: '1,,2,3' is refused, not read as (1, 2, 3).
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ResdeployError(message) from None
    if len(values) not in (1, 3) or not all(math.isfinite(v) for v in values):
        raise ResdeployError(message)
    return values


# --- typer parsers: a bad value is a usage error (exit 2), printed as one line by cli.main ----------
def finite_float(value: str | float) -> float:
    """A float flag's value; 'nan' and 'inf', which float() accepts, are refused.

    A NaN compares false with every bound, so it slips through checks such as
    ``qps <= 0`` and turns a timed loop into an endless one.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"takes a number, got '{value}'") from None
    if not math.isfinite(number):
        raise ValueError(f"takes a finite number, got '{value}'")
    return number


def positive_int(value: str | int) -> int:
    """An integer flag that must be >= 1 (e.g. --threads: 0 would silently mean "runtime default")."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"takes a positive integer, got '{value}'") from None
    if number < 1:
        raise ValueError(f"takes a positive integer, got '{value}'")
    return number


def threads_option() -> Any:
    """--threads, declared once for every command that runs CPU engines."""
    return typer.Option(None, "--threads", parser=positive_int,
                        help="Intra-op threads for CPU engines (>= 1; default: the runtime's own).")


# --- preprocessing flags ----------------------------------------------------------------------------
# The default of a command's ``preprocess`` parameter: ``with_preprocess_flags`` replaces it with the
# parsed flags, a ``resdeploy.preprocess.PreprocessFlags`` (the library's one declaration of them).
PREPROCESS_FLAGS: Any = None


def preprocess_kwargs(flags: PreprocessFlags) -> dict[str, Any]:
    """The flags as keyword arguments of QuantizeConfig and ValidateConfig, which embed PreprocessFlags."""
    return {f.name: getattr(flags, f.name) for f in fields(flags)}


_KW = inspect.Parameter.KEYWORD_ONLY
_PREPROCESS_PARAMETERS = [
    inspect.Parameter("input_size", _KW, annotation=str | None, default=typer.Option(
        None, "--input-size", help="Without a manifest, where the graph leaves it dynamic: input size H or H,W.")),
    inspect.Parameter("layout", _KW, annotation=str | None, default=typer.Option(
        None, "--layout", help="Without a manifest, where the graph does not tell: nchw | nhwc.")),
    inspect.Parameter("preprocess_preset", _KW, annotation=str | None, default=typer.Option(
        None, "--preprocess", help="Without a manifest: torchvision (RGB, /255, mean/std; default) | caffe (BGR, "
                                   "0-255, mean subtracted) | tf ([-1, 1]).")),
    inspect.Parameter("resize", _KW, annotation=int | None, default=typer.Option(
        None, "--resize", help="Without a manifest: shorter-side resize before the crop.")),
    inspect.Parameter("mean", _KW, annotation=str | None, default=typer.Option(
        None, "--mean", help="Without a manifest: per-channel mean, e.g. 0.485,0.456,0.406 (one value: every channel).")),
    inspect.Parameter("std", _KW, annotation=str | None, default=typer.Option(
        None, "--std", help="Without a manifest: per-channel std, e.g. 0.229,0.224,0.225 (one value: every channel).")),
]


def with_preprocess_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the preprocessing flags, declared here once for quantize, validate and bench.

    The command takes one ``preprocess: PreprocessFlags = PREPROCESS_FLAGS`` parameter; typer
    sees the six flags in its place (same names, same order in --help), and the command
    receives them parsed into the library's ``resdeploy.preprocess.PreprocessFlags``, so a bad
    --mean fails the same way in every command that reads it.
    """
    signature = inspect.signature(command)
    params = list(signature.parameters.values())
    at = [p.name for p in params].index("preprocess")
    names = [p.name for p in _PREPROCESS_PARAMETERS]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        raw = {name: kwargs.pop(name, None) for name in names}
        from resdeploy.onnx_io import parse_input_size, parse_layout
        from resdeploy.preprocess import PRESETS, PreprocessFlags

        preset = raw["preprocess_preset"].lower() if raw["preprocess_preset"] else None
        if preset is not None and preset not in PRESETS:
            raise ResdeployError(f"unknown --preprocess '{raw['preprocess_preset']}'; choose from: {', '.join(PRESETS)}")
        kwargs["preprocess"] = PreprocessFlags(
            input_size=parse_input_size(raw["input_size"]), resize=raw["resize"],
            mean=parse_channel_values(raw["mean"], "--mean"), std=parse_channel_values(raw["std"], "--std"),
            layout=parse_layout(raw["layout"]), preprocess=preset,
        )
        return command(*args, **kwargs)

    # typer reads the parameters from __signature__ and their types from __annotations__.
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p.replace(kind=_KW) for p in params[:at]] + _PREPROCESS_PARAMETERS
        + [p.replace(kind=_KW) for p in params[at + 1:]])
    annotations = {k: v for k, v in command.__annotations__.items() if k != "preprocess"}
    wrapper.__annotations__ = {**annotations, **{p.name: p.annotation for p in _PREPROCESS_PARAMETERS}}
    return wrapper


# --- output ---------------------------------------------------------------------------------------
def emit_json(obj: Any) -> None:
    """Print a result as JSON on stdout (the --json contract for scripts)."""
    sys.stdout.write(to_json(obj))
    sys.stdout.flush()


def load_json_file(path: str) -> Any:
    """``artifacts.read_json``: the one JSON reader."""
    return read_json(path)
