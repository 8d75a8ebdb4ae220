"""Which CPUs an INT8 ``--target cpu`` graph gives the right answers on, and why.

ONNX Runtime runs a Q/DQ Conv/Gemm with unsigned activations and signed weights (u8 x s8).
How it accumulates depends on the CPU it runs on, not on the one that quantized:

* x86 with AVX2 or AVX-512 but no VNNI: ``vpmaddubsw`` multiplies u8 x s8 pairs and adds each
  *pair* of products into a saturating int16. With u8 activations up to 255 and full-range
  weights (|w| up to 127) a pair reaches 64770, far past 32767: results clip, accuracy drops
  (the digits test: 4.7 points on an AMD EPYC without VNNI).
* x86 with VNNI (AVX-512 VNNI, AVX-VNNI) or AMX: products accumulate in int32; no saturation.
* ARM64: widening multiplies / dot products into int32; no saturation.

Weights within [-64, 64] (ONNX Runtime's ``reduce_range``, "7-bit weights") keep every pair
sum within 2 x 255 x 64 = 32640 <= 32767, so the same graph is exact on every kind above.
That is the portable default (``--cpu portable``); full 8-bit weights (``--cpu vnni``) are
for graphs that will only run where products accumulate in 32 bits.

The checks here read the graph, not the host, so a test of them passes or fails the same
way on any machine (tests/precision/test_isa.py).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Any

import numpy as np

# Kinds of CPU, by how they accumulate u8 x s8 products.
X86_AVX2 = "x86-avx2"  # AVX2 without VNNI (AMD Zen 2/3, Intel before Ice Lake client / Cascade Lake)
X86_AVX512 = "x86-avx512"  # AVX-512 without VNNI (Skylake-SP/X): the same int16 pair sums
X86_VNNI = "x86-vnni"  # AVX-512 VNNI or AVX-VNNI: 32-bit accumulation
X86_AMX = "x86-amx"  # AMX-INT8 (Sapphire Rapids and later)
ARM64 = "arm64"
KINDS = (X86_AVX2, X86_AVX512, X86_VNNI, X86_AMX, ARM64)

# --cpu choices for `quantize --target cpu`, and the kinds each is exact on.
CPU_PROFILES: dict[str, tuple[str, ...]] = {
    "portable": KINDS,  # 7-bit weights: no int16 saturation anywhere
    "vnni": (X86_VNNI, X86_AMX, ARM64),  # full 8-bit weights: saturates on AVX2/AVX-512 without VNNI
}
DEFAULT_CPU = "portable"
INT16_MAX = 32767
U8_MAX = 255


def host_kind(arch: str | None = None, flags: list[str] | None = None) -> str | None:
    """The kind of this CPU (one of KINDS), or None when it cannot be told (no /proc/cpuinfo, other arch)."""
    from resdeploy.machine import cpu_flags, is_x86

    arch = (arch or platform.machine()).lower()
    if arch in ("aarch64", "arm64"):
        return ARM64
    if not is_x86(arch):
        return None
    found = set(cpu_flags() if flags is None else flags)
    if not found:
        return None
    if "amx_int8" in found:
        return X86_AMX
    if {"avx512_vnni", "avx_vnni"} & found:
        return X86_VNNI
    if "avx512f" in found:
        return X86_AVX512
    if "avx2" in found:
        return X86_AVX2
    return None


def describe(kind: str | None) -> str:
    """Words for a kind, for messages."""
    return {
        X86_AVX2: "x86 with AVX2 and no VNNI",
        X86_AVX512: "x86 with AVX-512 and no VNNI",
        X86_VNNI: "x86 with VNNI",
        X86_AMX: "x86 with AMX",
        ARM64: "ARM64",
    }.get(kind or "", "an unknown CPU")


def safe_on(manifest: dict[str, Any] | None) -> tuple[str, ...] | None:
    """The CPU kinds an INT8 artifact is exact on, from its manifest; None when not a CPU INT8 artifact.

    Artifacts made before this was recorded say ``reduce_range`` instead: 7-bit weights
    are portable, full-range ones are VNNI-only.
    """
    if not manifest or str(manifest.get("precision", "")).lower() != "int8":
        return None
    if manifest.get("target") == "trt":  # for TensorRT; under ONNX Runtime's CPU kernels it is full-range
        return CPU_PROFILES["vnni"]
    if manifest.get("target") != "cpu":
        return None
    q = manifest.get("quantization") or {}
    if isinstance(q.get("safe_on"), list):
        return tuple(str(k) for k in q["safe_on"])
    return CPU_PROFILES["portable" if q.get("reduce_range") else "vnni"]


def host_warning(manifest: dict[str, Any] | None, kind: str | None = None) -> str | None:
    """A warning when an INT8 artifact runs on a CPU it was not made for (None: nothing to say)."""
    kinds = safe_on(manifest)
    here = host_kind() if kind is None else kind
    if kinds is None or here is None or here in kinds:
        return None
    if (manifest or {}).get("target") == "trt":
        return (f"this INT8 graph is made for TensorRT (full-range 8-bit weights); ONNX Runtime on this CPU "
                f"({describe(here)}) adds u8 x s8 products in saturating int16 pairs, so what it measures here "
                "understates the graph: judge it with TensorRT, or on a CPU with VNNI/AMX or ARM64")
    return (f"this INT8 graph has full-range 8-bit weights, made for {', '.join(kinds)}; on this CPU "
            f"({describe(here)}) ONNX Runtime adds u8 x s8 products in saturating int16 pairs, so its "
            "outputs are less accurate than the graph: re-quantize with `--cpu portable` (the default)")


@dataclass(frozen=True)
class PairSumBound:
    """The largest |a1*w1 + a2*w2| one quantized Conv/Gemm/MatMul can form from 8-bit codes."""

    node: str
    op_type: str
    activation_type: str  # uint8 | int8
    weight_max_abs: int  # largest |quantized weight| in the node's weight tensor
    pair_sum_max: int

    @property
    def fits_int16(self) -> bool:
        return self.pair_sum_max <= INT16_MAX


def pair_sum_bounds(model: Any) -> list[PairSumBound]:
    """For every Conv/Gemm/MatMul fed by DequantizeLinear on both inputs: its worst int16 pair sum.

    The activation code range is taken as 0..255 for u8 (what vpmaddubsw multiplies) and, for
    s8, as 0..255 too: x86 kernels shift s8 activations into u8 before the same instruction.
    """
    from onnx import numpy_helper

    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    inits = {i.name: i for i in graph.initializer}
    out: list[PairSumBound] = []
    for node in graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2:
            continue
        act_dq, w_dq = producers.get(node.input[0]), producers.get(node.input[1])
        if act_dq is None or w_dq is None or "DequantizeLinear" not in (act_dq.op_type, w_dq.op_type):
            continue
        if act_dq.op_type != "DequantizeLinear" or w_dq.op_type != "DequantizeLinear":
            continue
        w_init = inits.get(w_dq.input[0])
        if w_init is None:
            continue  # weights computed at run time: not a weight tensor this check can read
        weights = numpy_helper.to_array(w_init).astype(np.int32)
        act_q = producers.get(act_dq.input[0])
        act_zp = act_dq.input[2] if len(act_dq.input) > 2 else ""
        act_type = "uint8"
        if act_zp in inits:
            act_type = "int8" if numpy_helper.to_array(inits[act_zp]).dtype == np.int8 else "uint8"
        elif act_q is not None and act_q.op_type == "QuantizeLinear" and len(act_q.input) > 2 \
                and act_q.input[2] in inits:
            act_type = "int8" if numpy_helper.to_array(inits[act_q.input[2]]).dtype == np.int8 else "uint8"
        w_max = int(np.abs(weights).max()) if weights.size else 0
        out.append(PairSumBound(node.name, node.op_type, act_type, w_max, 2 * U8_MAX * w_max))
    return out


def portable_int16(model: Any) -> bool:
    """True when no quantized Conv/Gemm/MatMul of ``model`` can saturate an int16 pair sum."""
    return all(b.fits_int16 for b in pair_sum_bounds(model))


def isa_record(model: Any, cpu: str) -> dict[str, Any]:
    """What a CPU INT8 manifest records: the --cpu profile, the CPU kinds it is exact on, the worst pair sum.

    ``safe_on`` is narrowed by what the graph holds, not only by the flag: a graph whose
    pair sums fit int16 is portable whatever it was asked for.
    """
    bounds = pair_sum_bounds(model)
    worst = max((b.pair_sum_max for b in bounds), default=0)
    kinds = KINDS if worst <= INT16_MAX else CPU_PROFILES.get(cpu, CPU_PROFILES["vnni"])
    return {"cpu": cpu, "safe_on": list(kinds), "int16_pair_sum_max": worst}


def host_warning_for(model: str | Any) -> str | None:
    """``host_warning`` for a model path or artifact dir (None when it has no manifest or nothing to say)."""
    import os
    from pathlib import Path

    from resdeploy.artifacts import read_manifest

    p = Path(os.fspath(model))
    if not p.exists():
        return None
    try:
        return host_warning(read_manifest(p))
    except Exception:  # noqa: BLE001 - a manifest problem is reported by the command itself, not here
        return None
