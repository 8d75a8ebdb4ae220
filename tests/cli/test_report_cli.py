"""`resdeploy report` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

SAMPLE = Path(__file__).resolve().parents[2] / "calibration" / "sample"  # real photos


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
    assert f"wrote {html}" in stderr
    first = html.read_bytes()
    code, stdout, stderr = run_cli("report", str(res), "-o", str(html), "-q", "--title", "again")
    assert code == 2 and stdout == "" and stderr.strip().splitlines() == [
        f"error: {html} already exists; pass --force to overwrite it"]
    assert html.read_bytes() == first  # never replaced without --force
    code, stdout, stderr = run_cli("report", str(res), "-o", str(html), "-q", "--force", "--title", "again")
    assert code == 0 and "speed-up" in stdout and stderr == "" and b"again" in html.read_bytes()
    code, stdout, _ = run_cli("report", str(res), "--json")
    rows = json.loads(stdout)["rows"]
    assert code == 0 and [r["batch"] for r in rows] == [1, 2] and rows[0]["speedup"] == 1.0


def test_report_on_a_folder_reads_the_results_in_it(tiny_onnx, tmp_path: Path) -> None:  # noqa: ANN001
    res = _result(tiny_onnx, tmp_path / "results")
    code, stdout, _ = run_cli("report", str(res.parent), "--json")  # was: "[Errno 21] Is a directory"
    assert code == 0 and json.loads(stdout)["sources"] == [str(res)]
    # A results folder as `make demo` leaves it: bench and validate JSON; unlabelled validate runs are left out.
    code, out, err = run_cli("validate", str(tiny_onnx[0]), "--reference", str(tiny_onnx[0]), "--data",
                             str(SAMPLE), "--samples", "4", "--json")
    assert code == 0, err
    (res.parent / "validate.json").write_text(out)
    code, stdout, stderr = run_cli("report", str(res.parent), "--json")  # was: "not a resdeploy bench result"
    assert code == 0, stderr
    assert json.loads(stdout)["sources"] == [str(res)] and "has no accuracy (validated on unlabelled data)" in stderr
    (tmp_path / "empty").mkdir()
    code, stdout, stderr = run_cli("report", str(tmp_path / "empty"))
    assert code == 2 and stdout == "" and "no .json result files" in stderr and len(stderr.strip().splitlines()) == 1


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


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_report_output_that_is_a_directory_is_refused_before_any_plot(tiny_onnx, tmp_path: Path) -> None:  # noqa: ANN001
    res = _result(tiny_onnx, tmp_path)
    for name in ("report.html", "report.md"):
        (tmp_path / name).mkdir()
        before = _tree(tmp_path)
        code, out, err = run_cli("report", str(res), "-o", str(tmp_path / name))
        assert code == 2 and out == "" and "Traceback" not in err
        assert err.strip().splitlines() == [f"error: {tmp_path / name} is a directory; pass a file path such as "
                                            f"{tmp_path / name / name}"]
        assert _tree(tmp_path) == before  # no report_plots/ beside it


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_markdown_and_its_plots_are_written_together_or_not_at_all(
        tiny_onnx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException) -> None:  # noqa: ANN001
    """The document's write fails after the PNGs are drawn: neither new plots nor a new document appear,
    and an earlier report with its plots is kept as it was."""
    import resdeploy.artifacts

    res = _result(tiny_onnx, tmp_path)
    md = tmp_path / "out" / "report.md"
    code, _, err = run_cli("report", str(res), "-o", str(md))
    assert code == 0, err
    old_tree, old = _tree(md.parent), {p: p.read_bytes() for p in md.parent.rglob("*") if p.is_file()}
    assert sorted(p.name for p in old) == ["latency_cdf.png", "latency_vs_batch.png", "report.md", "throughput.png"]

    def failing_write(path, data, *, force):  # noqa: ANN001, ANN202
        raise failure

    monkeypatch.setattr(resdeploy.artifacts, "commit_file", failing_write)
    for target in (md, tmp_path / "new" / "report.md"):
        code, out, err = run_cli("report", str(res), "-o", str(target), "--title", "second", "--force")
        assert code == (130 if isinstance(failure, KeyboardInterrupt) else 2), err
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
        assert out == ""
    assert _tree(md.parent) == old_tree  # no temporary siblings either
    assert {p: p.read_bytes() for p in md.parent.rglob("*") if p.is_file()} == old
    assert not (tmp_path / "new").exists() or _tree(tmp_path / "new") == set()  # no plots without their document
