"""``resdeploy sweep``: spec checks, the whole pipeline per combination, the content cache, Ray tasks."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

from resdeploy.scale.cache import Cache, cache_key

SPEC = """
output = "out"
models = [{{ name = "resnet20", input_size = 16 }}, {{ onnx = "broken.onnx", input_size = 16 }}]
precisions = ["fp32", "int8"]

[calibration]
data = "images"
samples = 8

[validation]
data = "images"
min_agreement = 0.0

[bench]
engines = ["ort"]
batches = [1]
iterations = 3
duration = 0.0
warmup = 1
threads = 1
"""


@pytest.fixture()
def spec_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        for i in range(6):
            p = tmp_path / "images" / cls / f"{i}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (18, 18, 3), dtype=np.uint8)).save(p)
    (tmp_path / "broken.onnx").write_bytes(b"not a model")  # fails at run time: recorded, others go on
    (tmp_path / "spec.toml").write_text(SPEC.format())
    return tmp_path


def _sweep(spec_dir: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    code, out, err = run_cli("sweep", str(spec_dir / "spec.toml"), "--json", "--no-report", *extra)
    return code, json.loads(out) if out else {}, err


def _combos(d: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["model"], c["precision"]): c for c in d["combos"]}


@pytest.mark.slow
def test_sweep_runs_each_combination_records_failures_and_reruns_from_the_cache(spec_dir: Path) -> None:
    code, first, err = _sweep(spec_dir)
    assert code == 1, err  # the broken model's combinations failed
    combos = _combos(first)
    assert set(combos) == {("resnet20", "fp32"), ("resnet20", "int8"), ("broken", "fp32"), ("broken", "int8")}
    for prec in ("fp32", "int8"):
        ok = combos[("resnet20", prec)]
        assert ok["ok"] and ok["gates_passed"] is True and ok["throughput"] > 0 and not ok["cached"]
        assert [s["stage"] for s in ok["stages"]] == ["export", "quantize", "validate", "bench"]
        bad = combos[("broken", prec)]
        assert not bad["ok"] and "broken.onnx" in bad["error"] and "\n" not in bad["error"]
    assert combos[("resnet20", "int8")]["model_path"] != combos[("resnet20", "fp32")]["model_path"]
    assert combos[("resnet20", "fp32")]["agreement"] == 1.0
    # Rerun: everything from the cache, and said so.
    t0 = time.perf_counter()
    code, second, err = _sweep(spec_dir)
    again = _combos(second)
    assert all(again[("resnet20", p)]["cached"] for p in ("fp32", "int8"))
    assert again[("resnet20", "int8")]["agreement"] == combos[("resnet20", "int8")]["agreement"]
    assert second["seconds"] < first["seconds"] / 2 and time.perf_counter() - t0 < first["seconds"]
    assert json.loads((spec_dir / "out" / "sweep.json").read_text())["schema"] == "resdeploy.sweep/1"
    assert not list((spec_dir / "out" / "cache").glob("*/.tmp-*"))  # no half-written entries left


@pytest.mark.slow
def test_sweep_on_ray_tasks_gives_the_local_results(spec_dir: Path, ray_cluster: Any) -> None:
    code, remote, err = _sweep(spec_dir, "--ray")
    assert code == 1, err
    assert remote["ray"] is True
    r = _combos(remote)
    assert r[("resnet20", "int8")]["ok"] and not r[("broken", "fp32")]["ok"]
    # The cache Ray's workers filled is the one a run in one process reads.
    code, local, err = _sweep(spec_dir)
    loc = _combos(local)
    assert loc[("resnet20", "int8")]["cached"] and loc[("resnet20", "fp32")]["cached"]
    for key in (("resnet20", "fp32"), ("resnet20", "int8")):
        assert loc[key]["agreement"] == r[key]["agreement"] and loc[key]["top1"] == r[key]["top1"]


@pytest.mark.parametrize("edit, message", [
    (("precisions = [\"fp32\", \"int8\"]", "precisions = [\"fp32\"]\ncolour = 1"), "unknown key 'colour' in the spec"),
    (("iterations = 3", "iterations = 3\nfoo = 2"), "unknown key 'foo' in [bench]"),
    (("name = \"resnet20\"", "name = \"resnet21\""), "unknown model 'resnet21'"),
    (("models = [", "models = []\nx = ["), "unknown key 'x'"),
    (("models = [{ name = \"resnet20\", input_size = 16 }, { onnx = \"broken.onnx\", input_size = 16 }]",
      "models = []"), "empty sweep"),
    (("precisions = [\"fp32\", \"int8\"]", "precisions = []"), "empty sweep"),
    (("precisions = [\"fp32\", \"int8\"]", "precisions = [\"int4\"]"), "unknown precision 'int4'"),
    (("precisions = [\"fp32\", \"int8\"]", "precisions = \"fp16\""), "'precisions' is a list, got 'fp16'"),
    (("models = [{ name = \"resnet20\", input_size = 16 }, { onnx = \"broken.onnx\", input_size = 16 }]",
      "models = \"resnet20\""), "'models' is a list, got 'resnet20'"),
    (("data = \"images\"\nmin", "data = \"nowhere\"\nmin"), "[validation] data not found: nowhere"),
])
def test_bad_specs_are_one_line_exit_2(spec_dir: Path, edit: tuple[str, str], message: str) -> None:
    spec = spec_dir / "spec.toml"
    text = spec.read_text()
    assert edit[0] in text
    spec.write_text(text.replace(edit[0], edit[1], 1))
    code, out, err = run_cli("sweep", str(spec))
    assert code == 2 and out == "", err
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not (spec_dir / "out").exists()  # nothing written for a bad spec


def test_spec_that_is_not_toml(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text("models = [")
    code, _, err = run_cli("sweep", str(tmp_path / "s.toml"))
    assert code == 2 and "is not valid TOML" in err and len(err.strip().splitlines()) == 1


def test_cache_entry_built_by_two_workers_at_once_is_written_once(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    key = cache_key("export", {"model": "m"})
    builds: list[int] = []
    results: list[tuple[Path, bool]] = []

    def build(tmp: Path) -> None:
        tmp.mkdir()
        builds.append(1)
        (tmp / "model.onnx").write_bytes(b"a" * 1000)
        time.sleep(0.2)  # both are inside build at the same time

    threads = [threading.Thread(target=lambda: results.append(cache.get_dir("export", key, {}, build)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 2 and len({p for p, _ in results}) == 1
    assert sorted(hit for _, hit in results) == [False, True]  # one wrote it, the other used it
    assert (results[0][0] / "model.onnx").read_bytes() == b"a" * 1000
    assert [p.name for p in (tmp_path / "export").iterdir()] == [key]  # no temporary copies left
    assert cache.get_dir("export", key, {}, build)[1] is True and len(builds) == 2  # a rerun builds nothing
    assert cache_key("export", {"model": "m"}) != cache_key("export", {"model": "n"})
