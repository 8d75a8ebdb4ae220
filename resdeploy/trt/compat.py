"""The checks that refuse a plan that cannot run here, and the build cache key.

A TensorRT plan is tied to the TensorRT version that built it and to the GPU
architecture it was tuned on. Loaded elsewhere, TensorRT fails with a deserialization
error that does not say why (or, on the same architecture but another GPU model, runs
with tactics timed for a different chip). So ``resdeploy build`` writes the plan's
manifest, ``<engine>.json`` (an ``artifacts.Manifest`` with an ``artifacts.EngineRecord``),
and loading checks its engine record first and refuses with a message that names both
sides and what to do.

The same fields make the build cache key: an engine is reused only when the ONNX,
precision, profile, GPU, TensorRT version and build options are all unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass

from resdeploy.artifacts import ENGINE_SUFFIXES, EngineRecord, is_engine_file
from resdeploy.errors import ResdeployError
from resdeploy.trt.loader import GpuInfo, version_tuple

__all__ = ["ENGINE_SUFFIXES", "BatchProfile", "BuildOptions", "EngineRecord", "batch_profile", "build_options",
           "cache_key", "check_compatible", "compatibility_problem", "is_engine_file"]

HARDWARE_COMPAT = ("none", "ampere_plus", "same_cc")


@dataclass(frozen=True)
class BatchProfile:
    """The optimization profile's batch range: TensorRT tunes for ``opt`` and accepts min..max."""

    min: int = 1
    opt: int = 1
    max: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise ResdeployError(
                f"bad batch profile {self.min}:{self.opt}:{self.max}: need 1 <= MIN <= OPT <= MAX"
            )

    @classmethod
    def parse(cls, text: str) -> BatchProfile:
        """'1:8:32' -> (1, 8, 32); 'N' -> (N, N, N)."""
        parts = text.split(":")
        try:
            values = [int(p) for p in parts]
        except ValueError:
            values = []
        if len(values) == 1:
            values = values * 3
        if len(values) != 3:
            raise ResdeployError(f"--batch takes MIN:OPT:MAX (e.g. 1:8:32) or one batch size, got '{text}'")
        return cls(*values)

    def covers(self, batch: int) -> bool:
        return self.min <= batch <= self.max

    def __str__(self) -> str:
        return f"{self.min}:{self.opt}:{self.max}"


@dataclass(frozen=True)
class BuildOptions:
    """Builder settings that change the plan, so they are part of the cache key."""

    workspace_mib: int | None = None
    opt_level: int = 3
    hardware_compat: str = "none"  # none | ampere_plus | same_cc
    version_compatible: bool = False
    exclude_lean_runtime: bool = False

    def __post_init__(self) -> None:
        if self.hardware_compat not in HARDWARE_COMPAT:
            raise ResdeployError(
                f"unknown hardware compatibility '{self.hardware_compat}'; choose from: {', '.join(HARDWARE_COMPAT)}"
            )
        if not 0 <= self.opt_level <= 5:
            raise ResdeployError(f"--opt-level takes 0..5 (TensorRT's builder optimization level), got {self.opt_level}")
        if self.workspace_mib is not None and self.workspace_mib <= 0:
            raise ResdeployError(f"--workspace takes a positive number of MiB, got {self.workspace_mib}")
        if self.exclude_lean_runtime and not self.version_compatible:
            raise ResdeployError("--exclude-lean-runtime only applies with --version-compatible")


def batch_profile(engine: EngineRecord) -> BatchProfile:
    """The plan's optimization profile, from its engine record."""
    return BatchProfile(engine.profile["min"], engine.profile["opt"], engine.profile["max"])


def build_options(engine: EngineRecord) -> BuildOptions:
    """The builder settings the plan was made with, from its engine record."""
    return BuildOptions(**engine.options)


def cache_key(
    *, onnx_sha256: str, precision: str, profile: BatchProfile, gpu: GpuInfo, tensorrt_version: str,
    options: BuildOptions,
) -> str:
    """The sha256 of everything that makes two builds produce interchangeable plans.

    With hardware compatibility on, the GPU model stops mattering (only its class does),
    so the key holds what the plan is tied to, not every detail of the machine.
    """
    if options.hardware_compat == "none":
        gpu_part: dict[str, str] = {"gpu": gpu.name, "cc": gpu.compute_capability}
    elif options.hardware_compat == "same_cc":
        gpu_part = {"cc": gpu.compute_capability}
    else:
        gpu_part = {"class": "ampere_plus"}
    body = {
        "onnx": onnx_sha256, "precision": precision, "profile": [profile.min, profile.opt, profile.max],
        "tensorrt": tensorrt_version, **gpu_part, "options": asdict(options),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def compatibility_problem(meta: EngineRecord, gpu: GpuInfo, tensorrt_version: str) -> str | None:
    """Why the plan of engine record ``meta`` cannot run with this TensorRT on this GPU, or None when it can."""
    options = build_options(meta)
    built, here = version_tuple(meta.tensorrt_version), version_tuple(tensorrt_version)
    if options.version_compatible:
        # Version-compatible plans run on the same or a later TensorRT of the same major version.
        if built[0] != here[0] or here < built:
            return (
                f"it was built with TensorRT {meta.tensorrt_version} (version-compatible) and this machine has "
                f"TensorRT {tensorrt_version}; it runs only on TensorRT {built[0]}.x at or after {meta.tensorrt_version}"
            )
    elif meta.tensorrt_version != tensorrt_version:
        return (
            f"it was built with TensorRT {meta.tensorrt_version} and this machine has TensorRT {tensorrt_version}; "
            "a plan only loads in the TensorRT version that built it (unless built with --version-compatible)"
        )
    if options.hardware_compat == "ampere_plus":
        if gpu.major < 8:
            return (
                f"it was built for Ampere or newer GPUs (compute capability 8.0+) and {gpu.name} has "
                f"compute capability {gpu.compute_capability}"
            )
    elif meta.compute_capability != gpu.compute_capability:
        return (
            f"it was built on {meta.gpu_name} (compute capability {meta.compute_capability}) and this GPU is "
            f"{gpu.name} (compute capability {gpu.compute_capability}); a plan runs only on the architecture "
            "it was built for"
        )
    elif options.hardware_compat == "none" and meta.gpu_name != gpu.name:
        return (
            f"it was built and tuned on {meta.gpu_name} and this GPU is {gpu.name}; TensorRT's kernel choices "
            "(and its timings) belong to the GPU model they were measured on"
        )
    return None


def check_compatible(engine: str | os.PathLike[str], meta: EngineRecord, gpu: GpuInfo, tensorrt_version: str) -> None:
    """Refuse, with the reason and the fix, an engine that cannot (or should not) run here."""
    problem = compatibility_problem(meta, gpu, tensorrt_version)
    if problem:
        raise ResdeployError(
            f"refusing to load {engine}: {problem}",
            hint="rebuild it here with `resdeploy build`, or pass the ONNX and resdeploy builds (and caches) the engine",
        )
