"""Artifacts on disk: hashing, atomic writes, and the typed manifest beside each artifact.

Every stage writes ``<dir>/model.onnx`` (or an engine) with ``<dir>/manifest.json``.
Writes go to a temporary sibling first and are renamed at the end, so a failed or
interrupted run never leaves a half-written artifact that a later stage could trust,
and the rename is exclusive: an output that appeared while the work ran is an error
(unless ``force``), never silently replaced. Directories commit through ``atomic_dir``,
single files (bench results, reports, plots, JUnit XML, plans) through ``commit_file``.

The manifest (schema 2, ``Manifest``) describes the file beside it with facts measured
from that very file (``FileRecord``: sha256, bytes, external data; ``GraphSummary``: ops,
inputs, outputs, precision), never inherited from a parent: a variant's ``Lineage``
points at its parent instead. Schema-1 manifests (earlier releases) load through
``migrate_v1``. Which artifact a user means is ``resdeploy.resolve``'s job.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from resdeploy.errors import ResdeployError

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = "resdeploy.manifest/2"
MANIFEST_SCHEMA_V1 = "resdeploy.manifest/1"
# What `resdeploy build` wrote beside a TensorRT plan before the plan had a manifest of its own.
ENGINE_SCHEMA_V1 = "resdeploy.trt-engine/1"
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
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


def int8_variant_parts(target: str, cpu: str | None, activation_type: str | None) -> list[str]:
    """What tells an INT8 variant from its siblings, for quantize's default folders and Triton's entry names.

    The target, then each setting that makes another graph for that target (``--cpu vnni``'s full
    8-bit weights, signed activations on the CPU), so no variant takes its sibling's name.
    """
    parts = [target]
    if target == "cpu" and cpu == "vnni":
        parts.append("vnni")
    if target == "cpu" and activation_type == "int8":
        parts.append("s8")
    return parts


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


def check_output_file(path: str | os.PathLike[str], *, force: bool, flag: str = "--output",
                      example: str = "result.json") -> Path:
    """Fail before the work, with one line, when a single-file output cannot be written or is taken.

    A directory, an unwritable parent, or (without ``force``) an existing file: minutes of
    measuring must not end in "cannot write" or in a refusal to replace. ``commit_file``
    checks again at the end, when the output may have appeared in the meantime.
    """
    final = Path(path)
    if final.is_dir():
        raise ResdeployError(f"{flag} {final} is a directory; pass a file path such as {final / example}")
    if (final.exists() or final.is_symlink()) and not force:
        raise ResdeployError(f"{final} already exists; pass --force to overwrite it")
    check_writable_dir(final.resolve().parent)
    return final


def _taken(final: Path) -> ResdeployError:
    return ResdeployError(f"{final} already exists (another run writing the same file?); it was left as it is "
                          "and nothing was written", hint="pass --force to replace it, or write to another file")


def commit_file(path: str | os.PathLike[str], data: bytes | str, *, force: bool) -> Path:
    """The one way a single-file output is written: a temporary sibling, then committed in one step.

    Without ``force`` the commit is exclusive: ``link(2)`` does not replace, so an output
    that is there now (before the work, or written by another run while this one worked)
    is one line, exit 2, and is left as it is; of two runs racing for one name, one wins
    and the file holds its complete content. With ``force`` ``os.replace`` swaps it
    atomically: a reader sees the old file or the new one, never a half-written one.
    """
    final = Path(path)
    if final.is_dir():
        raise ResdeployError(f"{final} is a directory; pass a file path")
    check_writable_dir(final.parent)
    tmp = _tmp_sibling(final, directory=False)
    try:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        follow_umask(tmp)
        if force:
            os.replace(tmp, final)
        else:
            _link_exclusive(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)  # the temporary name (linked: the output keeps its own name)
    return final


def _link_exclusive(tmp: Path, final: Path) -> None:
    try:
        os.link(tmp, final)
        return
    except FileExistsError:
        raise _taken(final) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV):
            raise ResdeployError(f"cannot write {final}: {exc.strerror or exc}") from None
    # A file system without hard links: claim the name with O_EXCL, then rename onto our own claim.
    try:
        os.close(os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise _taken(final) from None
    os.replace(tmp, final)


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


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, force: bool) -> Path:
    """``to_json(obj)`` through ``commit_file``."""
    return commit_file(path, to_json(obj), force=force)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """Build an output directory in a temporary sibling and rename it into place on success.

    An existing ``path`` is an error unless ``force``, both before the work and at the
    commit: without ``force`` an output that appeared while the work ran (another run
    writing to the same place) is an error, and the other run's output is kept as it is.
    With ``force`` the old content is replaced only after the new content is complete,
    so a failure keeps the old artifact.
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
        _commit_dir(tmp, final, force=force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _commit_dir(tmp: Path, final: Path, *, force: bool) -> None:
    """Rename ``tmp`` to ``final``; without ``force`` never over something that is there now."""
    appeared = ResdeployError(f"{final} appeared while this run was writing it (another run writing to the same "
                              "place?); it was left as it is and nothing was written",
                              hint="pass --force to replace it, or write to another directory")
    if final.exists() or final.is_symlink():
        if not force:
            raise appeared
        if not final.is_dir():
            raise ResdeployError(f"{final} exists and is not a directory")
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
        return
    try:
        # rename(2) refuses a non-empty target directory, so a rival that committed a moment
        # ago is not replaced either; os.replace would not be safer here, it is the same call.
        os.rename(tmp, final)
    except OSError as exc:
        if final.exists():
            raise appeared from None
        raise ResdeployError(f"cannot write {final}: {exc.strerror or exc}") from None


def read_json(path: str | os.PathLike[str], *, schema: str | Sequence[str] | None = None, what: str = "") -> Any:
    """The one reader of resdeploy's JSON files (manifests, ranges, results, engine metadata).

    A missing, unreadable or malformed file, or one whose ``schema`` is not one of
    ``schema``, is one ``ResdeployError`` line naming the file (and ``what`` it should be).
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResdeployError(f"no such {what or 'file'}: {p}") from None
    except (OSError, ValueError) as exc:
        raise ResdeployError(f"cannot read {p} as {what + ' ' if what else ''}JSON: {exc}") from None
    if schema is not None:
        wanted = [schema] if isinstance(schema, str) else list(schema)
        if not isinstance(data, dict) or data.get("schema") not in wanted:
            raise ResdeployError(f"{p} is not a resdeploy {what or 'file'} (expected schema {' or '.join(wanted)})")
    return data


# --- the typed manifest (schema 2) -------------------------------------------------------------------
_HASHED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, for FileRecord.verify


@dataclass
class FileRecord:
    """One file of an artifact, as measured from the file itself (never copied from a parent)."""

    file: str  # name inside the artifact directory
    sha256: str
    bytes: int | None  # None only for schema-1 records that did not say (then the sha256 decides)
    external_data: list[FileRecord] = field(default_factory=list)
    mtime_ns: int | None = None  # when it was measured: an unchanged size and mtime skip re-hashing

    @classmethod
    def measure(cls, path: Path, external: Sequence[Path] = ()) -> FileRecord:
        st = path.stat()
        return cls(file=path.name, sha256=sha256_file(path), bytes=st.st_size,
                   external_data=[cls.measure(p) for p in external], mtime_ns=st.st_mtime_ns)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"file": self.file, "sha256": self.sha256, "bytes": self.bytes}
        if self.mtime_ns is not None:
            d["mtime_ns"] = self.mtime_ns
        d["external_data"] = [e.to_dict() for e in self.external_data]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FileRecord:
        return cls(file=str(d["file"]), sha256=str(d["sha256"]),
                   bytes=int(d["bytes"]) if d.get("bytes") is not None else None,
                   external_data=[cls.from_dict(e) for e in d.get("external_data") or []],
                   mtime_ns=int(d["mtime_ns"]) if d.get("mtime_ns") is not None else None)

    def verify(self, directory: Path, manifest: Path | None = None) -> None:
        """The file in ``directory`` is the one recorded: size and mtime first, the sha256 when they differ.

        A mismatch is one line (exit 2) naming both hashes: a model (or engine plan) that
        changed after its manifest (``manifest``, default ``directory/manifest.json``) was
        written must not be quantized, validated or benched as if it were the recorded one.
        """
        manifest = manifest or directory / MANIFEST_NAME
        for record in (self, *self.external_data):
            path = directory / record.file
            try:
                st = path.stat()
            except OSError:
                raise ResdeployError(f"{path} is missing; {manifest} records it",
                                     hint="export or quantize it again") from None
            if record.bytes == st.st_size and record.mtime_ns == st.st_mtime_ns:
                continue
            # a copy (new mtime) is hashed once per process, not by every runner that opens it
            key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
            actual = _HASHED.get(key) or sha256_file(path)
            _HASHED[key] = actual
            if actual != record.sha256 or (record.bytes is not None and record.bytes != st.st_size):
                raise ResdeployError(
                    f"{path} does not match {manifest}: the manifest records sha256 {record.sha256} "
                    f"({record.bytes} bytes), the file has sha256 {actual} ({st.st_size} bytes)",
                    hint="the file changed after its manifest was written: export, quantize or build it again")


@dataclass
class TensorInfo:
    """Name, shape (ints, or strings for dynamic axes) and numpy dtype name of a graph input or output."""

    name: str
    shape: list[int | str]
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorInfo:
        return cls(str(d["name"]), list(d.get("shape") or []), str(d.get("dtype") or "unknown"))


_INT8_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger"})


def default_opset(proto: Any) -> int | None:
    """The ai.onnx opset a ModelProto imports (None when it imports none)."""
    return next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def graph_precision(ops: Iterable[str], has_fp16_weights: bool) -> str:
    """fp32, fp16 or int8, from what a graph holds: the one rule every stage and runner uses."""
    if _INT8_OPS & set(ops):
        return "int8"
    return "fp16" if has_fp16_weights else "fp32"


@dataclass
class GraphSummary:
    """What an ONNX graph holds, measured from the file: an INT8 graph counts its own QuantizeLinear nodes."""

    opset: int | None
    ir_version: int
    nodes: int
    ops: dict[str, int]
    initializers: int
    precision: str  # graph_precision of this graph
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    @property
    def batchnorm_folded(self) -> bool:
        return self.ops.get("BatchNormalization", 0) == 0

    @classmethod
    def measure(cls, path: Path) -> GraphSummary:
        return cls.of_proto(load_onnx(path))

    @classmethod
    def of_proto(cls, proto: Any) -> GraphSummary:
        import onnx

        ops = Counter(n.op_type for n in proto.graph.node)
        inits = {i.name for i in proto.graph.initializer}
        fp16 = any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
        return cls(
            opset=default_opset(proto),
            ir_version=int(proto.ir_version), nodes=int(sum(ops.values())), ops=dict(sorted(ops.items())),
            initializers=len(proto.graph.initializer), precision=graph_precision(ops, fp16),
            inputs=[tensor_info(v) for v in proto.graph.input if v.name not in inits],
            outputs=[tensor_info(v) for v in proto.graph.output],
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``graph`` section (``inputs``, ``outputs`` and ``opset`` sit at the manifest's top level)."""
        return {"ir_version": self.ir_version, "nodes": self.nodes, "ops": dict(self.ops),
                "batchnorm_folded": self.batchnorm_folded, "initializers": self.initializers,
                "precision": self.precision}


def tensor_info(value: Any) -> TensorInfo:
    """A graph input/output (an onnx ValueInfoProto) as a TensorInfo."""
    import onnx

    t = value.type.tensor_type
    shape: list[int | str] = [d.dim_param if d.dim_param else int(d.dim_value) for d in t.shape.dim]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name if t.elem_type else "unknown"
    return TensorInfo(value.name, shape, dtype)


def load_onnx(path: Path) -> Any:
    """The ONNX graph (without external weights), or one line saying why the file is not one."""
    import onnx

    check_not_empty(path)
    hint = "pass the model.onnx written by `resdeploy export`, or its directory"
    try:
        model = onnx.load(os.fspath(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError, OSError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ResdeployError(f"{path} is not a readable ONNX model ({first[:200]})", hint=hint) from None
    if not model.graph.node:  # a few stray bytes can parse as a protobuf with nothing in it
        raise ResdeployError(f"{path} is not an ONNX model (no graph in it)", hint=hint)
    return model


def check_external_data(path: Path, model: Any) -> None:
    """One line when weights kept in external data files (``model.onnx.data``) are not beside ``path``.

    torch.onnx's dynamo exporter writes them by default; copying the .onnx alone leaves a
    graph that every later stage would fail to load in its own way.
    """
    missing = sorted({e.value for init in model.graph.initializer for e in init.external_data
                      if e.key == "location" and not (path.parent / e.value).is_file()})
    if missing:
        raise ResdeployError(f"{path} keeps its weights in {', '.join(missing)}, which is not beside it in {path.parent}",
                             hint="copy the external data file(s) next to the .onnx file, as the exporter wrote them")


@dataclass
class Lineage:
    """The artifact this one was made from: a variant points at its parent, it does not copy its facts."""

    path: str  # relative to this artifact's directory
    abspath: str
    sha256: str
    precision: str = "fp32"
    stage: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "abspath": self.abspath, "sha256": self.sha256,
                             "precision": self.precision}
        if self.stage:
            d["stage"] = self.stage
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Lineage:
        return cls(path=str(d.get("path") or ""), abspath=str(d.get("abspath") or ""), sha256=str(d.get("sha256") or ""),
                   precision=str(d.get("precision") or "fp32"), stage=d.get("stage"))

    @classmethod
    def of(cls, parent_file: Path, out_dir: Path, *, sha256: str, precision: str = "fp32",
           stage: str | None = None) -> Lineage:
        return cls(os.path.relpath(parent_file.resolve(), out_dir.resolve()), str(parent_file.resolve()), sha256,
                   precision, stage)

    def resolve(self, directory: Path) -> Path | None:
        """The parent's file, relative to ``directory`` first, then by absolute path; None when gone."""
        for p in ((directory / self.path) if self.path else None, Path(self.abspath) if self.abspath else None):
            if p is not None and p.exists():
                return p.resolve()
        return None


@dataclass
class EngineRecord:
    """A TensorRT plan's build facts: where it can run, what it takes, and its build-cache key.

    The ``engine`` part of a plan's manifest (stage ``build``): the plan's own file record,
    precision, preprocessing and lineage (the ONNX it was compiled from) sit in the
    ``Manifest`` like any artifact's. ``trt.compat`` reads these fields to refuse a plan
    built for another GPU or TensorRT version; ``options`` are ``trt.compat.BuildOptions``.
    """

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    profile: dict[str, int]  # the optimization profile's batch range: min, opt, max
    input_name: str
    input_shape: list[int]  # C, H, W (the batch comes from the profile)
    input_dtype: str
    output_name: str
    output_dtype: str
    options: dict[str, Any] = field(default_factory=dict)
    cache_key: str = ""
    build_seconds: float = 0.0
    built_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"tensorrt_version": self.tensorrt_version, "gpu_name": self.gpu_name,
                "compute_capability": self.compute_capability, "profile": dict(self.profile),
                "input_name": self.input_name, "input_shape": list(self.input_shape), "input_dtype": self.input_dtype,
                "output_name": self.output_name, "output_dtype": self.output_dtype, "options": dict(self.options),
                "cache_key": self.cache_key, "build_seconds": self.build_seconds, "built_at": self.built_at}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EngineRecord:
        profile = d["profile"]
        if not isinstance(profile, dict):
            raise ValueError(f"engine profile must be {{min, opt, max}}, got {profile!r}")
        return cls(tensorrt_version=str(d["tensorrt_version"]), gpu_name=str(d["gpu_name"]),
                   compute_capability=str(d["compute_capability"]),
                   profile={k: int(profile[k]) for k in ("min", "opt", "max")},
                   input_name=str(d["input_name"]), input_shape=[int(v) for v in d["input_shape"]],
                   input_dtype=str(d["input_dtype"]), output_name=str(d["output_name"]),
                   output_dtype=str(d["output_dtype"]), options=dict(d.get("options") or {}),
                   cache_key=str(d.get("cache_key") or ""), build_seconds=float(d.get("build_seconds") or 0.0),
                   built_at=str(d.get("built_at") or ""))


def is_engine_file(path: str | os.PathLike[str]) -> bool:
    """A TensorRT plan, by its name (.engine, .plan, .trt)."""
    return Path(path).suffix.lower() in ENGINE_SUFFIXES


# Keys the typed fields own; everything else in a manifest is a stage's own section (parity,
# calibration, quantization, check, exporter, versions, timings, target, dynamic_axes...).
_TYPED_KEYS = ("schema", "created", "stage", "precision", "model", "preprocess", "artifact", "inputs", "outputs",
               "opset", "graph", "parent", "settings", "node_modules", "classes", "engine")


@dataclass
class Manifest:
    """``manifest.json`` (schema 2): what an artifact is, where it came from, and how it was made.

    ``artifact`` and ``graph`` are measured from the artifact's own file; ``parent`` is
    lineage, not inheritance. ``sections`` holds each stage's settings and results under
    their own keys, written at the top level of the JSON as schema 1 had them. A TensorRT
    plan's manifest (``<plan>.json``, stage ``build``) has no graph but an ``engine`` record.
    """

    stage: str
    precision: str | None  # None: not stated (then the graph summary's precision is what the file holds)
    artifact: FileRecord | None  # None only for an artifact with no file (a torch model rebuilt from its spec)
    graph: GraphSummary | None = None
    model: dict[str, Any] | None = None  # the model spec (name, source, weights, init): what to rebuild
    preprocess: dict[str, Any] | None = None
    classes: list[str] | None = None  # output index -> class name, when known (a `resdeploy train` model)
    parent: Lineage | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    sections: dict[str, Any] = field(default_factory=dict)
    # ONNX node name -> PyTorch module path, measured from this artifact's own graph at export
    # (per-layer reports, --exclude by module); None where no stage recorded it.
    node_modules: dict[str, str] | None = None
    engine: EngineRecord | None = None  # a TensorRT plan's build facts (stage build)
    created: str = field(default_factory=utc_now)
    schema: str = MANIFEST_SCHEMA

    @classmethod
    def for_file(cls, path: Path, *, stage: str, external: Sequence[Path] = (), onnx: bool = True,
                 **fields: Any) -> Manifest:
        """A manifest whose file record and graph summary are measured from ``path`` now."""
        graph = GraphSummary.measure(path) if onnx else None
        precision = fields.pop("precision", None) or (graph.precision if graph else "unknown")
        return cls(stage=stage, precision=precision, artifact=FileRecord.measure(path, external), graph=graph,
                   **fields)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"schema": self.schema, "created": self.created, "stage": self.stage}
        if self.precision is not None:
            d["precision"] = self.precision
        if self.model is not None:
            d["model"] = self.model
        if self.preprocess is not None:
            d["preprocess"] = self.preprocess
        if self.classes is not None:
            d["classes"] = list(self.classes)
        if self.artifact is not None:
            d["artifact"] = self.artifact.to_dict()
        if self.graph is not None:
            d["inputs"] = [t.to_dict() for t in self.graph.inputs]
            d["outputs"] = [t.to_dict() for t in self.graph.outputs]
            d["opset"] = self.graph.opset
            d["graph"] = self.graph.to_dict()
        if self.parent is not None:
            d["parent"] = self.parent.to_dict()
        if self.node_modules is not None:
            d["node_modules"] = dict(self.node_modules)
        if self.engine is not None:
            d["engine"] = self.engine.to_dict()
        d["settings"] = self.settings
        d.update({k: v for k, v in self.sections.items() if k not in d})
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        """Parse a schema-2 dict (``migrate_v1`` first for schema 1)."""
        g = d.get("graph")
        graph = None
        if isinstance(g, dict) and "ops" in g:
            graph = GraphSummary(
                opset=d.get("opset"), ir_version=int(g.get("ir_version") or 0), nodes=int(g.get("nodes") or 0),
                ops={str(k): int(v) for k, v in (g.get("ops") or {}).items()},
                initializers=int(g.get("initializers") or 0),
                precision=str(g.get("precision") or d.get("precision") or "unknown"),
                inputs=[TensorInfo.from_dict(t) for t in d.get("inputs") or []],
                outputs=[TensorInfo.from_dict(t) for t in d.get("outputs") or []])
        parent = d.get("parent")
        mods = d.get("node_modules")
        engine = d.get("engine")
        return cls(stage=str(d.get("stage") or "unknown"),
                   precision=str(d["precision"]) if d.get("precision") is not None else None,
                   artifact=FileRecord.from_dict(d["artifact"]) if isinstance(d.get("artifact"), dict) else None,
                   graph=graph,
                   model=d.get("model") if isinstance(d.get("model"), dict) else None,
                   preprocess=d.get("preprocess") if isinstance(d.get("preprocess"), dict) else None,
                   classes=[str(c) for c in d["classes"]] if isinstance(d.get("classes"), list) else None,
                   parent=Lineage.from_dict(parent) if isinstance(parent, dict) else None,
                   settings=dict(d.get("settings") or {}),
                   node_modules={str(k): str(v) for k, v in mods.items()} if isinstance(mods, dict) else None,
                   engine=EngineRecord.from_dict(engine) if isinstance(engine, dict) else None,
                   sections={k: v for k, v in d.items() if k not in _TYPED_KEYS
                             or (graph is None and k in ("inputs", "outputs", "opset"))},
                   created=str(d.get("created") or ""), schema=str(d.get("schema") or MANIFEST_SCHEMA))

    def write(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``directory/manifest.json``: the directory is this run's own (being built, then committed by
        ``atomic_dir``), so an earlier manifest there is replaced."""
        return atomic_write_json(Path(directory) / MANIFEST_NAME, self.to_dict(), force=True)

    def write_beside(self, file: str | os.PathLike[str]) -> Path:
        """Write the manifest that describes ``file`` (``<plan>.json`` for an engine plan; see ``manifest_path_for``).

        Replaces an earlier one: it describes the file just committed, which its writer owns.
        """
        return atomic_write_json(manifest_path_for(file), self.to_dict(), force=True)

    def verify(self, directory: Path, manifest: Path | None = None) -> None:
        if self.artifact is not None:
            self.artifact.verify(directory, manifest)

    def require_engine(self, where: str = "the manifest") -> EngineRecord:
        """The engine record of a TensorRT plan's manifest; one line when it has none."""
        if self.engine is None:
            raise ResdeployError(f"{where} describes no TensorRT engine plan (stage {self.stage})",
                                 hint="build the plan with `resdeploy build`")
        return self.engine


def migrate_v1(data: dict[str, Any], *, file: str | None = None) -> dict[str, Any]:
    """A schema-1 manifest as schema 2: the one migration, for files written by earlier releases.

    Two schema-1 files describe an artifact:

    - ``resdeploy.manifest/1`` (``manifest.json``). It let a variant (``stage: quantize``)
      copy its FP32 parent's manifest, so its ``artifact`` record, ``inputs``, ``outputs``,
      ``opset`` and ``graph`` describe the parent's file, not its own; only the top-level
      ``sha256`` and ``model_file`` were its own. Those become the file record (bytes
      unknown: the sha256 decides), and the parent's graph facts are dropped
      (``load_manifest`` measures them from the file).
    - ``resdeploy.trt-engine/1`` (``<plan>.json``, a TensorRT plan's metadata; ``file`` is
      the plan's name). Its ``engine_sha256`` becomes the plan's file record, ``onnx_sha256``
      and ``onnx_path`` the lineage, and the build facts the ``engine`` record.
    """
    if data.get("schema") == ENGINE_SCHEMA_V1:
        return _migrate_engine_v1(data, file)
    if data.get("schema") != MANIFEST_SCHEMA_V1:
        raise ValueError(f"not a schema-1 manifest: {data.get('schema')!r}")
    d = {k: v for k, v in data.items() if k not in ("sha256", "model_file")}
    d["schema"] = MANIFEST_SCHEMA
    if data.get("stage") == "quantize" or data.get("sha256"):
        d["artifact"] = {"file": str(data.get("model_file") or "model.onnx"), "sha256": str(data["sha256"]),
                         "bytes": None, "external_data": []}
        for key in ("inputs", "outputs", "opset", "graph", "dynamic_axes", "exporter", "parity", "node_modules"):
            d.pop(key, None)  # the parent's, copied: not facts about this file
        d.setdefault("settings", {})
    else:
        graph = dict(d.get("graph") or {})
        if graph:
            graph.setdefault("precision", str(data.get("precision") or "fp32"))
            d["graph"] = graph
    return d


def _migrate_engine_v1(data: dict[str, Any], file: str | None) -> dict[str, Any]:
    """``resdeploy.trt-engine/1`` metadata (the plan's facts in one flat dict) as a schema-2 build manifest."""
    if not file:
        raise ValueError("engine metadata migrates with the name of its plan")
    engine = {k: data[k] for k in ("tensorrt_version", "gpu_name", "compute_capability", "profile", "input_name",
                                   "input_shape", "input_dtype", "output_name", "output_dtype")}
    engine.update({k: data.get(k) for k in ("options", "cache_key", "build_seconds", "built_at")})
    precision = str(data["precision"])
    d: dict[str, Any] = {"schema": MANIFEST_SCHEMA, "created": str(data.get("built_at") or ""), "stage": "build",
                         "precision": precision, "engine": engine, "settings": {}}
    if data.get("engine_sha256"):  # the plan's sha256, checked on load; bytes unknown: the sha256 decides
        d["artifact"] = {"file": file, "sha256": str(data["engine_sha256"]), "bytes": None, "external_data": []}
    if data.get("onnx_sha256") or data.get("onnx_path"):
        # build compiles the precision variant, so the ONNX holds the plan's precision
        d["parent"] = {"path": "", "abspath": str(data.get("onnx_path") or ""), "sha256": str(data.get("onnx_sha256") or ""),
                       "precision": precision}
    if isinstance(data.get("preprocess"), dict):
        d["preprocess"] = data["preprocess"]
    if data.get("versions"):
        d["versions"] = data["versions"]
    return d


def parse_manifest(data: Any, where: str = "manifest.json") -> Manifest:
    """A manifest dict of any schema as a typed Manifest; one line for anything else.

    For a plan's ``<plan>.json`` (``where``), schema-1 engine metadata is migrated with
    the plan's name.
    """
    if not isinstance(data, dict) or data.get("schema") not in (MANIFEST_SCHEMA, MANIFEST_SCHEMA_V1, ENGINE_SCHEMA_V1):
        raise ResdeployError(f"{where} is not a resdeploy manifest (expected schema {MANIFEST_SCHEMA})")
    try:
        if data["schema"] != MANIFEST_SCHEMA:
            plan = Path(where).name.removesuffix(".json")
            data = migrate_v1(data, file=plan if is_engine_file(plan) else None)
        return Manifest.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ResdeployError(f"{where} is not a valid resdeploy manifest: {exc}") from None


def write_manifest(directory: str | os.PathLike[str], manifest: Manifest | dict[str, Any]) -> Path:
    """Write ``manifest`` into ``directory``; a dict is taken as schema-2 fields.

    A dict without a file record gets one measured from ``model.onnx`` when the
    directory holds one: a record is never made up, only measured.
    """
    if isinstance(manifest, dict):
        body = {"schema": MANIFEST_SCHEMA, "created": utc_now(), **manifest}
        model = Path(directory) / "model.onnx"
        if "artifact" not in body and model.is_file():
            body["artifact"] = FileRecord.measure(model).to_dict()
        manifest = Manifest.from_dict(body)
    return manifest.write(directory)


def manifest_path_for(model_path: str | os.PathLike[str]) -> Path:
    """The manifest that describes a model file or artifact directory.

    A TensorRT plan has its own, ``<plan>.json`` (``model.fp16.engine.json``): several plans
    (precisions, GPUs) sit beside the ONNX they were built from, whose ``manifest.json``
    describes that ONNX.
    """
    p = Path(model_path)
    if p.is_dir():
        return p / MANIFEST_NAME
    if is_engine_file(p):
        return p.with_name(p.name + ".json")
    return p.parent / MANIFEST_NAME


def load_manifest(model_path: str | os.PathLike[str], *, required: bool = False,
                  verify: bool = False) -> Manifest | None:
    """The typed manifest beside a model (or in an artifact directory); None when absent.

    Schema 1 is migrated; a graph summary the old manifest lacked is measured from the
    file. ``verify`` checks the file against its record (``FileRecord.verify``).
    """
    mp = manifest_path_for(model_path)
    if not mp.exists():
        if required:
            raise ResdeployError(
                f"no {MANIFEST_NAME} beside {model_path}",
                hint="export with `resdeploy export`, or pass --input-size and the preprocessing flags",
            )
        return None
    manifest = parse_manifest(read_json(mp), str(mp))
    if is_engine_file(model_path) and manifest.artifact is not None:
        # <plan>.json describes the plan of its name: a plan copied with its manifest under a new name is that plan
        manifest.artifact.file = Path(model_path).name
    if verify:
        manifest.verify(mp.parent, mp)
    if manifest.graph is None and manifest.artifact is not None and manifest.artifact.file.endswith(".onnx") \
            and (mp.parent / manifest.artifact.file).is_file():
        try:
            manifest.graph = GraphSummary.measure(mp.parent / manifest.artifact.file)
        except ResdeployError:
            pass  # the file is damaged: whoever runs it says so
    return manifest


def load_engine_manifest(engine: str | os.PathLike[str], *, verify: bool = True) -> Manifest:
    """A TensorRT plan's manifest (``<plan>.json``, schema 2 or migrated engine metadata), with its engine record.

    ``verify`` checks the plan against the manifest's file record, as for any artifact. A
    plan without one is refused: nothing else says which GPU and TensorRT version built it.
    """
    mp = manifest_path_for(engine)
    manifest = load_manifest(engine, verify=verify) if mp.is_file() else None
    if manifest is None:
        raise ResdeployError(
            f"no metadata beside {engine} (expected {mp.name}): resdeploy cannot tell which GPU and TensorRT "
            "version built it",
            hint="build it with `resdeploy build`, or pass the ONNX instead and let resdeploy build the engine",
        )
    manifest.require_engine(str(mp))
    return manifest


def read_manifest(model_path: str | os.PathLike[str], *, required: bool = False,
                  verify: bool = False) -> dict[str, Any] | None:
    """``load_manifest`` as the JSON dict (schema 2) that stages and reports read keys from."""
    manifest = load_manifest(model_path, required=required, verify=verify)
    return manifest.to_dict() if manifest is not None else None


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


def check_not_empty(p: Path) -> None:
    """An interrupted copy or download leaves 0 bytes; ONNX Runtime would say "No graph was found"
    and an empty protobuf even parses as an empty model, so say what it is."""
    if p.is_file() and p.stat().st_size == 0:
        raise ResdeployError(f"{p} is empty (0 bytes)", hint="copy or export it again")
