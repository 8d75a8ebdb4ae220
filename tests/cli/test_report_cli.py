"""`resdeploy report` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli


def _result(tiny_onnx, tmp_path: Path) -> Path:  # noqa: ANN001
    path, _ = tiny_onnx
    out = tmp_path / "cpu.json"
    code, _, stderr = run_cli("bench", str(path), "--batch", "1,2", "--iterations", "4", "--duration", "0",
                              "--warmup", "1", "-o", str(out), "-q")
    assert code == 0, stderr
    return out


def test_report_html_and_json(tiny_onnx, tmp_path: Path) -> None:  # noqa: ANN001
    res = _result(tiny_onnx, tmp_path)
    html = tmp_path / "out" / "report.html"
    code, stdout, stderr = run_cli("report", str(res), "-o", str(html))
    assert code == 0, stderr
    assert "speed-up" in stdout and "ort" in stdout and html.exists()
    code, stdout, _ = run_cli("report", str(res), "--json")
    rows = json.loads(stdout)["rows"]
    assert code == 0 and [r["batch"] for r in rows] == [1, 2] and rows[0]["speedup"] == 1.0


def test_report_refuses_another_schema_version(tiny_onnx, tmp_path: Path) -> None:  # noqa: ANN001
    res = _result(tiny_onnx, tmp_path)
    data = json.loads(res.read_text())
    data["schema"] = "resdeploy.bench/2"
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(data))
    out = tmp_path / "report.html"
    code, _, stderr = run_cli("report", str(res), str(newer), "-o", str(out))
    assert code == 2 and "resdeploy.bench/2" in stderr and len(stderr.strip().splitlines()) == 1
    assert not out.exists()
    code, _, stderr = run_cli("report", str(tmp_path / "missing.json"))
    assert code == 2 and "no such file" in stderr
