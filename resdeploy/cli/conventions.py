"""What users of trtexec, Polygraphy and benchmark_app expect of any command, applied to all of them.

Done once here, on the click command tree and the raw arguments, so that every command
(present and future) follows the same rules without each one repeating them:

* help shows value names in words (``--batch SIZES``), never typer's ``<str>``/``<bool>``,
  a flag shows no value at all, and a counter (``-v``) says it repeats;
* each command's help ends with an example;
* a flag given twice either accumulates (the comma-separated lists: ``--engine ort --engine
  openvino`` is ``--engine ort,openvino``) or is refused; it never silently keeps the last one;
* flags that the chosen precision ignores are refused (``--calib-data`` with ``--precision fp16``).
"""

from __future__ import annotations

from typing import Any

from resdeploy.errors import ResdeployError

# Per command: flags whose value is a comma-separated list, so repeating them means "these too".
ACCUMULATING: dict[str, set[str]] = {"bench": {"--engine", "--batch", "--cpus"}}

# Value names in words, by option name; the rest get their option's name (--seed SEED).
WORDS: dict[str, str] = {
    "output": "PATH", "weights": "FILE", "data": "PATH", "calib_data": "PATH", "val_data": "FOLDER",
    "ranges": "FILE", "labels": "FILE", "junit": "FILE", "reference": "MODEL_OR_PATH", "engine": "ENGINES",
    "batch": "SIZES", "cpus": "CPU_IDS", "threads": "N", "seed": "N", "iterations": "N", "warmup": "N",
    "epochs": "N", "batch_size": "N", "samples": "N", "calib_samples": "N", "num_classes": "N",
    "input_size": "PIXELS", "resize": "PIXELS", "duration": "SECONDS", "warmup_seconds": "SECONDS",
    "slo_ms": "MS", "qps": "QPS", "mean": "R,G,B", "std": "R,G,B", "opset": "VERSION", "device": "DEVICE",
    "precision": "PRECISION", "target": "TARGET", "method": "METHOD", "scenario": "SCENARIO",
    "baseline": "KEY=VALUE,...", "title": "TEXT", "exclude": "NODE_OR_GLOB",
}

EXAMPLES: dict[str, str] = {
    "models": "resdeploy models 'resnet*'",
    "export": "resdeploy export resnet20 --weights runs/digits -o artifacts/resnet20/fp32",
    "quantize": "resdeploy quantize artifacts/resnet20/fp32 --precision int8 --target cpu --calib-data data/train",
    "build": "resdeploy build artifacts/resnet50/fp32 --precision fp16 (needs TensorRT and an NVIDIA GPU)",
    "bench": "resdeploy bench artifacts/resnet20/int8-cpu --engine ort --engine openvino --batch 1,8",
    "validate": "resdeploy validate artifacts/resnet20/int8-cpu --data data/val --max-top1-drop 1",
    "report": "resdeploy report results/*.json -o report.html",
    "layers": "resdeploy layers artifacts/resnet20/int8-cpu --data calibration/sample --plot layers.png",
    "package": "resdeploy package artifacts/resnet20/int8-cpu --triton model_repository",
    "sweep": "resdeploy sweep examples/sweep.toml -o artifacts/sweep",
    "info": "resdeploy info --json",
}

# command -> (the precision flag, the precision that ignores them, the flags it ignores)
IGNORED_BY_PRECISION: dict[str, tuple[tuple[str, ...], str, tuple[str, ...]]] = {
    "quantize": (("--precision", "-p"), "fp16",
                 ("--calib-data", "--calib-samples", "--method", "--percentile", "--target", "--ranges",
                  "--activations", "--reduce-range")),
}


def apply(group: Any) -> Any:
    """Metavars in words and an example in every command's help, on the built click group."""
    for command in [group, *getattr(group, "commands", {}).values()]:
        for param in command.params:
            _words(param)
        _words_for_help_option(command)
    for name, command in getattr(group, "commands", {}).items():
        example = EXAMPLES.get(name)
        if example and "Example" not in (command.help or ""):
            command.help = (command.help or "").rstrip() + f"\n\nExample: {example}"
    return group


def _words_for_help_option(command: Any) -> None:
    """click makes --help anew for each context: give it the same treatment when it is made."""
    make = command.get_help_option

    def get_help_option(ctx: Any, make: Any = make) -> Any:
        option = make(ctx)
        if option is not None:
            _words(option)
        return option

    command.get_help_option = get_help_option


def _words(param: Any) -> None:
    if getattr(param, "param_type_name", "") == "argument":
        param.display_type_rich = lambda ctx: None  # the argument's name already says what it is
        return
    if getattr(param, "count", False):
        param.display_type_rich = lambda ctx: "(repeat: -vv)"
        return
    if getattr(param, "is_flag", False) or getattr(param, "is_bool_flag", False):
        param.display_type_rich = lambda ctx: None
        return
    word = param.metavar or WORDS.get(param.name or "", (param.name or "value").upper())
    param.display_type_rich = lambda ctx, word=word: word + ("..." if getattr(param, "multiple", False) else "")


def check_arguments(group: Any, args: list[str]) -> list[str]:
    """Merge accumulating flags, refuse other repeated ones and flags the precision ignores.

    Returns the arguments to parse. Only flags given on the command line are looked at:
    an unknown one is left for click to report in its words.
    """
    name = next((a for a in args if not a.startswith("-")), None)
    command = getattr(group, "commands", {}).get(name) if name else None
    if command is None or "--help" in args:
        return args
    at = args.index(name)  # type: ignore[arg-type]
    head, rest = args[:at + 1], args[at + 1:]
    options = {}
    for p in command.params:
        if getattr(p, "param_type_name", "") == "option":
            for opt in [*p.opts, *p.secondary_opts]:
                options[opt] = p
    seen: dict[str, tuple[str, int]] = {}  # param name -> (flag as written, index in out)
    out: list[str] = []
    i = 0
    accumulate = ACCUMULATING.get(name or "", set())
    while i < len(rest):
        arg = rest[i]
        if arg == "--":
            out += rest[i:]
            break
        flag, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        param = options.get(flag)
        if param is None:
            out.append(arg)
            i += 1
            continue
        takes_value = not (getattr(param, "is_flag", False) or getattr(param, "count", False))
        value = inline if eq else (rest[i + 1] if takes_value and i + 1 < len(rest) else None)
        step = 1 if (eq or not takes_value) else 2
        long_name = next((o for o in param.opts if o.startswith("--")), flag)
        if param.name in seen and not getattr(param, "multiple", False) and not getattr(param, "count", False):
            first, pos = seen[param.name]
            if long_name in accumulate and value is not None:
                out[pos] = out[pos] + "," + value  # --engine ort --engine openvino: both
                i += step
                continue
            raise ResdeployError(f"{flag} is given more than once (first as {first}); give it once"
                                 + (", with comma-separated values" if long_name in accumulate else ""))
        if takes_value and value is not None:
            out += [long_name, value]
            seen.setdefault(param.name, (flag, len(out) - 1))
        else:
            out += rest[i:i + step]
            seen.setdefault(param.name, (flag, len(out) - 1))
        i += step
    _check_precision(name or "", out)
    return head + out


def _check_precision(name: str, args: list[str]) -> None:
    rule = IGNORED_BY_PRECISION.get(name)
    if rule is None:
        return
    flags, precision, ignored = rule
    chosen = None
    for i, a in enumerate(args):
        if a in flags and i + 1 < len(args):
            chosen = args[i + 1].lower()
        elif any(a.startswith(f + "=") for f in flags if f.startswith("--")):
            chosen = a.split("=", 1)[1].lower()
    if chosen != precision:
        return
    given = [a.split("=", 1)[0] for a in args if a.split("=", 1)[0] in ignored]
    if given:
        named = list(dict.fromkeys(given))
        raise ResdeployError(f"{', '.join(named)} {'does' if len(named) == 1 else 'do'} nothing with --precision "
                             f"{precision} (INT8 calibration and placement only); leave "
                             f"{'it' if len(named) == 1 else 'them'} out")
