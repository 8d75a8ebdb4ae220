"""The model zoo: names -> builders, and ``ModelSpec``, the recipe that rebuilds a model exactly.

A plain dict is the registry (no registration as a side effect of imports). Names from
elsewhere are accepted too: ``torchvision:NAME`` and ``timm:NAME`` where those packages
are installed, and ``package.module:factory`` for a user's own ``nn.Module``.

A ``ModelSpec`` is stored in every export manifest, so any later stage can rebuild the
very FP32 PyTorch model that was exported (``model_from_manifest``): same weights file
(checked by sha256) or the same seeded random init, including its calibration.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from resdeploy.errors import MissingDependencyError, ResdeployError, check_positive_int
from resdeploy.models.resnet import BasicBlock, Bottleneck, CifarResNet, ResNet
from resdeploy.preprocess import PreprocessSpec

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

Builder = Callable[[int], nn.Module]

# name -> builder(num_classes). torchvision's layer counts and widths (He et al. 2015;
# Zagoruyko & Komodakis 2016 for wide; Xie et al. 2017 for ResNeXt).
MODELS: dict[str, Builder] = {
    "resnet18": lambda nc: ResNet(BasicBlock, [2, 2, 2, 2], nc),
    "resnet34": lambda nc: ResNet(BasicBlock, [3, 4, 6, 3], nc),
    "resnet50": lambda nc: ResNet(Bottleneck, [3, 4, 6, 3], nc),
    "resnet101": lambda nc: ResNet(Bottleneck, [3, 4, 23, 3], nc),
    "resnet152": lambda nc: ResNet(Bottleneck, [3, 8, 36, 3], nc),
    "wide_resnet50_2": lambda nc: ResNet(Bottleneck, [3, 4, 6, 3], nc, width_per_group=128),
    "wide_resnet101_2": lambda nc: ResNet(Bottleneck, [3, 4, 23, 3], nc, width_per_group=128),
    "resnext50_32x4d": lambda nc: ResNet(Bottleneck, [3, 4, 6, 3], nc, groups=32, width_per_group=4),
    "resnext101_32x8d": lambda nc: ResNet(Bottleneck, [3, 4, 23, 3], nc, groups=32, width_per_group=8),
    "resnet20": lambda nc: CifarResNet(20, nc),
    "resnet32": lambda nc: CifarResNet(32, nc),
    "resnet44": lambda nc: CifarResNet(44, nc),
    "resnet56": lambda nc: CifarResNet(56, nc),
    "resnet110": lambda nc: CifarResNet(110, nc),
}

CIFAR_MODELS = frozenset({"resnet20", "resnet32", "resnet44", "resnet56", "resnet110"})

_DEFAULTS = {"imagenet": (1000, 224), "cifar": (10, 32)}


def list_models(filter: str | None = None) -> list[str]:  # noqa: A002 - timm's name for it
    """Zoo names, optionally filtered with a shell-style pattern (``resnet*``, ``*wide*``)."""
    names = list(MODELS)
    if filter:
        names = [n for n in names if fnmatch.fnmatchcase(n, filter)]
    return names


def family(name: str) -> str:
    """'cifar' for the CIFAR ResNets, 'imagenet' for everything else."""
    return "cifar" if name in CIFAR_MODELS else "imagenet"


def source_of(name: str) -> str:
    if name.startswith("torchvision:"):
        return "torchvision"
    if name.startswith("timm:"):
        return "timm"
    if ":" in name:
        return "custom"
    return "zoo"


def check_model_name(name: str) -> None:
    """Fail with close-name suggestions when ``name`` is neither in the zoo nor a qualified name."""
    if not isinstance(name, str) or not name.strip():
        raise ResdeployError("a model name is required; see `resdeploy models`")
    src = source_of(name)
    if src == "zoo" and name not in MODELS:
        close = difflib.get_close_matches(name.lower(), list(MODELS), n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(close)}?" if close else "see `resdeploy models` for the list"
        raise ResdeployError(
            f"unknown model '{name}'",
            hint=hint + "; models from elsewhere: torchvision:NAME, timm:NAME, package.module:factory",
        )
    if src == "custom":
        module, _, attr = name.partition(":")
        if not module or not attr or not re.fullmatch(r"[\w.]+", module) or not attr.isidentifier():
            raise ResdeployError(f"'{name}' is not a model name; custom models are given as package.module:factory")


@dataclass
class ModelSpec:
    """Everything needed to rebuild a model exactly: name, weights file or seed, head, input size."""

    name: str
    weights: str | None = None
    num_classes: int | None = None
    seed: int = 0
    input_size: int | None = None

    def __post_init__(self) -> None:
        check_model_name(self.name)
        check_positive_int(self.num_classes, "--num-classes")
        check_positive_int(self.input_size, "--input-size")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ResdeployError(f"--seed must be a non-negative integer, got {self.seed!r}")
        if self.weights is not None:
            self.weights = str(self.weights)

    # --- description -------------------------------------------------------------------------
    @property
    def source(self) -> str:
        """'zoo', 'torchvision', 'timm' or 'custom'."""
        return source_of(self.name)

    @property
    def family(self) -> str:
        return family(self.name) if self.source == "zoo" else "imagenet"

    @property
    def default_input_size(self) -> int:
        return _DEFAULTS[self.family][1]

    @property
    def resolved_input_size(self) -> int:
        return self.input_size or self.default_input_size

    @property
    def slug(self) -> str:
        """A file-system-safe name for default output directories."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", self.name).strip("-")

    def preprocess(self) -> PreprocessSpec:
        """The preprocessing the model expects (recorded in manifests, used by every stage)."""
        size = self.resolved_input_size
        if self.family == "cifar":
            return PreprocessSpec(resize=size, crop=size, mean=CIFAR10_MEAN, std=CIFAR10_STD)
        return PreprocessSpec.for_input_size(size)

    def weights_description(self) -> dict[str, Any] | str:
        """{path, sha256, bytes} for a weights file, else 'random, seed N' (said everywhere it matters)."""
        if self.weights is None:
            return f"random, seed {self.seed}"
        from resdeploy.models.weights import weights_record

        return weights_record(self.weights)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    # --- building ------------------------------------------------------------------------------
    def build(self) -> nn.Module:
        """The model in eval mode; deterministic from the weights file or the seed."""
        model, _ = self.build_with_record()
        return model

    def build_with_record(self) -> tuple[nn.Module, dict[str, Any]]:
        """Build, and say how the weights were made (the manifest's ``model.init``)."""
        state = None
        num_classes = self.num_classes
        if self.weights is not None:
            from resdeploy.models.weights import head_classes, read_state_dict

            state = read_state_dict(self.weights)
            if num_classes is None and self.source == "zoo":
                num_classes = head_classes(state)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = self._construct(num_classes)
        if not isinstance(model, nn.Module):
            raise ResdeployError(f"{self.name} did not return a torch.nn.Module (got {type(model).__name__})")
        model = model.float().eval()
        if state is not None:
            from resdeploy.models.weights import load_state_dict_strict

            load_state_dict_strict(model, state, source=self.weights or "", model_name=self.name)
            record: dict[str, Any] = {"procedure": "loaded", "description": f"weights loaded from {self.weights}"}
        else:
            from resdeploy.models.weights import calibrate_random_init

            size = self.resolved_input_size
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                try:
                    record = calibrate_random_init(model, size, self.seed)
                except (RuntimeError, ValueError, TypeError, IndexError) as exc:  # the model's forward, not ours
                    raise ResdeployError(
                        f"{self.name} does not run on a [N, 3, {size}, {size}] float input: "
                        f"{type(exc).__name__}: {_first_line(exc)}",
                        hint="models take 3-channel RGB images; check --input-size (--debug for the traceback)",
                    ) from exc
        for p in model.parameters():
            p.requires_grad_(False)
        return model.eval(), record

    def _construct(self, num_classes: int | None) -> nn.Module:
        src = self.source
        if src == "zoo":
            return MODELS[self.name](num_classes or _DEFAULTS[self.family][0])
        kwargs = {"num_classes": num_classes} if num_classes is not None else {}
        _, _, ext = self.name.partition(":")
        if src == "torchvision":
            try:
                tv_models = importlib.import_module("torchvision.models")
            except ImportError:
                raise MissingDependencyError("torchvision (for 'torchvision:' models)", "pip install torchvision") from None
            try:
                return tv_models.get_model(ext, weights=None, **kwargs)
            except (ValueError, KeyError) as exc:
                raise ResdeployError(f"torchvision has no model '{ext}': {exc}") from None
        if src == "timm":
            try:
                timm = importlib.import_module("timm")
            except ImportError:
                raise MissingDependencyError("timm (for 'timm:' models)", "pip install timm") from None
            if not timm.is_model(ext):
                raise ResdeployError(f"timm has no model '{ext}'", hint="see timm.list_models()")
            return timm.create_model(ext, pretrained=False, **kwargs)
        module_name, _, attr = self.name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ResdeployError(f"cannot import '{module_name}' for model '{self.name}': {exc}") from None
        except (Exception, SystemExit) as exc:  # the user's module fails on import (SyntaxError, sys.exit, ...)
            raise ResdeployError(f"importing '{module_name}' for model '{self.name}' failed: "
                                 f"{type(exc).__name__}: {_first_line(exc)}",
                                 hint="run with --debug for the traceback") from exc
        factory = getattr(module, attr, None)
        if not callable(factory):
            raise ResdeployError(f"'{module_name}' has no callable '{attr}'")
        try:
            return factory(**kwargs)
        # The user's code: one line naming the call, --debug for the traceback. SystemExit too:
        # a factory that calls sys.exit() must not end the command with exit 0 having written nothing.
        except (Exception, SystemExit) as exc:
            call = f"{attr}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
            raise ResdeployError(f"{module_name}.{call} raised {type(exc).__name__}: {_first_line(exc)}",
                                 hint="run with --debug for the traceback") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "(no message)"


def create_model(
    name: str, *, weights: str | None = None, num_classes: int | None = None, seed: int = 0,
    input_size: int | None = None,
) -> nn.Module:
    """Build a model by name, in eval mode (weights from a file, or a calibrated seeded random init)."""
    return ModelSpec(name, weights=weights, num_classes=num_classes, seed=seed, input_size=input_size).build()


def model_from_manifest(manifest: dict[str, Any]) -> nn.Module:
    """Rebuild exactly the FP32 PyTorch model an artifact was exported from.

    Fails when the recorded weights file is gone or has changed since the export
    (its sha256 differs), because a reference built from other weights is no reference.
    """
    from resdeploy.artifacts import sha256_file

    entry = manifest.get("model") if isinstance(manifest, dict) else None
    if isinstance(entry, dict) and entry.get("source") == "keras":
        raise ResdeployError(f"{entry.get('name') or 'this artifact'} was exported from a Keras model "
                             "(export keras:PATH): there is no PyTorch model to run or compare with",
                             hint="use --engine ort or openvino, and its FP32 artifact as --reference")
    if not isinstance(entry, dict) or not isinstance(entry.get("spec"), dict):
        raise ResdeployError("the manifest has no model spec; it was not written by `resdeploy export`")
    spec = ModelSpec.from_dict(entry["spec"])
    recorded = entry.get("weights")
    if spec.weights is not None:
        from pathlib import Path

        if not Path(spec.weights).is_file():
            raise ResdeployError(f"the weights this artifact was exported from are gone: {spec.weights}")
        if isinstance(recorded, dict) and recorded.get("sha256") and sha256_file(spec.weights) != recorded["sha256"]:
            raise ResdeployError(
                f"the weights file {spec.weights} changed since the export (sha256 differs)",
                hint="re-export, or restore the original file",
            )
    return spec.build()
