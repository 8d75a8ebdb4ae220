"""``validate``: does a precision variant (or another engine) still give the reference's answers?

The candidate and the reference run on the very same tensors (one load, one
preprocessing, from the candidate's manifest), batch by batch, so any difference is
the model's and not the data pipeline's. On a labelled folder both get top-1/top-5
accuracy; on any data the logits are compared with ``resdeploy.compare``.

Gates decide pass or fail. With no gate given, the default is MLPerf's closed-division
rule on labelled data (candidate top-1 >= 99% of the reference's) and top-1 agreement
>= 99% on unlabelled data. Any explicit gate replaces the default, so a CI job states
exactly what it checks.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from resdeploy.artifacts import Lineage, commit_file, load_onnx, manifest_path_for, read_manifest
from resdeploy.compare import Gate, RunComparison, compare_runners, infer_batched, make_gate
from resdeploy.console import Reporter
from resdeploy.errors import ResdeployError
from resdeploy.onnx_io import GraphInput, layout_of, read_graph_input, to_layout
from resdeploy.preprocess import PreprocessFlags, PreprocessSpec
from resdeploy.preprocess_graph import image_array, is_raw_image_input
from resdeploy.resolve import preprocess_from, resolve_artifact

MLPERF_TOP1_RATIO = 0.99
DEFAULT_MIN_AGREEMENT = 0.99
_MAX_LISTED = 100  # skipped files listed by name in the result (the count is always exact)


@dataclass
class ValidateConfig(PreprocessFlags):
    """What to compare, on which data, and the gates (None: the defaults described above).

    The preprocessing flags (``PreprocessFlags``) apply to a candidate without a manifest
    (size and layout default to the graph's).
    """

    data: str | None = None  # labelled folder (class subfolders), unlabelled folder, .npy/.npz, synthetic
    reference: str | None = None  # None: the FP32 parent in the candidate's manifest; "torch"; or a path
    engine: str = "ort"  # engine that runs the candidate
    device: str = "cpu"
    threads: int | None = None
    batch_size: int = 32
    samples: int | None = None  # None: all samples (sorted); N: a seeded selection of N
    seed: int = 0
    labels: str | None = None  # class name -> index file; default: sorted folder names (ImageFolder)
    max_top1_drop: float | None = None  # in percentage points, e.g. 1.0
    min_top1_ratio: float | None = None  # candidate top-1 / reference top-1, e.g. 0.99 (MLPerf)
    min_agreement: float | None = None  # fraction of samples whose top-1 class matches the reference's
    max_abs_error: float | None = None  # on logits
    min_cosine: float | None = None  # worst per-sample cosine similarity of logits

    def explicit_gates(self) -> bool:
        return any(v is not None for v in (self.max_top1_drop, self.min_top1_ratio, self.min_agreement,
                                            self.max_abs_error, self.min_cosine))

    def check(self) -> None:
        if not self.data:
            raise ResdeployError("validate needs data: pass --data (a labelled image folder, images, .npy/.npz, or synthetic)")
        if self.batch_size <= 0:
            raise ResdeployError(f"--batch-size must be positive, got {self.batch_size}")
        for name, v, lo, hi in (("--min-agreement", self.min_agreement, 0, 1), ("--min-top1-ratio", self.min_top1_ratio, 0, 10),
                                ("--min-cosine", self.min_cosine, -1, 1), ("--max-top1-drop", self.max_top1_drop, -100, 100)):
            if v is not None and not lo <= v <= hi:
                raise ResdeployError(f"{name} must be between {lo} and {hi}, got {v}")
        if self.max_abs_error is not None and self.max_abs_error < 0:
            raise ResdeployError(f"--max-abs-error must be >= 0, got {self.max_abs_error}")


@dataclass
class ValidateResult:
    candidate: dict[str, Any]
    reference: dict[str, Any]
    data: dict[str, Any]
    samples: int
    labelled: bool
    accuracy: dict[str, dict[str, float]] | None  # {"reference": {top1, top5}, "candidate": {...}}
    top1_drop_points: float | None
    parity: dict[str, Any]
    gates: list[Gate]
    passed: bool
    seconds: float
    skipped_files: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["schema"] = "resdeploy.validate/1"
        return d

    def failures(self) -> list[Gate]:
        return [g for g in self.gates if not g.passed]

    def junit_xml(self) -> str:
        """JUnit XML, one test case per gate, so CI systems list each gate as a test."""
        fails = self.failures()
        props = {"candidate": self.candidate.get("path"), "reference": self.reference.get("path"),
                 "data": self.data.get("source"), "samples": self.samples,
                 "top1_agreement": self.parity.get("top1_agreement")}
        if self.accuracy:
            props.update({"reference_top1": self.accuracy["reference"]["top1"],
                          "candidate_top1": self.accuracy["candidate"]["top1"]})
        lines = ['<?xml version="1.0" encoding="UTF-8"?>',
                 f'<testsuites name="resdeploy validate" tests="{len(self.gates)}" failures="{len(fails)}" '
                 f'time="{self.seconds:.3f}">',
                 f'  <testsuite name="resdeploy.validate" tests="{len(self.gates)}" failures="{len(fails)}" '
                 f'errors="0" skipped="0" time="{self.seconds:.3f}">',
                 "    <properties>"]
        lines += [f"      <property name={quoteattr(k)} value={quoteattr(str(v))}/>" for k, v in props.items()]
        lines.append("    </properties>")
        classname = quoteattr(f"resdeploy.validate.{Path(str(self.candidate.get('path', 'candidate'))).parent.name}")
        for g in self.gates:
            text = f"{g.text()} on {g.samples} samples"
            lines.append(f"    <testcase classname={classname} name={quoteattr(g.name)} time=\"0\">")
            if not g.passed:
                lines.append(f"      <failure message={quoteattr(text + ' failed')} type=\"GateFailure\">"
                             f"{escape(g.description)}</failure>")
            lines.append(f"      <system-out>{escape(text + ' — ' + g.description)}</system-out>")
            lines.append("    </testcase>")
        lines += ["  </testsuite>", "</testsuites>", ""]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------
def _target_of(candidate_path: Path, manifest: dict[str, Any] | None) -> Any:
    """The quantize target of the candidate; a plan's is that of the ONNX it was compiled from (its lineage)."""
    if not manifest:
        return None
    if manifest.get("stage") == "build" and isinstance(manifest.get("parent"), dict):
        source = Lineage.from_dict(manifest["parent"]).resolve(candidate_path.parent)
        return (read_manifest(source) or {}).get("target") if source is not None else None
    return manifest.get("target")


def _resolve_reference(candidate_path: Path, manifest: dict[str, Any] | None, reference: str | None
                       ) -> tuple[str, str, dict[str, Any]]:
    """(engine, model, description) of the reference."""
    if reference in (None, "", "parent", "torch"):
        if manifest is None and reference == "torch":
            raise ResdeployError(f"--reference torch needs a PyTorch model, and {candidate_path} has no resdeploy "
                                 "manifest saying how to build one",
                                 hint="pass --reference PATH (an FP32 ONNX model of the same network)")
        if manifest is None:
            raise ResdeployError(f"{candidate_path} has no manifest naming its FP32 parent",
                                 hint="pass --reference PATH (the FP32 ONNX model) or --reference torch")
        # the manifest's typed lineage (not precision.pipeline: quantize's budget runs validate)
        lineage = manifest.get("parent")
        parent = Lineage.from_dict(lineage).resolve(candidate_path.parent) if isinstance(lineage, dict) else None
        named_in = manifest_path_for(candidate_path)
        if parent is not None and manifest.get("stage") == "build" and (lineage or {}).get("precision") != "fp32":
            # a plan's lineage names the ONNX it was compiled from; an FP16/INT8 one is a variant,
            # whose own parent is the FP32 reference
            named_in, variant = manifest_path_for(parent), read_manifest(parent)
            lineage = (variant or {}).get("parent")
            parent = Lineage.from_dict(lineage).resolve(parent.parent) if isinstance(lineage, dict) else None
            if parent is None and not lineage:
                raise ResdeployError(f"{named_in} names no FP32 parent of the ONNX {candidate_path} was built from",
                                     hint="pass --reference PATH (the FP32 ONNX model) or --reference torch")
        if parent is None:
            if lineage:
                raise ResdeployError(f"the FP32 model named in {named_in} is gone: "
                                     f"{lineage.get('path') or lineage.get('abspath')}", hint="pass --reference PATH")
            if reference == "torch" and manifest.get("model"):
                parent = candidate_path  # an FP32 export itself, compared with its PyTorch model
            else:
                from_torch = (manifest.get("model") or {}).get("source") not in ("keras",)
                raise ResdeployError(f"{candidate_path} has no FP32 parent in its manifest (is it the FP32 export?)",
                                     hint="pass --reference PATH, or --reference torch to compare with PyTorch"
                                     if from_torch else "pass --reference PATH (a Keras export has no PyTorch "
                                     "model to compare with; its export already checked parity against Keras)")
        if reference == "torch":
            pman = read_manifest(parent)
            if not pman:
                raise ResdeployError(f"--reference torch needs a PyTorch model, and {parent} has no resdeploy "
                                     "manifest saying how to build one", hint="pass --reference PATH")
            if not pman.get("model"):
                raise ResdeployError(f"the manifest beside {parent} does not say how to rebuild the PyTorch model",
                                     hint="export with `resdeploy export`, or pass --reference PATH")
            return "torch", str(parent.parent), {"engine": "torch", "path": str(parent.parent), "kind": "pytorch"}
        return "ort", str(parent), {"engine": "ort", "path": str(parent), "kind": "parent"}
    p = Path(reference)
    if not p.exists():
        raise ResdeployError(f"no such reference model: {reference}", hint="pass an ONNX file/artifact dir, or 'torch'")
    path = model_file(p, "ort", "reference")
    load_onnx(path)
    return "ort", str(path), {"engine": "ort", "path": str(path), "kind": "path"}


def _check_same_input(cand_file: Path, cand: GraphInput, ref_file: Path) -> None:
    """Both models get the candidate's preprocessed tensors, so they must take the same input.

    A graph taking uint8 pixels (its normalisation inside) and one taking normalised floats
    cannot both be fed right by one preprocessing, nor can graphs of other channels or
    sizes: the comparison would measure the mismatch.
    """
    if ref_file.suffix.lower() != ".onnx":
        return
    ref = read_graph_input(ref_file)
    if is_raw_image_input(cand.dtype, cand.shown):
        return  # preprocessing merged into the graph: run_local feeds it the decoded images themselves
    if (cand.dtype == "uint8") != (ref.dtype == "uint8"):
        raise ResdeployError(f"{cand_file} takes {cand.dtype} input and the reference {ref_file} takes {ref.dtype}: "
                             "validate feeds both the same preprocessed tensors, which cannot be right for both",
                             hint="pass a --reference that takes the same input, or validate each on labelled data")
    # Channels and size, whatever the layout (an NHWC export checked against its NCHW network is fine).
    if (ref.channels, ref.height_width) != (cand.channels, cand.height_width) and None not in (
            ref.channels, cand.channels, ref.height_width, cand.height_width):
        def shown(g: GraphInput) -> str:
            assert g.height_width is not None
            return f"{g.channels}x{g.height_width[0]}x{g.height_width[1]}"

        raise ResdeployError(f"{cand_file} takes {shown(cand)} (channels x height x width) samples and the reference "
                             f"{ref_file} takes {shown(ref)}: they are not the same network's input",
                             hint="pass the candidate's own FP32 model as --reference")


def model_file(path: Path, engine: str, role: str = "candidate") -> Path:
    """The model a user meant by ``path``: ``resolve.resolve_artifact``'s answer, as a path.

    Engines other than ONNX Runtime/OpenVINO take a directory as it is (a torch artifact,
    an engine directory).
    """
    onnx_engine = engine in ("ort", "openvino")
    art = resolve_artifact(path, role=role, zoo=False, onnx_dir=onnx_engine)
    assert art.path is not None
    return art.path


def run_local(ds: Any, ref_cfg: Any, cand_cfg: Any, batch_size: int, reporter: Reporter, data_reporter: Reporter,
              *, on_first: Callable[[np.ndarray], None] | None = None) -> RunComparison:
    """In-process execution: both runners loaded here, then ``compare.compare_runners`` over the data's batches."""
    with reporter.step("loading the reference and the candidate"):
        ref_runner, cand_runner = _create_runners(ref_cfg, cand_cfg)
    try:
        side, feed = candidate_side(cand_runner, ds)
        return compare_runners(reference_side(ref_runner, ds), side,
                               ds.batches(batch_size, data_reporter, description="validating"),
                               on_first=on_first, candidate_inputs=feed)
    finally:  # compare_runners closes the runners it is given; a callable side's runner is closed here
        cand_runner.__exit__(None, None, None)
        ref_runner.__exit__(None, None, None)


# (dataset, reference RunnerConfig, candidate RunnerConfig, batch size, reporter, data reporter, *, on_first)
# -> the RunComparison of the two over the data, in sample order.
Executor = Callable[..., RunComparison]


def validate(source: str | os.PathLike[str], config: ValidateConfig | None = None, *,
             reporter: Reporter | None = None, reference: str | None = None, data: str | None = None,
             executor: Executor | None = None, **kwargs: Any) -> ValidateResult:
    """Compare the candidate ``source`` with its reference on ``data`` and apply the gates.

    ``reference=``/``data=`` and ``ValidateConfig`` fields by keyword work as in earlier releases.

    Bad input raises ``ResdeployError`` (exit 2). A failed gate does not raise: the
    result says ``passed=False`` (the CLI turns that into exit code 1). ``executor`` runs
    the models over the data (default ``run_local``; ``resdeploy.scale`` passes a Ray one):
    everything before and after it, and so the result, is the same whichever runs.
    """
    from resdeploy.data import open_data
    from resdeploy.runners import RunnerConfig

    candidate = source
    cfg = config or ValidateConfig(**kwargs)
    if config is not None and kwargs:
        raise TypeError("pass either config= or keyword settings, not both")
    if data is not None:
        cfg = replace(cfg, data=data)
    if reference is not None:
        cfg = replace(cfg, reference=reference)
    cfg.check()
    rep = reporter or Reporter(quiet=True)
    t0 = time.perf_counter()

    cand_file = model_file(Path(candidate), cfg.engine)
    if cand_file.is_file() and (cfg.engine == "ort" or cand_file.suffix.lower() == ".onnx"):
        load_onnx(cand_file)  # one line for a .pth/.txt/corrupt file, not ONNX Runtime's protobuf error
    manifest = read_manifest(cand_file)
    spec: PreprocessSpec = preprocess_from(manifest, **cfg.preprocess_flags(), what=str(cand_file), reporter=rep,
                                           model_path=cand_file)
    ref_engine, ref_model, ref_desc = _resolve_reference(cand_file, manifest, cfg.reference)
    # The candidate's graph input, read once: its kind (against the reference's) and its per-sample shape.
    cand_input = read_graph_input(cand_file) if cand_file.suffix.lower() == ".onnx" else None
    if ref_engine == "ort" and cand_input is not None:
        _check_same_input(cand_file, cand_input, Path(ref_model))
    # Warnings that qualify the result go into it (--json, CI), not only to stderr.
    warnings: list[str] = []
    if cfg.engine == "ort":
        from resdeploy.precision.isa import host_warning

        if (isa_warning := host_warning(manifest)) is not None:
            warnings.append(isa_warning)
    ref_manifest = read_manifest(ref_model) if ref_engine == "ort" else read_manifest(Path(ref_model) / "model.onnx")
    if ref_manifest and isinstance(ref_manifest.get("preprocess"), dict):
        if PreprocessSpec.from_dict(ref_manifest["preprocess"]) != spec:
            warnings.append("the reference's manifest records different preprocessing than the candidate's; "
                            "both run on the candidate's")
    assert cfg.data is not None  # checked by cfg.check()
    # The data's warnings (skipped files, empty classes) qualify the result: into it, printed once by the CLI.
    data_rep = _Collecting(quiet=rep.quiet, sink=warnings)
    # The graph's own per-sample shape (a 1- or 4-channel model takes arrays, not 3-channel images).
    ds = open_data(cfg.data, spec, samples=cfg.samples, seed=cfg.seed, labels_file=cfg.labels, reporter=data_rep,
                   tensor_shape=cand_input.sample_shape if cand_input is not None else None)
    if cfg.labels is None and isinstance((manifest or {}).get("classes"), list):
        from resdeploy.training import label_by_class_name  # the class names `train` recorded

        warnings.extend(label_by_class_name(ds, (manifest or {})["classes"]))
    needs_labels = _label_gates(cfg)
    if needs_labels and not ds.labelled:  # before running both models over the whole data set
        raise ResdeployError(f"{', '.join(needs_labels)} need{'s' if len(needs_labels) == 1 else ''} labelled data: "
                             "one subfolder per class under --data, or labels in an .npz")

    ref_cfg = RunnerConfig(engine=ref_engine, model=ref_model, threads=cfg.threads)
    cand_cfg = RunnerConfig(engine=cfg.engine, model=str(cand_file), device=cfg.device, threads=cfg.threads)
    def check_labels(first: np.ndarray) -> None:
        num_classes = first.shape[1]
        warnings.extend(_check_labels(ds, num_classes, cfg.labels))
        if ds.labelled and num_classes <= 5:
            warnings.append(f"the model has {num_classes} outputs: top-5 accuracy is 100% by definition")

    from resdeploy.prepare import prepare_runner_config

    ref_cfg, cand_cfg = prepare_runner_config(ref_cfg, rep), prepare_runner_config(cand_cfg, rep)
    run = (executor or run_local)(ds, ref_cfg, cand_cfg, cfg.batch_size, rep, data_rep, on_first=check_labels)
    ref_all = run.reference
    metrics = run.metrics()
    accuracy = run.accuracy()
    drop = None
    if accuracy is not None:
        drop = 100.0 * (accuracy["reference"]["top1"] - accuracy["candidate"]["top1"])
    if accuracy is not None and (not cfg.explicit_gates() or _label_gates(cfg)):
        _check_reference_accuracy(accuracy["reference"]["top1"], int(ref_all.shape[0]), int(ref_all.shape[1]),
                                  cfg.labels)
    gates = _gates(cfg, metrics.to_dict(), accuracy, drop, run.samples)
    cand_desc = {"engine": cfg.engine, "path": str(cand_file),
                 "precision": (manifest or {}).get("precision"), "target": _target_of(cand_file, manifest)}
    data_desc = ds.describe()
    data_desc["samples"] = int(ref_all.shape[0])
    data_desc["skipped_files"] = len(ds.skipped)
    data_desc["skipped"] = [{"file": n, "reason": why} for n, why in ds.skipped[:_MAX_LISTED]]
    data_desc["unsupported"] = [n for n, _ in ds.unsupported[:_MAX_LISTED]]
    if ds.skipped:
        # The denominator changed: say so in the result, not only in a stderr line.
        warnings.append(f"accuracy and agreement are over the {int(ref_all.shape[0])} samples that loaded: "
                        f"{len(ds.skipped)} file(s) that could not be read are not counted (data.skipped in --json)")
    if accuracy is not None and accuracy["reference"]["top1"] == 0:
        # Then every candidate passes a ratio or drop gate: the gate checks nothing.
        warnings.append("the reference gets 0% top-1 on these labels, so accuracy gates say nothing: are the "
                        "labels the model's classes (--labels), and are the weights trained?")
    return ValidateResult(
        candidate=cand_desc, reference=ref_desc, data=data_desc, samples=int(ref_all.shape[0]),
        labelled=run.labels is not None, accuracy=accuracy, top1_drop_points=drop, parity=metrics.to_dict(), gates=gates,
        passed=all(g.passed for g in gates), seconds=round(time.perf_counter() - t0, 3),
        skipped_files=len(ds.skipped), warnings=warnings,
    )


def _check_reference_accuracy(top1: float, samples: int, num_classes: int, labels_file: str | None) -> None:
    """Exit 2, not a pass, when the reference is below chance on the labels: the gate would measure nothing.

    A ratio or drop gate against a reference that gets nothing right passes any candidate.
    Below chance means 0% top-1, or (with enough samples to tell: 5 or more expected hits)
    under a third of the chance rate 1/num_classes. Either way the labels are not the
    model's classes far more often than the weights are untrained.
    """
    expected = samples / max(num_classes, 1)
    correct = round(top1 * samples)
    if correct > 0 and not (expected >= 5 and correct < expected / 3):
        return
    cause = (f"the mapping in {labels_file} is not the model's class order" if labels_file else
             "the class folders, numbered by sorted name (0, 1, ...), are not in the model's class order")
    raise ResdeployError(f"the reference scores {100 * top1:.1f}% top-1 on {samples} labelled samples, below "
                         f"chance ({100 / max(num_classes, 1):.2g}% for {num_classes} classes), so an accuracy "
                         f"gate would measure nothing: likely {cause}",
                         hint="pass --labels FILE mapping folder names to the model's class indices, or gate on "
                              "agreement alone (--min-agreement); are the weights trained?")


def _check_labels(ds: Any, num_classes: int, labels_file: str | None) -> list[str]:
    """Refuse labels the model has no output for; warnings about the label mapping."""
    if ds.labels is None:
        return []
    top = max(ds.labels)
    if top >= num_classes:
        where = (f"the mapping in {labels_file}" if labels_file else "the sorted class folders" if ds.classes
                 else f"the labels in {ds.source}")
        raise ResdeployError(f"labels do not match the model: {where} gives class index {top}, "
                             f"but the model has {num_classes} classes",
                             hint="pass --labels FILE mapping folder names to the model's class indices")
    if ds.classes and len(ds.classes) == 1 and num_classes > 1 and not labels_file:
        return [f"only one class folder ('{ds.classes[0]}') under {ds.source}: every image is labelled class 0; "
                f"if these images are unlabelled, pass --data {Path(ds.source) / ds.classes[0]} (agreement only), "
                "or pass --labels FILE to give the folder its class index"]
    if ds.classes and len(ds.classes) < num_classes and not labels_file:
        return [f"{len(ds.classes)} class folders for a {num_classes}-class model: classes are numbered by sorted "
                "folder name (0, 1, ...); pass --labels FILE if the folders are a subset of the model's classes"]
    return []


@dataclass
class _Collecting(Reporter):
    """A reporter that keeps warnings (for ``ValidateResult.warnings``) instead of printing them."""

    sink: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        self.sink.append(message)


def _label_gates(cfg: ValidateConfig) -> list[str]:
    return [n for n, v in (("--max-top1-drop", cfg.max_top1_drop), ("--min-top1-ratio", cfg.min_top1_ratio))
            if v is not None]


def _decoded_images(ds: Any, batch: Any) -> list[np.ndarray]:
    """The batch's image files decoded to uint8 RGB HWC, for a model with in-graph preprocessing."""
    from resdeploy.preprocess import load_image

    return [image_array(load_image((ds.root / n) if ds.root else Path(n))) for n in batch.names]


def reference_side(ref_runner: Any, ds: Any) -> Any:
    """The reference as ``compare`` runs it: the runner, or (an NCHW model checking its NHWC export, or the
    other way round) a function feeding it the same images transposed to its layout. ``run_local`` and
    ``validate --ray``'s workers both use it."""
    spec = getattr(ds, "spec", None)
    ref_dims = tuple(d if isinstance(d, int) and d > 0 else None for d in ref_runner.input_meta().shape)
    ref_layout = layout_of(ref_dims)
    if spec is None or ref_layout is None or ref_layout == spec.layout:
        return ref_runner
    return functools.partial(_infer_in_layout, ref_runner, spec.layout, ref_layout)


def candidate_side(cand_runner: Any, ds: Any) -> tuple[Any, Callable[[Any], Any] | None]:
    """The candidate as ``compare`` runs it, and what it is fed instead of the reference's tensors (or None).

    A model with its preprocessing in the graph gets the same samples as decoded images,
    one per call (their sizes differ). ``run_local`` and ``validate --ray``'s workers both use it.
    """
    meta = cand_runner.input_meta()
    if not is_raw_image_input(meta.dtype, meta.shape):
        return cand_runner, None
    if ds.kind != "images":
        raise ResdeployError("a model with its preprocessing in the graph validates on an image folder (--data DIR)")
    return functools.partial(_infer_images, cand_runner), functools.partial(_decoded_images, ds)


def _infer_in_layout(runner: Any, source: str, target: str, batch: np.ndarray) -> np.ndarray:
    """The runner on ``batch`` (in ``source`` layout) transposed to the ``target`` layout it takes."""
    return infer_batched(runner, to_layout(batch, source, target))


def _infer_images(runner: Any, images: list[np.ndarray]) -> np.ndarray:
    """Feed a model with in-graph preprocessing the decoded images, one per call (their sizes differ)."""
    return np.concatenate([np.asarray(runner.infer(im[None]), dtype=np.float32).reshape(1, -1) for im in images])


def _create_runners(ref_cfg: Any, cand_cfg: Any) -> tuple[Any, Any]:
    """Both runners loaded (reference first), so a candidate that cannot load fails before any data runs."""
    from resdeploy.runners import create_runner

    ref = create_runner(ref_cfg).__enter__()
    try:
        cand = create_runner(cand_cfg).__enter__()
    except BaseException:
        ref.__exit__(None, None, None)
        raise
    return ref, cand


def _gates(cfg: ValidateConfig, m: dict[str, Any], accuracy: dict[str, dict[str, float]] | None,
           drop: float | None, samples: int) -> list[Gate]:
    """The gates as data: each names its metric, comparison, threshold and the samples it was measured on."""
    gates: list[Gate] = []
    explicit = cfg.explicit_gates()
    min_ratio = cfg.min_top1_ratio
    min_agree = cfg.min_agreement
    if not explicit:
        if accuracy is not None:
            min_ratio = MLPERF_TOP1_RATIO
        else:
            min_agree = DEFAULT_MIN_AGREEMENT
    needs_labels = _label_gates(cfg)
    if accuracy is None and needs_labels:
        raise ResdeployError(f"{', '.join(needs_labels)} need{'s' if len(needs_labels) == 1 else ''} labelled data: "
                             "one subfolder per class under --data, or labels in an .npz")
    if accuracy is not None and min_ratio is not None:
        ref, cand = accuracy["reference"]["top1"], accuracy["candidate"]["top1"]
        ratio = cand / ref if ref > 0 else (1.0 if cand >= ref else 0.0)
        gates.append(make_gate("top1_ratio", "top1", ratio, ">=", min_ratio, samples,
                               f"candidate top-1 {cand:.4f} / reference top-1 {ref:.4f}"
                               + (" (MLPerf's 99% rule)" if not explicit else "")))
    if drop is not None and cfg.max_top1_drop is not None:
        gates.append(make_gate("top1_drop_points", "top1", drop, "<=", cfg.max_top1_drop, samples,
                               "reference top-1 minus candidate top-1, in percentage points"))
    if min_agree is not None:
        gates.append(make_gate("top1_agreement", "top1_agreement", m["top1_agreement"], ">=", min_agree, samples,
                               "fraction of samples whose top-1 class matches the reference's"))
    if cfg.max_abs_error is not None:
        gates.append(make_gate("max_abs_error", "max_abs_error", m["max_abs_error"], "<=", cfg.max_abs_error, samples,
                               "largest absolute difference between logits"))
    if cfg.min_cosine is not None:
        gates.append(make_gate("cosine_min", "cosine_min", m["cosine_min"], ">=", cfg.min_cosine, samples,
                               "worst per-sample cosine similarity of the logits"))
    return gates


def write_junit(result: ValidateResult, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """The gates as JUnit XML (``artifacts.commit_file``: an existing file is replaced only with ``force``)."""
    from resdeploy.artifacts import check_output_file

    check_output_file(path, force=force, flag="--junit", example="validate.xml")
    return commit_file(path, result.junit_xml(), force=force)


__all__ = ["Executor", "Gate", "ValidateConfig", "ValidateResult", "infer_batched", "run_local",
           "validate", "write_junit"]
