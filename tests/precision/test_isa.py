"""Which CPUs an INT8 graph is exact on: structural checks that pass or fail the same on any host."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from resdeploy.precision import quantize
from resdeploy.precision.int8 import quantized_ops
from resdeploy.precision.isa import (
    ARM64,
    INT16_MAX,
    KINDS,
    X86_AMX,
    X86_AVX2,
    X86_AVX512,
    X86_VNNI,
    host_kind,
    host_warning,
    pair_sum_bounds,
    portable_int16,
    safe_on,
)

SIZE = 16


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real ResNet-20 export, INT8 --target cpu in the portable default and with full-range weights."""
    import resdeploy
    from resdeploy.exporter import ExportConfig

    root = tmp_path_factory.mktemp("isa")
    fp32 = resdeploy.export("resnet20", root / "r20" / "fp32", ExportConfig(input_size=SIZE)).model_path
    portable = quantize(fp32, precision="int8", calib_data="synthetic:8", calib_samples=8)
    full = quantize(fp32, precision="int8", cpu="vnni", ranges=str(portable.ranges_path),
                    output=str(root / "r20" / "int8-cpu-vnni"))
    return {"portable": Path(portable.model_path), "vnni": Path(full.model_path)}


def test_portable_default_cannot_saturate_int16_pair_sums(variants: dict[str, Path]) -> None:
    # What AVX2's vpmaddubsw does: a1*w1 + a2*w2 into int16. With u8 activations and weights
    # within [-64, 64] no pair can pass 32767, whatever CPU this test runs on.
    model = onnx.load(str(variants["portable"]))
    bounds = pair_sum_bounds(model)
    ops = quantized_ops(model)
    assert len(bounds) == ops.get("Conv", 0) + ops.get("Gemm", 0) + ops.get("MatMul", 0) >= 20
    assert {b.activation_type for b in bounds} == {"uint8"}
    assert all(b.weight_max_abs <= 64 and b.pair_sum_max <= INT16_MAX for b in bounds), \
        [b for b in bounds if not b.fits_int16]
    assert portable_int16(model)


def test_full_range_weights_are_flagged_as_vnni_only(variants: dict[str, Path]) -> None:
    model = onnx.load(str(variants["vnni"]))
    worst = max(pair_sum_bounds(model), key=lambda b: b.pair_sum_max)
    assert worst.weight_max_abs == 127 and worst.pair_sum_max == 2 * 255 * 127 > INT16_MAX
    assert not portable_int16(model)


def test_manifest_records_where_each_variant_is_exact(variants: dict[str, Path]) -> None:
    from resdeploy.artifacts import read_manifest

    portable, full = read_manifest(variants["portable"]), read_manifest(variants["vnni"])
    assert safe_on(portable) == KINDS
    assert set(safe_on(full) or ()) == {X86_VNNI, X86_AMX, ARM64}
    # The warning is about the artifact and a CPU kind, so it can be checked for every kind here.
    for kind in KINDS:
        assert host_warning(portable, kind) is None
    for kind in (X86_AVX2, X86_AVX512):
        text = host_warning(full, kind) or ""
        assert "saturating int16" in text and "--cpu portable" in text
    assert host_warning(full, X86_VNNI) is None and host_warning(full, ARM64) is None
    # Artifacts made before `safe_on` was recorded: reduce_range tells.
    old = {"precision": "int8", "target": "cpu", "quantization": {"reduce_range": False}}
    assert host_warning(old, X86_AVX2) and not host_warning({**old, "quantization": {"reduce_range": True}}, X86_AVX2)
    assert "made for TensorRT" in (host_warning({"precision": "int8", "target": "trt"}, X86_AVX2) or "")
    assert host_warning({"precision": "int8", "target": "trt"}, X86_VNNI) is None
    assert host_warning({"precision": "fp32"}, X86_AVX2) is None


@pytest.mark.parametrize("arch, flags, kind", [
    ("x86_64", ["avx2"], X86_AVX2),
    ("x86_64", ["avx2", "avx512f"], X86_AVX512),
    ("x86_64", ["avx2", "avx512f", "avx512_vnni"], X86_VNNI),
    ("x86_64", ["avx2", "avx_vnni"], X86_VNNI),
    ("x86_64", ["avx2", "avx512f", "avx512_vnni", "amx_int8"], X86_AMX),
    ("aarch64", ["asimd"], ARM64),
    ("x86_64", [], None),  # flags unknown: no guess
    ("riscv64", ["v"], None),
])
def test_host_kind_from_flags(arch: str, flags: list[str], kind: str | None) -> None:
    assert host_kind(arch, flags) == kind


def test_portable_variant_matches_fp32_closely(variants: dict[str, Path]) -> None:
    # Numerical side of the structural claim, on this host: 7-bit weights still agree with FP32.
    from resdeploy.artifacts import read_manifest

    check = (read_manifest(variants["portable"]) or {})["check"]
    assert check["samples"] == 8 and np.isfinite(check["max_abs_error"])
    assert check["cosine_min"] > 0.9
