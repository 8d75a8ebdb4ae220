"""``validate --ray``: the same ValidateResult as in one process, bit for bit, also when a worker dies."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from conftest import run_cli
from PIL import Image

import resdeploy
from resdeploy.console import Reporter
from resdeploy.exporter import ExportConfig
from resdeploy.validation import ValidateConfig, validate

SIZE = 16


@pytest.fixture(scope="module")
def arts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rayval")
    rng = np.random.default_rng(0)
    for cls in ("a", "b", "c"):
        for i in range(10):
            path = root / "labelled" / cls / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (18, 18, 3), dtype=np.uint8)).save(path)
    x = rng.standard_normal((1200, 3, SIZE, SIZE)).astype(np.float32)
    np.savez(root / "many.npz", x=x, labels=rng.integers(0, 10, 1200))
    fp32 = resdeploy.export("resnet20", root / "m" / "fp32", ExportConfig(input_size=SIZE)).model_path
    int8 = resdeploy.quantize(fp32, precision="int8", calib_data=str(root / "labelled"), calib_samples=8).model_path
    return {"root": root, "labelled": root / "labelled", "many": root / "many.npz", "int8": Path(int8)}


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    a, b = dict(a), dict(b)
    a.pop("seconds"), b.pop("seconds")  # wall time: the only field that may differ
    assert a == b


@pytest.mark.slow
def test_ray_cli_result_equals_in_process_bit_for_bit(arts: dict[str, Path], ray_cluster: Any, tmp_path: Path) -> None:
    data = tmp_path / "val"
    shutil.copytree(arts["labelled"], data)
    # Sorted, it is position 20: the last of shard [18, 21) at batch size 3. Skipped, counted, replaced.
    (data / "b" / "broken.png").write_bytes((data / "b" / "0.png").read_bytes()[:40])
    for samples in (None, 20):
        args = ["validate", str(arts["int8"]), "--data", str(data), "--batch-size", "3", "--threads", "1", "--json"]
        if samples:
            args += ["--samples", str(samples), "--seed", "3"]
        local = validate(arts["int8"], config=ValidateConfig(data=str(data), batch_size=3, threads=1,
                                                             samples=samples, seed=3 if samples else 0))
        code, out, err = run_cli(*args, "--ray", "--ray-workers", "2")
        assert code == 0, err
        remote = json.loads(out)
        _same(json.loads(resdeploy.artifacts.to_json(local.to_dict())), remote)
        assert remote["samples"] == (samples or 30) and remote["skipped_files"] == 1


@pytest.mark.slow
def test_a_model_with_its_preprocessing_in_the_graph_validates_on_ray_as_in_one_process(
        arts: dict[str, Path], tiny_artifact: Path, ray_cluster: Any, tmp_path: Path) -> None:
    """The workers feed it decoded images, as one process does (they fed it the reference's tensors: exit 2)."""
    from resdeploy.preprocess_graph import embed_preprocessing
    from resdeploy.scale.ray_validate import RayExecutor, validate_on_ray

    raw = embed_preprocessing(tiny_artifact, tmp_path / "raw").path.parent  # its reference: tiny_artifact
    cfg = ValidateConfig(data=str(arts["labelled"]), batch_size=4, threads=1)
    local = validate(raw, config=cfg)
    remote = validate_on_ray(raw, config=cfg, executor=RayExecutor(workers=2, threads=1))
    assert remote.samples == local.samples == 30
    _same(local.to_dict(), remote.to_dict())


class _KillFirstWorker(Reporter):
    """Kills the Ray Data actor (SIGKILL) as soon as the first samples are back: mid-run."""

    killed: int | None = None

    def track(self, items, total, description, *, timed=False):  # noqa: ANN001, ANN201
        for i, item in enumerate(items):
            if i == 0:
                # The cluster's raylets, and so their workers, are started under this process.
                workers = [p for p in psutil.Process().children(recursive=True) if "MapWorker" in " ".join(_cmdline(p))]
                assert workers, "no Ray Data worker process found"
                type(self).killed = workers[0].pid
                workers[0].kill()
            yield item


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_retried_and_no_sample_counts_twice(arts: dict[str, Path], ray_cluster: Any) -> None:
    from resdeploy.scale.ray_validate import RayExecutor, validate_on_ray

    cfg = ValidateConfig(data=str(arts["many"]), batch_size=8, threads=1)
    local = validate(arts["int8"], config=cfg)
    run = RayExecutor(workers=1, threads=1)
    remote = validate_on_ray(arts["int8"], config=cfg, executor=run, reporter=_KillFirstWorker(quiet=True))
    killed = _KillFirstWorker.killed
    assert killed is not None
    # Every shard exactly once; some computed by the killed actor, the rest by its restarted successor.
    assert sorted(run.shard_pids) == list(range(1200 // 8))
    pids = set(run.shard_pids.values())
    assert killed in pids and len(pids) >= 2
    assert remote.samples == local.samples == 1200
    _same(local.to_dict(), remote.to_dict())


def test_missing_ray_is_one_line_naming_the_extra(arts: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code, out, err = run_cli("validate", str(arts["int8"]), "--data", str(arts["labelled"]), "--ray")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "pip install 'resdeploy[ray]'" in err


def test_unreachable_address_is_one_line(arts: dict[str, Path]) -> None:
    pytest.importorskip("ray")
    code, _, err = run_cli("validate", str(arts["int8"]), "--data", str(arts["labelled"]), "--ray", "127.0.0.1:9")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "cannot reach a Ray cluster at 127.0.0.1:9" in err


def test_ray_workers_without_ray(arts: dict[str, Path]) -> None:
    code, _, err = run_cli("validate", str(arts["int8"]), "--data", str(arts["labelled"]), "--ray-workers", "2")
    assert code == 2 and "--ray-workers applies with --ray only" in err


def test_bare_ray_flag_means_a_local_cluster() -> None:
    from resdeploy.cli.ray_flags import expand_ray_flag

    assert expand_ray_flag(["validate", "m", "--ray"]) == ["validate", "m", "--ray", "local"]
    assert expand_ray_flag(["validate", "--ray", "m.onnx"]) == ["validate", "--ray", "local", "m.onnx"]
    assert expand_ray_flag(["validate", "--ray", "10.0.0.1:6379", "m"]) == ["validate", "--ray", "10.0.0.1:6379", "m"]
    assert expand_ray_flag(["bench", "--ray", "auto"]) == ["bench", "--ray", "auto"]
    assert expand_ray_flag(["bench", "--ray", "--nodes", "x"]) == ["bench", "--ray", "local", "--nodes", "x"]
