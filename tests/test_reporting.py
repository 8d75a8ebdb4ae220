"""report: schema checks, merging machines, speed-ups, tables, plots, HTML and Markdown."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from resdeploy.benchmark import bench
from resdeploy.errors import ResdeployError
from resdeploy.reporting import apply_speedups, check_result, columns_for, report, row_cells, rows_from


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


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["runs"][0]["stats"].pop("p50_ms"), "stats.p50_ms"),
        (lambda d: d["runs"][0]["stats"].update(p99_ms=None), "stats.p99_ms"),
        (lambda d: d["runs"][0].update(batch="8"), "not a positive integer"),
        (lambda d: d["runs"][0].update(throughput="fast"), "throughput"),
        (lambda d: d["runs"][0].update(latencies_ms=["a"]), "latencies_ms"),
        (lambda d: d["runs"][0].update(emulation="yes"), "'emulation' is not an object"),
        (lambda d: d.update(machine=[]), "'machine' is not an object"),
        (lambda d: d["machine"].update(cpu="EPYC"), "machine.cpu"),
    ],
)
def test_damaged_runs_are_one_line_errors_not_tracebacks(results, edit, message) -> None:  # noqa: ANN001
    data = json.loads(results[0].read_text())
    edit(data)
    with pytest.raises(ResdeployError, match=message):
        check_result(data, "hand-edited.json")


def test_rows_that_would_look_alike_are_told_apart(results, tmp_path: Path) -> None:  # noqa: ANN001
    local = json.loads(results[0].read_text())
    server = copy.deepcopy(local)
    for run in server["runs"]:
        run["scenario"] = "server"
        run["scenario_summary"] = {"target_qps": 10.0, "offered_qps": 9.5, "achieved_qps": 9.4,
                                   "overloaded": False, "slo_ms": None}
    rerun = copy.deepcopy(local)
    rows = rows_from([("a.json", local), ("server.json", server), ("rerun.json", rerun)])
    cells = {tuple(row_cells(r, columns_for(rows))) for r in rows}
    assert len(cells) == len(rows)  # no two table rows identical
    assert "scenario" in columns_for(rows)
    two = rows_from([("a.json", local), ("server.json", server)])
    assert len({r.machine for r in two}) == 1  # a sweep and a server run do not clash...
    assert len({r.series for r in two}) == 4  # ...but are separate plot lines (ort/openvino x sweep/server)
    assert {r.machine.rsplit(" · ", 1)[-1] for r in rows} == {"a.json", "server.json", "rerun.json"}
    with pytest.raises(ResdeployError, match="given twice"):
        report([results[0], results[0]])
    with pytest.raises(ResdeployError, match="no value"):
        apply_speedups(rows, "engine=")


def test_emulation_dagger_and_markdown_footnotes(results, tmp_path: Path) -> None:  # noqa: ANN001
    data = json.loads(results[0].read_text())
    for run in data["runs"]:
        run["emulation"] = {"kind": "cpu-pinning", "cpus": [0], "threads": 1, "note": "emulates a 1-core CPU"}
    path = tmp_path / "pinned.json"
    path.write_text(json.dumps(data))
    rows = rows_from([(str(path), data)])
    assert "machine" not in columns_for(rows)
    assert all("†" in " ".join(row_cells(r, columns_for(rows))) for r in rows)  # marked without a machine column
    out = tmp_path / "r.md"
    report([path], out)
    lines = out.read_text().splitlines()
    # "* fewer than..." would render as a bullet, losing the asterisk the p99 cells refer to.
    assert not any(line.startswith("* ") for line in lines)
    assert any(line.startswith("\\* fewer than 100 samples") for line in lines)


def test_plots_have_plain_tick_labels_and_legends_off_the_data(results, monkeypatch) -> None:  # noqa: ANN001
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from resdeploy.reporting import make_plots

    figures = []
    real_close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig: (figures.append(fig), real_close(fig)))
    rows = rows_from([(str(p), json.loads(p.read_text())) for p in results])
    make_plots(rows)
    latency, throughput, cdf = (f.axes[0] for f in figures)
    assert [t.get_text() for t in latency.get_xticklabels()] == ["1", "4"]  # batch sizes, not 2^0 and 2^2
    for ax in (latency, throughput, cdf):
        legend = ax.get_legend()
        assert legend is not None
        renderer = FigureCanvasAgg(ax.figure).get_renderer()  # closed figures lose their canvas
        assert legend.get_window_extent(renderer).y1 <= ax.get_window_extent(renderer).y0  # below the axes
    labels = [t.get_text() for t in cdf.xaxis.get_ticklabels(which="both") if t.get_text()]
    assert labels and not any("^" in t or "times" in t for t in labels)


def test_report_includes_a_saved_layer_report_as_a_plot(results, tmp_path: Path) -> None:  # noqa: ANN001
    layers = {"schema": "resdeploy.layers/1", "candidate": "c", "parent": "p", "precision": "int8", "samples": 4,
              "data": "d", "layers": [{"node": f"n{i}", "op_type": "Conv", "module": f"layer{i}", "sqnr_db": 20.0 - i,
                                       "cosine": 0.99, "isolated_sqnr_db": 30.0 - i, "isolated_cosine": 0.999,
                                       "rank": i + 1} for i in range(3)]}
    saved = tmp_path / "layers.json"
    saved.write_text(json.dumps(layers))
    out = tmp_path / "report.md"
    report([*results, saved], out)
    assert "report_plots/layer_errors_layers.png" in out.read_text()
    assert (tmp_path / "report_plots" / "layer_errors_layers.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ResdeployError, match="at least one bench result"):
        report([saved], tmp_path / "r.html")
