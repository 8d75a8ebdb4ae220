"""Docs that run: every ```bash block in README.md, docs/*.md and calibration/README.md is
executed as written, in order, per file, in a fresh copy of the repository (issue 13).

Each document gets its own scratch copy of the tracked files (what a fresh clone has), so a
document stands on its own: a block may use what an earlier block of the same document made,
never what another document made. Blocks run with ``bash -euo pipefail`` and PATH starting at
this interpreter's bin folder, so ``resdeploy`` is the installed one.

A block that cannot run here (an NVIDIA GPU, TensorRT, a network, a second machine, or a
synopsis with placeholders) is skipped only when the document says so right before it, with
an HTML comment readers can see in the source::

    <!-- docs-run: skip (needs an NVIDIA GPU and TensorRT) -->

Each such block is reported as a pytest skip with that reason (``-rs`` lists them).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_MARKER = re.compile(r"<!--\s*docs-run:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->")
FENCE = re.compile(r"^```(?P<lang>\S*)\s*$")
BLOCK_TIMEOUT_S = 300


@dataclass(frozen=True)
class Block:
    """One fenced ```bash block: where it is, what it says, and why it is skipped (if it is)."""

    doc: str
    line: int
    code: str
    skip_reason: str | None


def doc_files() -> list[Path]:
    """The documents whose commands must run: README, docs/, calibration/README."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "calibration" / "README.md"]


def extract_blocks(path: Path, root: Path = ROOT) -> list[Block]:
    """The ```bash blocks of one Markdown file, in order, with the skip marker just before each.

    The marker must be the last non-blank line before the opening fence, so a skip cannot be
    far from the block it excuses.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    rel = str(path.relative_to(root))
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        start = i
        end = start + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        if match.group("lang") == "bash":
            prev = start - 1
            while prev >= 0 and not lines[prev].strip():
                prev -= 1
            marker = SKIP_MARKER.search(lines[prev]) if prev >= 0 else None
            blocks.append(
                Block(rel, start + 1, "\n".join(lines[start + 1 : end]) + "\n",
                      marker.group("reason").strip() if marker else None)
            )
        i = end + 1
    return blocks


ALL_BLOCKS = [block for path in doc_files() for block in extract_blocks(path)]


def test_extract_blocks_reads_markers(tmp_path: Path) -> None:
    """The parser finds bash blocks only, in order, and ties a marker to the next block."""
    doc = tmp_path / "d.md"
    doc.write_text(
        "text\n```bash\necho one\n```\n\n<!-- docs-run: skip (needs a GPU) -->\n\n```bash\nnvidia-smi\n```\n"
        "```python\nprint(1)\n```\n```bash\necho three\n```\n",
        encoding="utf-8",
    )
    blocks = extract_blocks(doc, root=tmp_path)
    assert [(b.code.strip(), b.skip_reason) for b in blocks] == [
        ("echo one", None), ("nvidia-smi", "needs a GPU"), ("echo three", None)]


def test_docs_have_bash_blocks() -> None:
    """A change to the fences that hid every block from this test would otherwise pass silently."""
    assert len(ALL_BLOCKS) >= 10
    assert sum(b.skip_reason is None for b in ALL_BLOCKS) >= 5


_scratch: dict[str, Path] = {}
_failed: set[str] = set()


def _scratch_for(doc: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tracked files (what a fresh clone has) for one document, made once."""
    if doc not in _scratch:
        dest = tmp_path_factory.mktemp("docs-run")
        files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                               capture_output=True).stdout.decode().split("\0")
        for name in filter(None, files):
            src = ROOT / name
            if src.is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / name)
        _scratch[doc] = dest
    return _scratch[doc]


@pytest.mark.slow
@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[f"{b.doc}:{b.line}" for b in ALL_BLOCKS])
def test_doc_block_runs(block: Block, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The block runs as written after the document's earlier blocks, exit status 0."""
    if block.skip_reason is not None:
        pytest.skip(f"{block.doc}:{block.line}: {block.skip_reason}")
    if block.doc in _failed:
        pytest.fail(f"an earlier block of {block.doc} failed; this one depends on it")
    cwd = _scratch_for(block.doc, tmp_path_factory)
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["XDG_CACHE_HOME"] = str(cwd / ".cache")
    env["RESDEPLOY_CACHE_DIR"] = str(cwd / ".cache" / "resdeploy")
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
    if proc.returncode != 0:
        _failed.add(block.doc)
        pytest.fail(f"{block.doc}:{block.line} exited {proc.returncode}\n--- block\n{block.code}"
                    f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")
