"""Train or fine-tune a zoo model on an image folder: the weights every later stage starts from.

Accuracy numbers after export and quantization only mean something for a trained model,
so this is the training loop of the ResNet articles the project grew from, kept small and
exact: the images go through ``data.open_data`` with the model's own ``PreprocessSpec``
(the preprocessing calibration and validation use, so a trained model never sees tensors
prepared differently later), augmentation is light (a random crop of the padded tensor
and, where mirror images are the same class, a horizontal flip), SGD with Nesterov
momentum and a one-cycle schedule. Every random choice comes from ``seed``, and torch's
deterministic algorithms are on, so the same command on the same CPU and thread count
gives the same weights bit for bit. Across CPUs that holds only with
``pin_portable_cpu_kernels()`` called first: PyTorch otherwise picks AVX-512 code paths where
the CPU has them, and those round differently.

The output folder holds ``model.safetensors`` and ``manifest.json`` (stage ``train``):
the class order (the sorted class folder names), the training data's sha256, the
validation accuracy and the per-epoch history. ``export --weights`` reads that manifest
and carries the class names into the exported artifact.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from resdeploy import artifacts
from resdeploy.console import QUIET, Reporter
from resdeploy.errors import ResdeployError, check_positive_int

WEIGHTS_FILE = "model.safetensors"
# PyTorch's own kernels, oneDNN's and MKL's, each capped at AVX2 (each reads its variable once).
PORTABLE_CPU_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
STAGE = "train"
_EVAL_BATCH = 256


@dataclass
class TrainConfig:
    """What ``resdeploy train`` takes; every field has the flag's name."""

    data: str
    output: str
    model: str = "resnet20"
    val_data: str | None = None
    val_fraction: float = 0.1
    epochs: int = 10
    lr: float = 0.1
    batch_size: int = 64
    seed: int = 0
    input_size: int | None = None
    weight_decay: float = 5e-4
    flip: bool = True
    crop_padding: int | None = None  # default: input size / 8 (4 pixels at 32, the CIFAR recipe)
    from_weights: str | None = None
    threads: int | None = None
    force: bool = False

    def check(self) -> None:
        """Refuse bad settings before any image is read."""
        for value, flag in ((self.epochs, "--epochs"), (self.batch_size, "--batch-size"),
                            (self.input_size, "--input-size"), (self.threads, "--threads")):
            check_positive_int(value, flag)
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ResdeployError(f"--lr must be a positive number, got {self.lr!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ResdeployError(f"--weight-decay must be >= 0, got {self.weight_decay!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ResdeployError(f"--seed must be a non-negative integer, got {self.seed!r}")
        if self.val_data is None and not 0.0 < self.val_fraction < 1.0:
            raise ResdeployError(f"--val-fraction must be between 0 and 1, got {self.val_fraction}")
        if self.crop_padding is not None and self.crop_padding < 0:
            raise ResdeployError(f"--crop-padding must be >= 0, got {self.crop_padding}")


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    val_top1: float
    seconds: float


@dataclass
class TrainResult:
    """Where the weights went and how good they are on the held-out images."""

    output: Path
    weights_path: Path
    manifest: dict[str, Any]
    val_top1: float
    history: list[EpochRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"output": str(self.output), "weights_path": str(self.weights_path), "val_top1": self.val_top1,
                "history": [asdict(h) for h in self.history], "manifest": self.manifest}


# --- reading a training output back (for export --weights) ---------------------------------------
def trained_weights(path: str | os.PathLike[str]) -> tuple[Path, dict[str, Any] | None]:
    """The weights file to load and, when ``train`` wrote it, its training manifest.

    ``path`` is a training output folder (its ``model.safetensors``) or any weights file; a
    file with a training manifest beside it that names it (same sha256) comes back with it.
    """
    p = Path(path)
    if p.is_dir():
        manifest = artifacts.read_manifest(p)
        if manifest is None or manifest.get("stage") != STAGE:
            raise ResdeployError(f"weights path is not a file: {p} (a folder, but not the output of `resdeploy train`)",
                                 hint=f"pass the weights file, or a folder holding {WEIGHTS_FILE} and its manifest")
        return p / str(manifest["weights"]["file"]), manifest
    if not p.is_file():
        return p, None  # the weights loader says what is wrong with it
    try:
        manifest = artifacts.read_manifest(p)
    except ResdeployError:
        return p, None  # someone else's manifest.json beside a plain checkpoint
    if not manifest or manifest.get("stage") != STAGE:
        return p, None
    recorded = manifest.get("weights") or {}
    if recorded.get("file") != p.name or recorded.get("sha256") != artifacts.sha256_file(p):
        return p, None
    return p, manifest


def export_facts(manifest: dict[str, Any]) -> dict[str, Any]:
    """What an exported manifest keeps from the training manifest (under ``training``)."""
    return {"classes": list(manifest["classes"]), "data_sha256": manifest["data"]["sha256"],
            "val_top1": manifest["val"]["top1"], "epochs": manifest["train"]["epochs"],
            "input_size": manifest["model"]["input_size"]}


# --- the data ---------------------------------------------------------------------------------
def folder_sha256(ds: Any) -> str:
    """sha256 over (relative path, file sha256) of every image in a folder data set, in sorted order.

    Names are part of the hash: moving a file to another class folder changes its label.
    """
    h = hashlib.sha256()
    for item in sorted(ds.items):
        rel = Path(item).relative_to(ds.root).as_posix() if ds.root else str(item)
        h.update(rel.encode() + b"\0" + artifacts.sha256_file(item).encode() + b"\n")
    return h.hexdigest()


def _open_folder(source: str, spec: Any, reporter: Reporter, role: str) -> Any:
    from resdeploy.data import check_source, open_data

    path = check_source(source)
    if not path.is_dir():
        raise ResdeployError(f"{role} data must be an image folder with one subfolder per class, got {source}")
    ds = open_data(path, spec, require_labels=True, reporter=reporter)
    if ds.classes is None:
        raise ResdeployError(f"{source} has images at its top level, so it is unlabelled",
                             hint="put each class's images in a subfolder named after the class")
    return ds


def _load(ds: Any, reporter: Reporter, description: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = ds.load(reporter, description)
    assert y is not None
    return x, y


def _split(n: int, labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split that keeps the class balance: ``fraction`` of each class is held out (at least one)."""
    rng = np.random.default_rng([seed, 7])
    val: list[int] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        k = max(1, int(round(len(idx) * fraction))) if len(idx) > 1 else 0
        val.extend(idx[:k].tolist())
    mask = np.zeros(n, dtype=bool)
    mask[val] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


# --- the model --------------------------------------------------------------------------------
def _build(cfg: TrainConfig, num_classes: int, reporter: Reporter) -> tuple[Any, Any, dict[str, Any] | None]:
    """A trainable model (and its ModelSpec): seeded init, or a checkpoint to fine-tune."""
    import torch

    from resdeploy.models.weights import head_classes, read_state_dict, weights_record
    from resdeploy.models.zoo import ModelSpec

    if cfg.from_weights is None:
        spec = ModelSpec(cfg.model, num_classes=num_classes, seed=cfg.seed, input_size=cfg.input_size)
        model = spec.build()
        start = None
    else:
        source, _ = trained_weights(cfg.from_weights)
        head = head_classes(read_state_dict(source))
        spec = ModelSpec(cfg.model, weights=str(source), num_classes=head, seed=cfg.seed, input_size=cfg.input_size)
        model = spec.build()
        start = weights_record(source)
        fc = getattr(model, "fc", None)
        if head != num_classes:
            if not isinstance(fc, torch.nn.Linear):
                raise ResdeployError(f"{cfg.from_weights} has {head} classes, the data {num_classes}, and "
                                     f"{cfg.model} has no 'fc' layer to replace")
            torch.manual_seed(cfg.seed)
            model.fc = torch.nn.Linear(fc.in_features, num_classes)
            reporter.warn(f"{cfg.from_weights} has {head} classes and the data {num_classes}: "
                          "a new classifier (seeded) replaces the old one")
            start["new_head"] = True
        spec.num_classes = num_classes
    spec.weights = None
    spec.input_size = spec.resolved_input_size
    model.train()
    model.requires_grad_(True)  # the zoo builds inference models
    return model, spec, start


def _augment(x: Any, gen: Any, padding: int, flip: bool) -> Any:
    """A random crop of the edge-padded batch, and a random horizontal flip per image."""
    import torch

    if padding:
        n, _, h, w = x.shape
        padded = torch.nn.functional.pad(x, (padding,) * 4, mode="replicate")
        dy = torch.randint(0, 2 * padding + 1, (n,), generator=gen)
        dx = torch.randint(0, 2 * padding + 1, (n,), generator=gen)
        x = torch.stack([padded[i, :, int(dy[i]):int(dy[i]) + h, int(dx[i]):int(dx[i]) + w] for i in range(n)])
    if flip:
        mask = torch.rand(x.shape[0], generator=gen) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(-1), x)
    return x


def _accuracy(model: Any, x: Any, y: Any) -> float:
    import torch

    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), _EVAL_BATCH):
            correct += int((model(x[i:i + _EVAL_BATCH]).argmax(1) == y[i:i + _EVAL_BATCH]).sum())
    model.train()
    return correct / max(1, len(x))


# --- the loop ---------------------------------------------------------------------------------
def train(config: TrainConfig, *, reporter: Reporter = QUIET) -> TrainResult:
    """Train ``config.model`` on ``config.data`` and write weights + manifest to ``config.output``.

    Raises ``ResdeployError`` before writing anything for bad input: no images, one class,
    a validation folder with other classes, an output that exists (without ``force``).
    Images that cannot be decoded are skipped and counted, as in calibration.
    """
    import torch

    from resdeploy.models.zoo import ModelSpec

    cfg = config
    cfg.check()
    out = Path(cfg.output)
    if out.exists() and not cfg.force:
        raise ResdeployError(f"{out} already exists; pass --force to overwrite it")
    if out.exists() and not out.is_dir():
        raise ResdeployError(f"{out} exists and is not a directory")
    artifacts.check_writable_dir(out.parent)
    if cfg.from_weights is not None:
        from resdeploy.models.weights import check_weights_path

        check_weights_path(trained_weights(cfg.from_weights)[0])
    pp = ModelSpec(cfg.model, input_size=cfg.input_size).preprocess()

    ds = _open_folder(cfg.data, pp, reporter, "training")
    classes: list[str] = list(ds.classes)
    used = sorted(set(ds.labels or []))
    if len(used) < 2:
        raise ResdeployError(f"{cfg.data} holds images of {len(used)} class; training needs at least two class folders")
    val_ds = _open_folder(cfg.val_data, pp, reporter, "validation") if cfg.val_data else None
    if val_ds is not None and val_ds.classes != classes:
        raise ResdeployError(f"{cfg.val_data} has class folders {val_ds.classes[:5]}…, the training data {classes[:5]}…; "
                             "both need the same class folder names")

    x_all, y_all = _load(ds, reporter, "loading training images")
    skipped = len(ds.skipped)
    if val_ds is not None:
        x_val, y_val = _load(val_ds, reporter, "loading validation images")
        x_tr, y_tr = x_all, y_all
    else:
        tr_idx, val_idx = _split(len(x_all), y_all, cfg.val_fraction, cfg.seed)
        if len(tr_idx) == 0 or len(val_idx) == 0:
            raise ResdeployError(f"{cfg.data} has too few images ({len(x_all)}) to hold some out for validation",
                                 hint="add images, or pass --val-data")
        x_tr, y_tr, x_val, y_val = x_all[tr_idx], y_all[tr_idx], x_all[val_idx], y_all[val_idx]
    if len(set(y_tr.tolist())) < 2:
        raise ResdeployError(f"{cfg.data}: fewer than two classes left for training after the split")

    size = int(x_tr.shape[-1])
    padding = size // 8 if cfg.crop_padding is None else cfg.crop_padding
    with _deterministic(cfg.threads):
        torch.manual_seed(cfg.seed)
        model, spec, start = _build(cfg, len(classes), reporter)
        history = _fit(model, cfg, torch.from_numpy(x_tr), torch.from_numpy(y_tr), torch.from_numpy(x_val),
                       torch.from_numpy(y_val), padding, reporter)
        threads = torch.get_num_threads()
        kernels = str(torch.backends.cpu.get_cpu_capability())
    val_top1 = history[-1].val_top1

    from safetensors.torch import save_file

    manifest: dict[str, Any] = {
        "stage": STAGE,
        "model": {"name": spec.name, "input_size": spec.input_size, "num_classes": len(classes), "seed": cfg.seed,
                  "from_weights": start},
        "classes": classes,
        "preprocess": pp.to_dict(),
        "data": {"source": str(Path(cfg.data).resolve()), "sha256": folder_sha256(ds), "images": len(ds.items),
                 "skipped": skipped, "skipped_files": [n for n, _ in ds.skipped][:20],
                 "empty_classes": list(ds.empty_classes)},
        "val": {"source": str(Path(cfg.val_data).resolve()) if cfg.val_data else "held out from the training folder",
                "fraction": None if cfg.val_data else cfg.val_fraction,
                "sha256": folder_sha256(val_ds) if val_ds is not None else None,
                "samples": int(len(x_val)), "top1": val_top1},
        "train": {"samples": int(len(x_tr)), "epochs": cfg.epochs, "lr": cfg.lr, "batch_size": cfg.batch_size,
                  "seed": cfg.seed, "weight_decay": cfg.weight_decay, "threads": threads,
                  "cpu_kernels": kernels, "optimizer": "SGD, momentum 0.9, Nesterov", "schedule": "one-cycle (cosine), max lr = --lr",
                  "augment": {"random_crop_padding": padding, "horizontal_flip": cfg.flip}},
        "history": [asdict(h) for h in history],
        "versions": artifacts.package_versions(["torch", "safetensors", "numpy", "pillow"]),
    }
    with artifacts.atomic_dir(out, force=cfg.force) as tmp:
        state = {k: v.detach().contiguous() for k, v in model.eval().state_dict().items()}
        # One metadata key: safetensors writes several in a per-process random (hash map) order,
        # which made the same weights two different files (and sha256s).
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"resdeploy": json.dumps({"stage": STAGE, "classes": classes})})
        manifest["weights"] = {"file": WEIGHTS_FILE, "sha256": artifacts.sha256_file(tmp / WEIGHTS_FILE),
                               "bytes": (tmp / WEIGHTS_FILE).stat().st_size}
        artifacts.write_manifest(tmp, manifest)
        manifest = artifacts.read_manifest(tmp, required=True) or manifest
    return TrainResult(out, out / WEIGHTS_FILE, manifest, val_top1, history)


def _fit(model: Any, cfg: TrainConfig, x: Any, y: Any, x_val: Any, y_val: Any, padding: int,
         reporter: Reporter) -> list[EpochRecord]:
    import torch

    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True)
    steps = int(math.ceil(len(x) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[EpochRecord] = []
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(len(x), generator=gen)
        sums = [0.0, 0.0]  # loss * images, images: what the progress bar shows as the running loss

        def running(sums: list[float] = sums) -> str:
            return f"loss {sums[0] / max(sums[1], 1):.3f}"

        for s in reporter.track(range(steps), steps, f"epoch {epoch}/{cfg.epochs}", status=running):
            idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            loss = torch.nn.functional.cross_entropy(model(_augment(x[idx], gen, padding, cfg.flip)), y[idx])
            if not torch.isfinite(loss):
                raise ResdeployError(f"the training loss became {float(loss)} in epoch {epoch}; lower --lr")
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            sums[0] += float(loss.detach()) * len(idx)
            sums[1] += len(idx)
        acc = _accuracy(model, x_val, y_val)
        rec = EpochRecord(epoch, round(sums[0] / sums[1], 5), round(acc, 5), round(time.perf_counter() - t0, 2))
        history.append(rec)
        reporter.info(f"epoch {epoch}/{cfg.epochs}  loss {rec.loss:.3f}  val top-1 {100 * acc:.1f}%  "
                      f"[dim]({rec.seconds:.1f} s)[/]")
    return history


class _deterministic:
    """torch's deterministic algorithms (and a thread count) for the block, restored after."""

    def __init__(self, threads: int | None) -> None:
        self.threads = threads

    def __enter__(self) -> None:
        import torch

        self.saved = (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads())
        torch.use_deterministic_algorithms(True)
        if self.threads:
            torch.set_num_threads(self.threads)

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.use_deterministic_algorithms(self.saved[0])
        torch.set_num_threads(self.saved[1])


def pin_portable_cpu_kernels() -> bool:
    """Cap PyTorch's CPU kernels at AVX2, so seeded training gives the same weights on any x86-64 CPU.

    Why: PyTorch, oneDNN and MKL dispatch to AVX-512 code where the CPU has it, and its sums round
    differently. The digits ResNet-20, trained with one seed and two threads, scored 95.26% on an
    AVX2-only AMD EPYC and 97.77% on an AVX-512 VNNI one, and the same planted outlier then cost
    INT8 12 points on one network and 1.4 on the other. Tests and benchmarks that promise one
    accuracy on every host need one network; capped at AVX2, the VNNI host trained the AVX2
    host's network (95.26%). Costs training speed on AVX-512 CPUs; ONNX Runtime and OpenVINO keep
    their own kernels.

    Each library reads its cap once, when it first dispatches, so this sets the variables, makes
    PyTorch's three dispatch once, and puts the environment back. Left set, ONEDNN_MAX_CPU_ISA also
    reaches OpenVINO's own oneDNN, which then crashes (a segmentation fault in compile_model's
    first inference, OpenVINO 2026.4.1 on an AVX-512 host); child processes are not capped.
    Variables the caller already set are kept. Must run before PyTorch first runs a convolution or
    a matrix product. Returns whether PyTorch now runs its AVX2 kernels: False when it already chose
    others in this process (nothing can change that), on x86-64 CPUs without AVX2, and on other
    CPUs (ARM64 has no such cap to set).
    """
    from resdeploy.machine import is_x86

    if not is_x86():
        return False
    added = [key for key in PORTABLE_CPU_KERNELS if key not in os.environ]
    os.environ.update({key: PORTABLE_CPU_KERNELS[key] for key in added})
    try:
        import torch

        capability = str(torch.backends.cpu.get_cpu_capability()).upper()  # ATen reads its cap here
        with torch.no_grad():  # oneDNN's convolution and MKL's GEMM read theirs at first use
            torch.nn.functional.conv2d(torch.ones(1, 8, 16, 16), torch.ones(8, 8, 3, 3))
            torch.ones(64, 64) @ torch.ones(64, 64)
    finally:
        for key in added:
            os.environ.pop(key, None)
    return capability == "AVX2"


def export_config_for(cfg: Any, model: Any, trained: dict[str, Any] | None) -> Any:
    """The ExportConfig for weights from ``train``: the trained input size unless one was given.

    A different model name, or an input size other than the trained one, is refused: the
    weights would load (ResNets are size-agnostic) and give a model that never saw such inputs.
    """
    if trained is None:
        return cfg
    import dataclasses

    name = getattr(model, "name", model)
    want = trained["model"]
    if name != want["name"]:
        raise ResdeployError(f"these weights were trained for {want['name']}, not {name}",
                             hint=f"export {want['name']}")
    if cfg.input_size is not None and cfg.input_size != want["input_size"]:
        raise ResdeployError(f"these weights were trained at input size {want['input_size']}, not {cfg.input_size}",
                             hint="leave --input-size out, or retrain at that size")
    return dataclasses.replace(cfg, input_size=want["input_size"])


def label_by_class_name(ds: Any, classes: list[str]) -> list[str]:
    """Label a class-folder data set by the model's class names (from ``train``), not by folder position.

    A validation folder that holds only some of the classes ("digit_3", "digit_7") would
    otherwise be labelled 0 and 1 by sorted position. Returns warnings for the result; a
    folder name the model has no class for is an error.
    """
    if ds.labels is None or not ds.classes:
        return []
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({ds.classes[k] for k in set(ds.labels)} - set(index))
    if unknown:
        raise ResdeployError(f"class folders {', '.join(unknown[:5])} in {ds.source} are not among the model's "
                             f"{len(classes)} classes ({', '.join(classes[:5])}{', …' if len(classes) > 5 else ''})",
                             hint="name the folders as the training folders were named, or pass --labels FILE")
    mapped = [index[ds.classes[k]] for k in ds.labels]
    moved = mapped != list(ds.labels)
    ds.labels = mapped
    return ["class folders labelled by the model's class names (recorded by `resdeploy train`), "
            "not by their sorted position"] if moved else []
