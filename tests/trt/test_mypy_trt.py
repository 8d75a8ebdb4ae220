"""Type-check the TensorRT modules with mypy --strict against ``tensorrt-stubs`` (TensorRT 10.13's API).

This is how CI checks the TensorRT calls without TensorRT: every attribute, argument and
return type the build and run code uses must exist in 10.13's API as the stubs describe it.

Two things about the published stubs (tensorrt-stubs 10.13.0.35.1) make a plain ``mypy``
run useless, so the test works around them in a temporary copy and says so:
- the ``tensorrt/`` folder has no ``py.typed``, so mypy skips it ("missing library stubs")
  and every TensorRT name silently becomes ``Any``: the copy goes on ``MYPYPATH`` instead;
- a few stub signatures are not valid Python (parameters named ``in``; a parameter without
  a default after defaulted ones), a syntax error that stops mypy: those are repaired
  mechanically (``in`` -> ``in_``, missing defaults -> ``= ...``), nothing else is changed.
A probe file with deliberately wrong TensorRT calls must fail, which shows the stubs are in
effect rather than everything being ``Any``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ["resdeploy/trt", "resdeploy/runners/trt.py", "resdeploy/cli/build_cmd.py"]
PROBE = '''\
import tensorrt as trt

logger = trt.Logger(trt.Logger.WARNING)
builder = trt.Builder()  # PROBE-1: missing logger
config = builder.create_builder_config()
config.set_memory_pool_limit("WORKSPACE", 1 << 30)  # PROBE-2: a str is not a MemoryPoolType
n: str = builder.create_network(0).num_inputs  # PROBE-3: int is not str
'''


def _stub_files() -> list[tuple[Path, str]]:
    try:
        dist = metadata.distribution("tensorrt-stubs")
    except metadata.PackageNotFoundError:
        pytest.skip("tensorrt-stubs is not installed (make setup installs it with --no-deps)")
    files = [(Path(str(dist.locate_file(f))), str(f)) for f in dist.files or []
             if str(f).endswith(".pyi") and str(f).split("/")[0] in ("tensorrt", "tensorrt_bindings")]
    if not files:
        pytest.skip("tensorrt-stubs has no tensorrt/*.pyi files")
    return files


def _repair_signature(line: str) -> str:
    """Make one stub ``def`` line valid Python without changing what it declares."""
    line = re.sub(r"(?<=[(,] )in(?=: )", "in_", line)
    m = re.match(r"^(\s*def \w+\()(.*)(\) -> .*)$", line)
    if not m:
        return line
    params, depth, cur = [], 0, ""
    for ch in m.group(2):
        depth += ch in "[("
        depth -= ch in "])"
        if ch == "," and depth == 0:
            params.append(cur)
            cur = ""
        else:
            cur += ch
    params.append(cur)
    seen_default = False
    for i, p in enumerate(params):
        name = p.strip()
        if name.startswith("*"):
            break
        if "=" in name:
            seen_default = True
        elif seen_default and name:
            params[i] = p + " = ..."
    return m.group(1) + ",".join(params) + m.group(3)


def _prepare_stubs(dest: Path) -> Path:
    for src, rel in _stub_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        text = src.read_text(encoding="utf-8")
        target.write_text("\n".join(_repair_signature(line) for line in text.splitlines()) + "\n", encoding="utf-8")
    (dest / "tensorrt_libs.pyi").write_text("")  # imported by the stubs, not part of them
    return dest


@pytest.mark.slow
def test_trt_modules_type_check_against_tensorrt_stubs(tmp_path: Path) -> None:
    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e '.[dev]')")
    stubs = _prepare_stubs(tmp_path / "stubs")
    probe = tmp_path / "probe_wrong_tensorrt_calls.py"
    probe.write_text(PROBE)
    config = tmp_path / "mypy.ini"
    config.write_text(
        # Only TensorRT's API and our own modules are analysed (torch, numpy, onnx... are skipped
        # as Any: checking them is `make typecheck`'s job and would triple this test's time).
        "[mypy]\nstrict = True\npython_version = 3.11\nfollow_imports = skip\nignore_missing_imports = True\n"
        "warn_unused_ignores = False\n"
        "[mypy-resdeploy.*]\nfollow_imports = silent\n"
        "[mypy-resdeploy.cli.*]\ndisallow_untyped_decorators = False\n"  # typer is skipped, so its decorator is Any
        # The stubs' own quirks are not ours to fix.
        "[mypy-tensorrt.*,tensorrt_bindings.*,tensorrt_libs.*]\nfollow_imports = silent\nignore_errors = True\n"
    )
    env = {**os.environ, "MYPYPATH": str(stubs)}
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(config), "--cache-dir", str(tmp_path / "cache"),
           "--no-error-summary", "--hide-error-context", *TARGETS, str(probe)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    ours = [ln for ln in lines if not ln.startswith(str(probe))]
    assert ours == [], "mypy found problems in the TensorRT modules:\n" + "\n".join(ours)
    probe_errors = [ln for ln in lines if ln.startswith(str(probe)) and ": error:" in ln]
    failed_lines = {int(ln.split(":")[1]) for ln in probe_errors}
    assert failed_lines == {4, 6, 7}, "the stubs are not in effect:\n" + "\n".join(lines)


def test_repair_keeps_signatures_and_only_fixes_syntax() -> None:
    assert _repair_signature("    def f(self, in: list[int], out: list[int]) -> int:") == \
        "    def f(self, in_: list[int], out: list[int]) -> int:"
    assert _repair_signature("    def g(self, a: int = None, b: int) -> None:") == \
        "    def g(self, a: int = None, b: int = ...) -> None:"
    ok = "    def h(self, shape: dict[str, int], index: int = 0) -> None:"
    assert _repair_signature(ok) == ok
    assert shutil.which("python") or sys.executable  # the subprocess above uses this interpreter
