"""Artifacts on disk: hashing, atomic writes, and the manifest beside each artifact.

Every stage writes ``<dir>/model.onnx`` (or an engine) with ``<dir>/manifest.json``.
Writes go to a temporary sibling first and are renamed at the end, so a failed or
interrupted run never leaves a half-written artifact that a later stage could trust.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from resdeploy.errors import ResdeployError

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = "resdeploy.manifest/1"
_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, streamed so multi-GB weights do not load into memory."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    """Installed distribution versions by name (None when absent), without importing them."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _tmp_sibling(path: Path, *, directory: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        return Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    return Path(name)


def check_writable_dir(path: Path) -> None:
    """Fail early, with one line, when an output directory cannot be created or written.

    ``os.access`` says yes to root even on a read-only file system, so the nearest
    existing ancestor is probed by creating (and removing) a temporary directory in it.
    """
    parent = Path(path)
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ResdeployError(f"cannot write to {path}: {parent} is not a writable directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".resdeploy-probe-", dir=parent))
    except OSError as exc:
        raise ResdeployError(f"cannot write to {path}: {exc.strerror or exc}") from None


def follow_umask(path: Path) -> None:
    """mkstemp/mkdtemp create private files (0600/0700); an artifact is shared like any output."""
    mask = os.umask(0)
    os.umask(mask)
    if path.is_dir():
        os.chmod(path, 0o777 & ~mask)
        for p in path.rglob("*"):
            os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)
    else:
        os.chmod(path, 0o666 & ~mask)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    final = Path(path)
    check_writable_dir(final.parent)
    tmp = _tmp_sibling(final, directory=False)
    try:
        tmp.write_bytes(data)
        follow_umask(tmp)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_json(obj: Any) -> str:
    """The one JSON encoding of results and manifests (dataclasses, paths, numpy scalars)."""
    return json.dumps(_finite(json.loads(json.dumps(obj, default=_json_default))), indent=2, allow_nan=False) + "\n"


def _finite(obj: Any) -> Any:
    """NaN and infinity become null: strict JSON parsers (jq, JavaScript) reject them."""
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _json_default(obj: Any) -> Any:
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, to_json(obj))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """Build an output directory in a temporary sibling and rename it into place on success.

    An existing ``path`` is an error unless ``force``; with ``force`` it is replaced
    only after the new content is complete, so a failure keeps the old artifact.
    """
    final = Path(path)
    if final.exists() and not force:
        raise ResdeployError(f"{final} already exists; pass --force to overwrite it")
    if final.exists() and not final.is_dir():
        raise ResdeployError(f"{final} exists and is not a directory")
    check_writable_dir(final.parent)
    tmp = _tmp_sibling(final, directory=True)
    try:
        yield tmp
        follow_umask(tmp)
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_manifest(directory: str | os.PathLike[str], manifest: dict[str, Any]) -> Path:
    body = {"schema": MANIFEST_SCHEMA, "created": utc_now(), **manifest}
    return atomic_write_json(Path(directory) / MANIFEST_NAME, body)


def manifest_path_for(model_path: str | os.PathLike[str]) -> Path:
    """The manifest that describes a model file or artifact directory."""
    p = Path(model_path)
    return p / MANIFEST_NAME if p.is_dir() else p.parent / MANIFEST_NAME


def read_manifest(model_path: str | os.PathLike[str], *, required: bool = False) -> dict[str, Any] | None:
    """Read the manifest beside a model (or in an artifact directory); None when absent."""
    mp = manifest_path_for(model_path)
    if not mp.exists():
        if required:
            raise ResdeployError(
                f"no {MANIFEST_NAME} beside {model_path}",
                hint="export with `resdeploy export`, or pass --input-size and the preprocessing flags",
            )
        return None
    try:
        data = json.loads(mp.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResdeployError(f"cannot read {mp}: {exc}") from exc
    if not isinstance(data, dict) or data.get("schema") != MANIFEST_SCHEMA:
        raise ResdeployError(f"{mp} is not a resdeploy manifest (expected schema {MANIFEST_SCHEMA})")
    return data


def is_model_path(ref: str | os.PathLike[str]) -> bool:
    """A file or directory the user meant, rather than a model name to build or export.

    Qualified names (``timm:resnet50.a1_in1k``, ``pkg.models:factory``: anything with a
    source or ``module:factory`` colon) have dots and could pass for paths; they are names
    unless such a file exists or a "/" comes before the colon.
    """
    text = os.fspath(ref)
    if Path(text).exists():
        return True
    if ":" in text and "/" not in text.split(":", 1)[0]:
        return False
    return bool(Path(text).suffix) or os.sep in text


def artifact_dirs_inside(path: Path, filename: str = "model.onnx") -> list[str]:
    """Sub-directories holding ``filename``: what a user meant by a model's folder (fp32, int8-cpu)."""
    return sorted(d.name for d in path.iterdir() if d.is_dir() and (d / filename).is_file())


def resolve_model_file(path: str | os.PathLike[str], filename: str = "model.onnx") -> Path:
    """Accept an artifact directory, its ``manifest.json`` or a file path, as users type all three."""
    p = Path(path)
    if p.name == MANIFEST_NAME and p.is_file():
        p = p.parent
    if p.is_dir():
        inside = artifact_dirs_inside(p, filename)
        p = p / filename
        if not p.exists() and inside:  # the model's folder (artifacts/resnet50) rather than a variant's
            raise ResdeployError(f"no such file: {p}", hint=f"pass one of its artifact directories: {', '.join(inside)}")
    if not p.exists():
        raise ResdeployError(f"no such file: {p}")
    check_not_empty(p)
    return p


def check_not_empty(p: Path) -> None:
    """An interrupted copy or download leaves 0 bytes; ONNX Runtime would say "No graph was found"
    and an empty protobuf even parses as an empty model, so say what it is."""
    if p.is_file() and p.stat().st_size == 0:
        raise ResdeployError(f"{p} is empty (0 bytes)", hint="copy or export it again")
