"""`resdeploy info`: engines and devices of this machine."""

from __future__ import annotations

import json

from conftest import run_cli


def test_info_table_and_json() -> None:
    code, stdout, _ = run_cli("info")
    assert code == 0
    for word in ("torch", "ort", "openvino", "trt", "CPUExecutionProvider"):
        assert word in stdout
    code, stdout, _ = run_cli("info", "--json")
    data = json.loads(stdout)
    assert code == 0 and {e["engine"] for e in data["engines"]} == {"torch", "ort", "openvino", "trt"}
    assert data["machine"]["cpu"]["logical_cores"] >= 1
    from resdeploy.machine import int8_cpu_advice

    expected = int8_cpu_advice(data["machine"]["arch"], data["machine"]["cpu"]["flags"])
    assert data["advice"] == ([expected] if expected else [])
