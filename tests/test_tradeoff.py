"""The report for choosing a variant: validate + bench merged, Pareto front, and the HTML in a real browser."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resdeploy.tradeoff import TradeoffPoint, cpu_features, mark_pareto


def _point(name: str, speed: float, drop: float) -> TradeoffPoint:
    return TradeoffPoint(label=name, model="m", variant=name, engine="ort", machine="cpu", batch=1,
                         images_per_s=speed, p50_ms=1000 / speed, top1=90 - drop, drop_points=drop)


def test_pareto_front_keeps_only_undominated_points() -> None:
    pts = [_point("fp32", 100, 0.0), _point("fp16", 90, 0.0), _point("int8", 300, 0.8),
           _point("int8-bad", 250, 2.0), _point("tie", 300, 0.8)]
    mark_pareto(pts)
    assert {p.variant: p.pareto for p in pts} == {"fp32": True, "fp16": False, "int8": True, "int8-bad": False,
                                                  "tie": True}


def test_cpu_features_name_what_int8_speed_depends_on() -> None:
    assert cpu_features(["avx2", "avx512f"]) == "AVX2, AVX-512 (no VNNI, AMX)"
    assert cpu_features(["avx2", "avx512f", "avx512_vnni", "amx_tile"]) == "AVX2, AVX-512, VNNI, AMX"
    assert cpu_features([]) == "none of AVX2/AVX-512/VNNI/AMX"


@pytest.fixture(scope="module")
def merged_report(tmp_path_factory: pytest.TempPathFactory, tiny_onnx: tuple[Path, object]) -> dict[str, object]:
    """A real bench result and a real validate result of the same ONNX file, reported together."""
    import resdeploy
    from resdeploy.artifacts import atomic_write_json
    from resdeploy.benchmark import BenchConfig

    root = tmp_path_factory.mktemp("tradeoff")
    model, _ = tiny_onnx
    rng = np.random.default_rng(0)
    for k in range(2):
        (root / "data" / f"c{k}").mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / "data" / f"c{k}" / f"{i}.png")
    v = resdeploy.validate(model, reference=str(model), data=str(root / "data"), input_size=32, resize=32)
    atomic_write_json(root / "validate.json", v.to_dict(), force=True)
    b = resdeploy.bench(BenchConfig(model=str(model), engines=["ort"], batches=[1, 2], iterations=5, duration=0.05,
                                    warmup_iterations=1, input_size=32))
    b.save(root / "bench.json")
    out = root / "report.html"
    result = resdeploy.report([root / "bench.json", root / "validate.json"], out)
    return {"result": result, "html": out, "validate": v}


def test_report_merges_validate_with_bench(merged_report: dict) -> None:
    result, v = merged_report["result"], merged_report["validate"]
    assert len(result.tradeoff) == 2 and {p.batch for p in result.tradeoff} == {1, 2}
    assert all(p.pareto for p in result.tradeoff)  # one point per batch: each is its own front
    assert all(abs(p.top1 - 100 * v.accuracy["candidate"]["top1"]) < 1e-9 for p in result.tradeoff)
    assert result.to_dict()["tradeoff"][0]["label"].endswith("· ort")
    text = Path(merged_report["html"]).read_text()
    assert "Accuracy against speed" in text and "throughput (images/s)" in text and "p50 (ms)" in text
    assert "cpu flags" in text and "threads" in text


def test_report_refuses_validate_results_alone(merged_report: dict, tmp_path: Path) -> None:
    from tests.conftest import run_cli

    src = Path(merged_report["html"]).parent / "validate.json"
    code, _, err = run_cli("report", str(src), "-o", str(tmp_path / "r.html"))
    assert code == 2 and "only validate results" in err


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


# Injected into a copy of the report: records script errors, console.error calls and images that
# did not decode, then writes the verdict into the DOM that --dump-dom prints.
_PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  window.__errors.push('error: ' + (e.message || (e.target && (e.target.src || e.target.tagName)) || 'unknown'));
}, true);
var _ce = console.error; console.error = function () { window.__errors.push('console.error: ' +
  Array.prototype.join.call(arguments, ' ')); _ce.apply(console, arguments); };
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).map(function (i) { return i.alt; });
  var narrow = imgs.filter(function (i) { return i.getBoundingClientRect().width < 0.9 *
    document.body.getBoundingClientRect().width; }).map(function (i) { return i.alt; });
  var pre = document.createElement('pre'); pre.id = '__probe';
  pre.textContent = JSON.stringify({images: imgs.length, broken: broken, narrow: narrow, errors: window.__errors});
  document.body.appendChild(pre);
});
</script>"""


@pytest.mark.slow
def test_report_renders_in_headless_chromium(merged_report: dict, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        if os.environ.get("RESDEPLOY_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed, and RESDEPLOY_REQUIRE_BROWSER=1 (CI) needs it")
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium; .ci/run installs it)")
    page = tmp_path / "page.html"
    page.write_text(Path(merged_report["html"]).read_text().replace("<head>", "<head>" + _PROBE, 1))
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2000", "--virtual-time-budget=10000",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    start = proc.stdout.find('<pre id="__probe">')
    assert start >= 0, "the probe did not run: " + proc.stderr[-1000:]
    import html

    probe = json.loads(html.unescape(proc.stdout[start + len('<pre id="__probe">'):proc.stdout.index("</pre>", start)]))
    assert probe["images"] == 4  # accuracy against speed + latency, throughput, CDF
    assert probe["broken"] == [] and probe["errors"] == []
    assert probe["narrow"] == []  # every plot fills the page width


def _drawn_figure(pts: list[TradeoffPoint], monkeypatch: pytest.MonkeyPatch):  # noqa: ANN202 - a Figure
    """The matplotlib figure ``tradeoff.plot`` renders (its PNG bytes say nothing about labels)."""
    import matplotlib.figure

    from resdeploy.tradeoff import plot

    drawn: list = []
    save = matplotlib.figure.Figure.savefig

    def recording(fig, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        drawn.append(fig)
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", recording)
    mark_pareto(pts)
    assert plot(pts)[:4] == b"\x89PNG"
    return drawn[0]


def test_a_panel_spanning_less_than_a_decade_has_numbers_on_its_speed_axis(monkeypatch: pytest.MonkeyPatch) -> None:
    # INT8 and FP16 at 22-76 images/s: only the decades (10, 100) were labelled, so that panel had no number.
    pts = [_point("fp16", 22.3, 0.0), _point("int8-cpu", 71.2, -2.6), _point("int8-trt", 76.4, -2.6)]
    (ax,) = _drawn_figure(pts, monkeypatch).axes
    lo, hi = ax.get_xlim()
    shown = [t.get_text() for t in ax.get_xticklabels(which="both") if t.get_text() and lo <= t.get_position()[0] <= hi]
    assert shown and all(float(s) for s in shown)  # plain numbers (20, 50), not 2x10^1


def test_points_of_two_models_are_labelled_with_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    # resnet18's and resnext50's INT8 variants were both labelled "int8-cpu · ort".
    pts = [_point("int8-cpu", 70.0, 0.5), _point("int8-cpu", 20.0, 0.2)]
    for p, model in zip(pts, ("resnet18", "resnext50_32x4d"), strict=True):
        p.model, p.label = model, f"{model} int8-cpu · ort"
    (ax,) = _drawn_figure(pts, monkeypatch).axes
    assert sorted(t.get_text() for t in ax.texts) == ["resnet18 int8-cpu · ort", "resnext50_32x4d int8-cpu · ort"]
    (ax,) = _drawn_figure(pts[:1], monkeypatch).axes  # one model: the short label
    assert [t.get_text() for t in ax.texts] == ["int8-cpu · ort"]
