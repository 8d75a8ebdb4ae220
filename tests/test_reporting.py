"""report: schema checks, merging machines, speed-ups, tables, plots, HTML and Markdown."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from resdeploy.benchmark import bench
from resdeploy.errors import ResdeployError
from resdeploy.reporting import apply_speedups, check_result, report, rows_from


@pytest.fixture(scope="module")
def results(tiny_onnx, tmp_path_factory) -> list[Path]:  # noqa: ANN001
    """A real CPU result, plus a copy as a result copied back from another host would look."""
    path, _ = tiny_onnx
    d = tmp_path_factory.mktemp("results")
    res = bench(str(path), engines=["ort", "openvino"], batches=[1, 4], iterations=6, duration=0.0,
                warmup_iterations=1)
    local = res.save(d / "cpu.json")
    other = copy.deepcopy(res.to_dict())  # same schema, as written on a second machine
    other["machine"]["hostname"] = "edge-board"
    other["machine"]["cpu"]["model"] = "ARM Cortex-A78AE"
    for run in other["runs"]:
        run["throughput"] /= 4.0
    remote = d / "board.json"
    remote.write_text(json.dumps(other))
    return [local, remote]


def test_merge_and_speedups_against_a_chosen_baseline(results) -> None:  # noqa: ANN001
    data = [(str(p), json.loads(p.read_text())) for p in results]
    rows = rows_from(data)
    assert len(rows) == 8 and len({r.machine for r in rows}) == 2
    base = apply_speedups(rows, "engine=ort,machine=Cortex")
    assert "ARM Cortex-A78AE" in base
    for r in rows:
        ref = next(x for x in rows if x.engine == "ort" and "Cortex" in x.machine and x.batch == r.batch)
        assert r.speedup == pytest.approx(r.throughput / ref.throughput)
    board_ort = [r for r in rows if "Cortex" in r.machine and r.engine == "ort"]
    assert all(r.speedup == pytest.approx(1.0) for r in board_ort)
    local_ort = [r for r in rows if "Cortex" not in r.machine and r.engine == "ort"]
    assert all(r.speedup == pytest.approx(4.0) for r in local_ort)
    with pytest.raises(ResdeployError, match="matches no run"):
        apply_speedups(rows, "engine=trt")
    with pytest.raises(ResdeployError, match="not one of"):
        apply_speedups(rows, "colour=red")


def test_html_report_embeds_table_plots_and_machines(results, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "report.html"
    res = report(results, out)
    text = out.read_text()
    assert text.count("data:image/png;base64,") == 3
    assert "ARM Cortex-A78AE" in text and "edge-board" in text and "onnxruntime" in text
    assert "<td>openvino</td>" in text
    first = res.rows[0]
    assert f"{first.p50_ms:.3f}"[:4] in text
    assert res.to_dict()["schema"] == "resdeploy.report/1"


def test_markdown_report_writes_pngs_beside_it(results, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "report.md"
    report(results, out, baseline="openvino")
    text = out.read_text()
    assert "| machine | engine |" in text and "report_plots/latency_cdf.png" in text
    for name in ("latency_vs_batch", "throughput", "latency_cdf"):
        png = tmp_path / "report_plots" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_other_schema_versions_and_files_are_refused(results, tmp_path: Path) -> None:  # noqa: ANN001
    data = json.loads(results[0].read_text())
    with pytest.raises(ResdeployError, match="resdeploy.bench/2; this resdeploy reads resdeploy.bench/1"):
        check_result({**data, "schema": "resdeploy.bench/2"}, "new.json")
    with pytest.raises(ResdeployError, match="not a resdeploy bench result"):
        check_result({"schema": "resdeploy.manifest/1"}, "manifest.json")
    with pytest.raises(ResdeployError, match="no 'schema'"):
        check_result([1, 2], "list.json")
    with pytest.raises(ResdeployError, match="no runs"):
        check_result({**data, "runs": []}, "empty.json")
    with pytest.raises(ResdeployError, match=r"\.html or \.md"):
        report(results, tmp_path / "report.pdf")
    assert not (tmp_path / "report.pdf").exists()


def test_speedups_compare_each_model_with_its_own_baseline(results) -> None:  # noqa: ANN001
    local = json.loads(results[0].read_text())
    assert {r["model_name"] for r in local["runs"]} == {"model"}  # the tiny ONNX file's name
    bigger = copy.deepcopy(local)
    for run in bigger["runs"]:
        run["model_name"] = "resnet50"
        run["throughput"] /= 10.0
    rows = rows_from([("a.json", local), ("b.json", bigger)])
    apply_speedups(rows, "engine=ort")
    ort_rows = [r for r in rows if r.engine == "ort"]
    assert len(ort_rows) == 4 and all(r.speedup == pytest.approx(1.0) for r in ort_rows)
    # Naming a model in the baseline compares every row with that model's runs.
    apply_speedups(rows, "engine=ort,model=model")
    assert all(r.speedup == pytest.approx(0.1) for r in rows if r.model == "resnet50" and r.engine == "ort")
