"""``bench --ray --nodes``: one bench per matching node of a two-node local cluster, one file for ``report``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

import resdeploy
from resdeploy.exporter import ExportConfig

FAST = ("--engine", "ort", "--batch", "1", "--iterations", "3", "--duration", "0", "--warmup", "1", "--threads", "1")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fleet") / "fp32"
    resdeploy.export("resnet20", out, ExportConfig(input_size=16))
    return out


@pytest.mark.slow
def test_bench_on_each_matching_node_gathers_one_file_for_report(model: Path, ray_cluster: Any, tmp_path: Path) -> None:
    ray, _ = ray_cluster
    out = tmp_path / "fleet.json"
    code, _, err = run_cli("bench", str(model), *FAST, "--ray", "--nodes", "all", "--output", str(out), "-q")
    assert code == 0, err
    fleet = json.loads(out.read_text())
    assert fleet["schema"] == "resdeploy.fleet/1" and fleet["selector"] == "all"
    ids = [r["node"]["node_id"] for r in fleet["results"]]
    assert sorted(ids) == sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])  # each node once
    for r in fleet["results"]:
        assert r["machine"]["cpu"] and r["runs"][0]["throughput"] > 0  # the node's own fingerprint
        assert r["runs"][0]["model"] == str(model) and r["config"]["model"] == str(model)
    # A resource selector and a label selector each pick the second node only.
    for selector in ("fleet", "role=bench"):
        code, text, err = run_cli("bench", str(model), *FAST, "--ray", "--nodes", selector, "--json", "-q")
        assert code == 0, err
        picked = json.loads(text)["results"]
        assert len(picked) == 1 and picked[0]["node"]["labels"].get("role") == "bench"
    code, text, err = run_cli("report", str(out), "--json")
    assert code == 0, err
    assert len(json.loads(text)["rows"]) == 2  # one row per node


@pytest.mark.slow  # the cluster fixture takes ~20 s to start
def test_selector_matching_no_node_is_one_line(model: Path, ray_cluster: Any) -> None:
    code, out, err = run_cli("bench", str(model), *FAST, "--ray", "--nodes", "gpu=h100")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "--nodes gpu=h100 matches none of the cluster's 2 node(s)" in err
    assert "fleet" in err and "role=bench" in err  # says what there is


def test_nodes_without_ray_and_bad_selector(model: Path) -> None:
    code, _, err = run_cli("bench", str(model), *FAST, "--nodes", "all")
    assert code == 2 and "use it with --ray" in err
    from resdeploy.errors import ResdeployError
    from resdeploy.scale.fleet import parse_selector

    assert str(parse_selector("resource:fleet")) == "resource:fleet" and parse_selector("*").kind == "all"
    with pytest.raises(ResdeployError, match="KEY=VALUE"):
        parse_selector("role=")
