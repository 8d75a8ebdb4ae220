"""``make demo`` (``resdeploy.demo``): the whole job on real digits, shortened, and what it may delete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resdeploy.demo import DEMO_MARKER, DemoConfig, main, run_demo


@pytest.mark.slow
def test_the_demo_trains_exports_quantizes_validates_benches_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = run_demo(DemoConfig(output=str(out), epochs=3, engines=["torch", "ort"], batches=[1, 2], duration=0.0,
                                 calib_samples=64, threads=1))
    rows = {(r.variant, r.engine): r for r in result.rows}
    assert set(rows) == {("fp32", "torch"), ("fp32", "ort"), ("fp16", "ort"), ("int8-cpu", "ort")}
    fp32 = rows["fp32", "ort"].top1
    assert fp32 is not None and fp32 > 30  # three epochs on 10 classes: far above chance (10%), from real weights
    assert abs(rows["fp16", "ort"].drop_points or 0) < 1.0
    assert all(r.p50_ms_b1 and r.p50_ms_b1 > 0 for r in result.rows)
    assert result.report.is_file() and "<html" in result.report.read_text()[:2000].lower()
    assert json.loads((out / "demo.json").read_text())["rows"][0]["variant"] == "fp32"
    assert sorted(p.name for p in (out / "results").iterdir()) == [
        "bench-fp16.json", "bench-fp32.json", "bench-int8-cpu.json",
        "validate-fp16.json", "validate-fp32.json", "validate-int8-cpu.json"]


def test_the_demo_replaces_only_a_folder_it_wrote(tmp_path: Path) -> None:
    mine = tmp_path / "work"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's")
    assert main(["--output", str(mine), "--quiet"]) == 2  # make demo always passes force: it must not rmtree this
    assert (mine / "notes.txt").read_text() == "the user's"
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / DEMO_MARKER).write_text("")
    (earlier / "stale.json").write_text("{}")
    with pytest.raises(Exception, match="epochs"):  # replaced (stale file gone), then stopped at the bad setting
        run_demo(DemoConfig(output=str(earlier), epochs=0, force=True))
    assert not (earlier / "stale.json").exists()
