"""Content-addressed artifacts for sweeps: the inputs' sha256 plus the stage settings name an entry.

Why by content and not by name: a sweep reruns the same export/quantize/validate/bench
for many combinations and many times; an entry named by what went in (the model file's
sha256, the calibration data's fingerprint, the settings) is reused exactly when the
result would be the same, and never when anything that matters changed.

Why no locks: an entry is built in a temporary sibling (same directory, so relative paths
inside it, such as a variant manifest's path to its FP32 parent, stay valid) and renamed
into place. Renaming a directory onto an existing one fails, so when two workers build the
same entry at once exactly one rename wins; the other discards its copy and uses the
winner's. A half-written entry never has the final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resdeploy.artifacts import atomic_write_json, sha256_file

CACHE_SCHEMA = "resdeploy.cache/1"
_KEY_CHARS = 20  # of the hex digest: 80 bits, more than enough for one user's sweeps


def cache_key(stage: str, inputs: dict[str, Any]) -> str:
    """sha256 of the stage name and its inputs as canonical JSON (sorted keys)."""
    text = json.dumps({"stage": stage, "inputs": inputs}, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:_KEY_CHARS]


def data_fingerprint(source: str | os.PathLike[str] | None) -> str | None:
    """What identifies a data source for a cache key: a file's sha256, a folder's listing.

    A folder (a validation set of 50,000 images) is fingerprinted by each file's relative
    path, size and modification time, not by reading every byte: cheap, and any edit,
    addition or removal changes it. 'synthetic[:N]' is its own name.
    """
    if source is None:
        return None
    p = Path(source)
    if not p.exists():
        return str(source)
    if p.is_file():
        return sha256_file(p)
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(p):
        dirnames.sort()
        for name in sorted(filenames):
            f = Path(dirpath) / name
            try:
                st = f.stat()
            except OSError:
                continue
            h.update(f"{f.relative_to(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


class Cache:
    """Entries under ``root/<stage>/<key>``: a directory (models) or ``<key>.json`` (results)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def dir_entry(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def json_entry(self, stage: str, key: str) -> Path:
        return self.root / stage / f"{key}.json"

    def get_dir(self, stage: str, key: str, inputs: dict[str, Any], build: Callable[[Path], None]) -> tuple[Path, bool]:
        """(entry directory, True when it was already there). ``build(tmp)`` creates ``tmp`` and fills it."""
        final = self.dir_entry(stage, key)
        if final.is_dir():
            return final, True
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            build(tmp)
            atomic_write_json(tmp / "cache.json", {"schema": CACHE_SCHEMA, "stage": stage, "key": key,
                                                   "inputs": inputs}, force=True)
            try:
                os.rename(tmp, final)
            except OSError:
                if not final.is_dir():
                    raise
                return final, True  # another worker finished the same entry first: use theirs
            return final, False
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def get_json(self, stage: str, key: str) -> dict[str, Any] | None:
        path = self.json_entry(stage, key)
        if not path.is_file():
            return None
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # unreadable: recompute (and overwrite it atomically)
        return value if isinstance(value, dict) else None

    def put_json(self, stage: str, key: str, value: dict[str, Any]) -> Path:
        path = self.json_entry(stage, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # a cache entry is replaced (same key, same content): a temporary sibling, then os.replace
        return atomic_write_json(path, value, force=True)


__all__ = ["Cache", "cache_key", "data_fingerprint"]
