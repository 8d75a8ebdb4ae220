"""A fingerprint of the host, recorded in every result so numbers compare honestly.

A latency means little without the machine it came from: a result copied back from a
Jetson board or a GPU server carries its CPU model, core count, GPU, driver, CUDA and
library versions, and ``report`` labels every row with it. Nothing here imports torch
unless it is already imported or the caller asks for GPU details.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from typing import Any

from resdeploy.artifacts import package_versions
from resdeploy.errors import ResdeployError

# Distributions whose versions change benchmark numbers.
LIBRARIES = (
    "resdeploy", "torch", "numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino",
    "openvino", "tensorrt", "tensorrt-cu12", "tensorrt-cu13",
)


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux, ``sysctl`` on macOS)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                # x86: "model name"; many ARM kernels: "Hardware" or "Model".
                if key.strip() in ("model name", "Hardware", "Model", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    if sys.platform == "darwin" and shutil.which("sysctl"):
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                 text=True, timeout=5, check=False)
            if out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> list[str]:
    """The ISA extensions that decide CPU inference speed (AVX-512, VNNI, AMX, NEON...)."""
    interesting = {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
                   "amx_bf16", "amx_int8", "avx_vnni", "asimd", "asimddp", "sve", "fphp"}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return sorted(interesting.intersection(value.split()))
    except OSError:
        pass
    return []


def is_x86(arch: str | None = None) -> bool:
    """Whether ``arch`` (default: this machine's, as ``platform.machine()`` names it) is an x86 CPU."""
    return (arch or platform.machine()).lower() in ("x86_64", "amd64", "i686", "x86")


def int8_cpu_advice(arch: str, flags: list[str]) -> str | None:
    """What ``quantize --target cpu`` should know about this CPU, or None when nothing.

    Without VNNI (or AMX), x86's u8 x s8 instruction adds pairs of products into int16, which
    8-bit weights can saturate (resdeploy/precision/isa.py): the default ``--cpu portable`` is exact
    here, ``--cpu vnni`` graphs are not.
    """
    if not is_x86(arch) or not flags:
        return None  # ARM, or no /proc/cpuinfo to tell
    if {"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags):
        return None
    return ("no VNNI on this CPU: INT8 graphs with full 8-bit weights (`quantize --cpu vnni`) lose accuracy "
            "here (int16 saturation in ONNX Runtime's kernels); the default `--cpu portable` (7-bit weights) is exact")


def usable_cpus() -> list[int]:
    """CPUs this process may run on (honours taskset/cgroups pinning)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def _nvidia_smi() -> list[dict[str, str]]:
    """GPU name, driver and memory from nvidia-smi, without importing a CUDA library."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "driver": parts[1], "memory_mb": parts[2]})
    return gpus


def cuda_info(*, import_torch: bool = False) -> dict[str, Any]:
    """CUDA devices as torch sees them (only if torch is imported already, or asked for)."""
    if "torch" not in sys.modules and not import_torch:
        return {}
    try:
        import torch
    except ImportError:
        return {}
    info: dict[str, Any] = {"torch_cuda": torch.version.cuda, "available": bool(torch.cuda.is_available())}
    if info["available"]:
        info["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["cudnn"] = torch.backends.cudnn.version()
    return info


def fingerprint(*, import_torch: bool = False) -> dict[str, Any]:
    """Everything about this host that changes a benchmark number, as plain JSON."""
    mem_total = None
    try:
        import psutil

        mem_total = round(psutil.virtual_memory().total / 2**30, 1)
        physical = psutil.cpu_count(logical=False)
    except Exception:  # pragma: no cover - psutil is a dependency, but fingerprint must not fail
        physical = None
    return {
        "hostname": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
        "python": platform.python_version(),
        "cpu": {
            "model": cpu_model(),
            "logical_cores": os.cpu_count(),
            "physical_cores": physical,
            "usable_cpus": len(usable_cpus()),
            "flags": cpu_flags(),
        },
        "memory_gb": mem_total,
        "gpus": _nvidia_smi(),
        "cuda": cuda_info(import_torch=import_torch),
        "libraries": {k: v for k, v in package_versions(LIBRARIES).items() if v is not None},
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
                if k in os.environ},
    }


def short_label(fp: dict[str, Any]) -> str:
    """A short machine label for report rows: the GPU when there is one, else the CPU."""
    gpus = fp.get("gpus") or []
    if gpus:
        return str(gpus[0].get("name", "gpu"))
    cpu = fp.get("cpu") or {}
    return f"{cpu.get('model', 'cpu')} ({cpu.get('usable_cpus', '?')} cpus)"


def _engine(name: str, available: bool, version: str | None, devices: list[str], note: str = "") -> dict[str, Any]:
    return {"engine": name, "available": available, "version": version, "devices": devices, "note": note}


def _broken(name: str, exc: Exception) -> dict[str, Any]:
    """An engine that is installed but fails to load or probe: say so, do not crash `info`."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return _engine(name, False, None, [], f"installed but failed to load: {type(exc).__name__}: {first}")


def engines_info() -> list[dict[str, Any]]:
    """Which engines can run here, on which devices, and what to install for the rest: each runner's ``probe``.

    Imports each runtime (a few seconds), because "installed" is not "working": a
    CUDA-less torch build or an onnxruntime without the CUDA provider is reported as such.
    """
    from resdeploy.runners import RUNNERS, runner_class

    out = []
    for name in RUNNERS:
        try:
            out.append(runner_class(name).probe().to_dict())
        except ResdeployError as exc:  # the runner module is not in this version
            out.append(_engine(name, False, None, [], exc.message))
        except Exception as exc:  # a broken install (missing CUDA libs...) is what `info` is for
            out.append(_broken(name, exc))
    return out


def info() -> dict[str, Any]:
    """``resdeploy info``: the host fingerprint plus what can run on it."""
    machine = fingerprint(import_torch=True)
    int8 = int8_cpu_advice(machine["arch"], machine["cpu"]["flags"])
    return {"machine": machine, "engines": engines_info(), "advice": [int8] if int8 else []}
