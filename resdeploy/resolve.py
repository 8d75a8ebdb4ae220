"""Which artifact does the user mean? One answer for every command.

People type an artifact directory (``artifacts/resnet50/fp32``), its ``model.onnx``, its
``manifest.json``, a TensorRT plan (``model.fp16.engine``), a zoo name (``resnet50``) or
an ONNX file from elsewhere that has no manifest. ``resolve_artifact`` turns each into an
``Artifact``: the model file, its typed manifest (checked against the file: a model or
plan changed after its manifest was written is an error, exit 2; a plan's manifest is
``<plan>.json``), and for a foreign ONNX the facts read from the graph (input name, dtype,
static H/W, NCHW or NHWC).

What a stage then does with it (export a zoo name first, refuse an INT8 source, ...)
stays the stage's decision; the resolver only says what is there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resdeploy.artifacts import (
    MANIFEST_NAME,
    GraphSummary,
    Manifest,
    artifact_dirs_inside,
    check_not_empty,
    is_engine_file,
    is_model_path,
    load_engine_manifest,
    load_manifest,
    manifest_path_for,
    sha256_file,
)
from resdeploy.errors import ResdeployError
from resdeploy.onnx_io import (
    GraphInput,
    outputs_note,
    parse_input_size,
    read_graph_input,
    single_input,
    spec_without_manifest,
)

# The graph's (single) image input: name, dtype, dims, NCHW or NHWC. Read in one place, onnx_io.
InputFacts = GraphInput


@dataclass
class Artifact:
    """A model the user named: a file (ONNX or engine) with its manifest when it has one, or a zoo name."""

    ref: str  # as typed
    kind: str  # "onnx" | "engine" | "zoo" | "dir" (a directory without model.onnx, e.g. a torch artifact)
    path: Path | None  # the model file (or directory for kind "dir"); None for a zoo name
    manifest: Manifest | None = None
    _graph: GraphSummary | None = field(default=None, repr=False)
    _sha256: str | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """resnet50 for a zoo name or an artifact of it; else the file's name."""
        if self.kind == "zoo":
            return self.ref
        manifest = self.describing_manifest()
        model = (manifest.model or {}) if manifest else {}
        if model.get("name"):
            return str(model["name"])
        assert self.path is not None
        return self.path.stem if self.path.suffix == ".onnx" else self.path.name

    def describing_manifest(self) -> Manifest | None:
        """The manifest that says which model this is (model spec, preprocessing, classes).

        Its own; for an engine plan whose manifest does not name the model (engine metadata
        from before plans had manifests), that of the ONNX it was built from, when it is there.
        """
        if self.kind == "engine" and self.path is not None and (self.manifest is None or not self.manifest.model):
            source = self.manifest.parent.resolve(self.path.parent) if self.manifest and self.manifest.parent else None
            for candidate in (source, self.path.parent / MANIFEST_NAME):
                described = load_manifest(candidate) if candidate is not None and candidate.exists() else None
                if described is not None:
                    return described
        return self.manifest

    @property
    def directory(self) -> Path | None:
        """The artifact directory holding the manifest, when there is one."""
        return self.path.parent if self.manifest is not None and self.path is not None else None

    @property
    def sha256(self) -> str | None:
        """The file's sha256: the manifest's record (already checked against the file), else measured."""
        if self._sha256 is None and self.path is not None and self.path.is_file():
            record = self.manifest.artifact if self.manifest else None
            self._sha256 = record.sha256 if record else sha256_file(self.path)
        return self._sha256

    def graph(self) -> GraphSummary:
        """The ONNX graph's summary, measured from the file (a manifest's when it has one)."""
        if self.kind != "onnx" or self.path is None:
            raise ResdeployError(f"{self.ref} is not an ONNX model")
        if self._graph is None:
            self._graph = (self.manifest.graph if self.manifest and self.manifest.graph
                           else GraphSummary.measure(self.path))
        return self._graph

    @property
    def precision(self) -> str:
        """fp32 | fp16 | int8: what the graph holds (for an engine plan: what its manifest records)."""
        if self.kind == "onnx":
            return self.graph().precision
        if self.kind == "engine":
            return str(self.engine_manifest().precision)
        return (self.manifest.precision if self.manifest else None) or "unknown"

    def engine_manifest(self) -> Manifest:
        """A TensorRT plan's manifest (``<plan>.json``) with its engine record; one line when it has none."""
        if self.kind != "engine" or self.path is None:
            raise ResdeployError(f"{self.ref} is not a TensorRT engine plan")
        if self.manifest is not None and self.manifest.engine is not None:
            return self.manifest
        return load_engine_manifest(self.path, verify=False)  # resolve_artifact verified it

    def input(self) -> InputFacts:
        """The graph's image input: name, dtype, static H/W and layout, for a foreign ONNX too."""
        return single_input(self.graph().inputs, str(self.path))

    def preprocess(self, **flags: Any) -> Any:
        """The recorded preprocessing, else the one the graph and the flags describe (``preprocess_from``)."""
        graph = self.input() if self.manifest is None and self.kind == "onnx" else None
        return preprocess_from(self.manifest.to_dict() if self.manifest else None, what=str(self.path),
                               graph=graph, **flags)

    def parent_path(self) -> Path | None:
        """The parent's file named by the lineage, when it still exists."""
        if self.manifest is None or self.manifest.parent is None or self.path is None:
            return None
        return self.manifest.parent.resolve(self.path.parent)


def preprocess_from(manifest: dict[str, Any] | None, *, input_size: int | tuple[int, int] | str | None = None,
                    resize: int | None = None, mean: tuple[float, ...] | None = None,
                    std: tuple[float, ...] | None = None, what: str = "the model", reporter: Any = None,
                    graph: GraphInput | None = None, model_path: str | os.PathLike[str] | None = None,
                    layout: str | None = None, preset: str | None = None, required: bool = True) -> Any:
    """The model's recorded preprocessing; without a manifest, read from its graph and the flags.

    Returns a ``PreprocessSpec``; quantize and validate both read a model's inputs this way.
    ``graph`` (or the ONNX file ``model_path``, read when no graph is given) gives size and
    layout where static (``onnx_io.spec_without_manifest``); the flags fill in what it
    leaves dynamic. ``required=False`` (FP16 conversion reads no images) falls back to
    224x224 NCHW instead of an error.
    """
    from resdeploy.preprocess import PreprocessSpec, check_preprocess_flags

    flags = any(v is not None for v in (input_size, resize, mean, std, layout, preset))
    size = input_size if isinstance(input_size, tuple) else parse_input_size(input_size)
    check_preprocess_flags(size, resize, mean, std)
    if manifest and isinstance(manifest.get("preprocess"), dict):
        if flags and reporter is not None:
            reporter.warn("--input-size/--layout/--preprocess/--resize/--mean/--std ignored: the manifest records "
                          "the preprocessing the model was exported with, and that is what is used")
        return PreprocessSpec.from_dict(manifest["preprocess"])
    if graph is None and model_path is not None and Path(model_path).is_file() \
            and Path(model_path).suffix.lower() == ".onnx":
        graph = read_graph_input(model_path)
    if graph is None and size is None and required:
        raise ResdeployError(f"{what} has no manifest recording its preprocessing",
                             hint="pass --input-size (and --resize/--mean/--std unless they are ImageNet's), "
                                  "or export it with `resdeploy export`")
    spec, note = spec_without_manifest(graph, input_size=size, layout=layout, preset=preset, resize=resize,
                                       mean=mean, std=std, what=what, required=required)
    if reporter is not None:
        reporter.info(note)
        if model_path is not None and Path(model_path).is_file() and Path(model_path).suffix.lower() == ".onnx" \
                and (several := outputs_note(model_path)) is not None:
            reporter.warn(several)
    return spec


def resolve_artifact(ref: str | os.PathLike[str], *, role: str = "model", zoo: bool = True,
                     verify: bool = True, onnx_dir: bool = True) -> Artifact:
    """What the user typed -> an ``Artifact``; one-line errors for what cannot be one.

    ``role`` names the thing in messages ("candidate", "reference"); ``zoo=False`` makes a
    name that is not a path an error; ``verify`` checks the file against its manifest's
    record; ``onnx_dir=False`` keeps a directory without ``model.onnx`` as it is (kind
    "dir", for engines that read a directory).
    """
    text = os.fspath(ref)
    what = "file" if role == "model" else f"{role} model"
    if not is_model_path(text):
        if not zoo:
            raise ResdeployError(f"no such {what}: {text}")
        return Artifact(text, "zoo", None)
    p = Path(text)
    if not p.exists():
        raise ResdeployError(f"no such {what}: {p}")
    if p.is_file() and p.suffix.lower() == ".json":
        if p.name != MANIFEST_NAME:
            raise ResdeployError(f"{p} is a JSON file, not a model",
                                 hint=f"pass the {role}'s model.onnx or its artifact directory")
        load_manifest(p.parent, required=True)  # one line when it is not a resdeploy manifest
        p = p.parent
    if p.is_dir():
        manifest = load_manifest(p)
        name = manifest.artifact.file if manifest and manifest.artifact else "model.onnx"
        if not (p / name).is_file():
            if not onnx_dir:
                return Artifact(text, "dir", p, manifest)
            inside = artifact_dirs_inside(p)
            files = sorted(f.name for f in p.glob("*.onnx") if f.is_file())  # a folder of foreign models
            named = ([f"one of its artifact directories: {', '.join(inside)}"] if inside else []) + \
                ([f"one of its ONNX files: {', '.join(str(p / f) for f in files[:3])}"
                  + (f" (and {len(files) - 3} more)" if len(files) > 3 else "")] if files else [])
            hint = "pass " + ", or ".join(named) if named else None
            if role == "model":
                raise ResdeployError(f"no such file: {p / name}", hint=hint)
            raise ResdeployError(f"no {name} in {p}", hint=hint or f"pass the {role}'s model.onnx or the directory "
                                                                   "`resdeploy export`/`quantize` wrote")
        p = p / name
    if not p.is_file():
        raise ResdeployError(f"{p} is not a file")
    check_not_empty(p)
    try:
        with open(p, "rb"):
            pass
    except OSError as exc:
        raise ResdeployError(f"cannot read {p}: {exc.strerror}") from None
    kind = "engine" if is_engine_file(p) else "onnx"
    try:
        manifest = load_manifest(p)  # an engine plan's is <plan>.json, and it names that plan
    except ResdeployError:
        if verify or kind == "onnx":
            raise
        manifest = None  # an unreadable <plan>.json, not checked: engine_manifest() says what is wrong with it
    if manifest is not None and manifest.artifact is not None and manifest.artifact.file != p.name:
        manifest = None  # a manifest.json beside it that describes another file
    if manifest is not None and verify:
        manifest.verify(p.parent, manifest_path_for(p))
    return Artifact(text, kind, p, manifest)


__all__ = ["Artifact", "InputFacts", "preprocess_from", "resolve_artifact"]
