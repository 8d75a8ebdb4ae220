"""The host fingerprint and the engine inventory behind `resdeploy info`."""

from __future__ import annotations

import json
import os

from resdeploy import machine


def test_fingerprint_describes_this_host() -> None:
    fp = machine.fingerprint()
    json.dumps(fp)  # plain JSON, no objects
    assert fp["cpu"]["logical_cores"] == os.cpu_count()
    assert 1 <= fp["cpu"]["usable_cpus"] <= os.cpu_count()
    assert fp["cpu"]["model"] and fp["cpu"]["model"] != "unknown"
    if os.path.exists("/proc/cpuinfo"):
        assert fp["cpu"]["model"] in open("/proc/cpuinfo").read()
    import onnxruntime

    assert fp["libraries"]["onnxruntime"] == onnxruntime.__version__
    assert "numpy" in fp["libraries"]


def test_short_label_prefers_gpu() -> None:
    fp = machine.fingerprint()
    assert fp["cpu"]["model"] in machine.short_label({**fp, "gpus": []})
    assert machine.short_label({**fp, "gpus": [{"name": "NVIDIA H100", "driver": "570"}]}) == "NVIDIA H100"


def test_engines_info_lists_all_engines_with_real_versions() -> None:
    engines = {e["engine"]: e for e in machine.engines_info()}
    assert set(engines) == {"torch", "ort", "openvino", "trt"}
    import onnxruntime

    assert engines["ort"]["available"] and engines["ort"]["version"] == onnxruntime.__version__
    assert "CPUExecutionProvider" in engines["ort"]["providers"]
    for e in engines.values():
        assert e["available"] or e["note"], f"{e['engine']} unavailable without saying what to install"


def test_engines_info_reports_a_broken_runtime_instead_of_crashing(monkeypatch) -> None:  # noqa: ANN001
    import openvino

    def broken_core() -> None:
        raise RuntimeError("Cannot load library 'libopenvino_intel_cpu_plugin.so'\nmore detail")

    monkeypatch.setattr(openvino, "Core", broken_core)
    engines = {e["engine"]: e for e in machine.engines_info()}
    ov = engines["openvino"]
    assert not ov["available"] and "failed to load" in ov["note"] and "libopenvino_intel_cpu_plugin" in ov["note"]
    assert "\n" not in ov["note"]
    assert engines["ort"]["available"]


def test_int8_advice_names_the_cpu_profiles_only_for_x86_without_vnni() -> None:
    from resdeploy.machine import int8_cpu_advice

    assert "--cpu vnni" in (int8_cpu_advice("x86_64", ["avx2", "avx512f"]) or "")
    assert "--cpu portable" in (int8_cpu_advice("x86_64", ["avx2"]) or "")
    for flags in (["avx2", "avx512_vnni"], ["avx2", "avx_vnni"], ["avx512f", "amx_int8"]):
        assert int8_cpu_advice("x86_64", flags) is None
    assert int8_cpu_advice("aarch64", ["asimd"]) is None  # ARM: no such saturation
    assert int8_cpu_advice("x86_64", []) is None  # flags unknown: say nothing rather than guess
