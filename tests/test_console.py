"""resdeploy.console: what the shared consoles print is the text they were given."""

from __future__ import annotations

import contextlib
import io

import pytest

from resdeploy.console import Reporter, stderr


def _stderr_of(fn) -> str:  # noqa: ANN001 - a no-argument callable
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        fn()
    return err.getvalue()


def test_warning_keeps_bracketed_path_parts_and_colon_words() -> None:
    # A path with "[v2]" lost it (rich markup), and "mypkg.mod:factory:" became a factory emoji.
    message = "skipping 1 file(s) in photos [v2]/set [bold]x: weights do not fit mypkg.mod:factory: 2 wrongly shaped"
    text = _stderr_of(lambda: Reporter(quiet=True).warn(message))
    assert text.startswith("warning: ")
    assert message in " ".join(text.split())


def test_consoles_print_colon_names_as_typed() -> None:
    text = _stderr_of(lambda: stderr.print("model mypkg.mod:factory: and :smile:", highlight=False))
    assert "mypkg.mod:factory: and :smile:" in text


@pytest.mark.slow  # a fresh interpreter importing torch: about 5 s each on 2 cores
@pytest.mark.parametrize("args", [["models", "resnet1*"], ["models", "resnet1*", "--json"]])
def test_a_reader_that_leaves_is_exit_141_not_the_failed_gate_code(args: list[str]) -> None:
    # `resdeploy validate ... | head` exited 1 (rich's and typer's broken-pipe exit), which this CLI
    # reserves for a failed gate; with `set -o pipefail` a passing gate read as a failing one.
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "resdeploy", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()  # the reader leaves before anything is written, as `| head -0` does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141, err
    assert b"Traceback" not in err
