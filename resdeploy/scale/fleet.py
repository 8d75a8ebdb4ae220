"""``bench --ray --nodes SELECTOR``: the same benchmark on every matching node of a Ray cluster.

Why through Ray: a fleet (a GPU server, two kinds of CPU box, an edge board running a Ray
worker) is already a cluster; Ray places one task on each node that matches, and the
results come back with each node's own machine fingerprint (``machine.fingerprint`` runs
on the node), gathered into one ``resdeploy.fleet/1`` file that ``resdeploy report`` reads.

One run at a time per node: each task reserves all of its node's CPUs, so Ray never places
a second benchmark (or any other task) beside it, and two benchmarks never share a node's
CPUs. The model travels with the task (its files through the object store), so nodes need
no shared file system.

Selectors: ``all`` (every alive node), ``KEY=VALUE`` (a node label, ``ray start --labels``),
or ``NAME`` / ``resource:NAME`` (nodes that have that resource, ``ray start --resources``).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resdeploy.console import QUIET, Reporter
from resdeploy.errors import ResdeployError


@dataclass(frozen=True)
class NodeSelector:
    kind: str  # "all" | "label" | "resource"
    key: str = ""
    value: str = ""

    def matches(self, node: dict[str, Any]) -> bool:
        if self.kind == "all":
            return True
        if self.kind == "label":
            labels = node.get("Labels") or node.get("labels") or {}
            return str(labels.get(self.key)) == self.value
        return float((node.get("Resources") or {}).get(self.key, 0)) > 0

    def __str__(self) -> str:
        return {"all": "all", "label": f"{self.key}={self.value}", "resource": f"resource:{self.key}"}[self.kind]


def parse_selector(text: str | None) -> NodeSelector:
    t = (text or "all").strip()
    if t in ("all", "*"):
        return NodeSelector("all")
    if "=" in t:
        key, _, value = t.partition("=")
        if not key.strip() or not value.strip():
            raise ResdeployError(f"--nodes takes all, KEY=VALUE (a node label) or a resource name, got '{text}'")
        return NodeSelector("label", key.strip(), value.strip())
    name = t.removeprefix("resource:").strip()
    if not name:
        raise ResdeployError(f"--nodes takes all, KEY=VALUE (a node label) or a resource name, got '{text}'")
    return NodeSelector("resource", name)


def matching_nodes(ray: Any, selector: NodeSelector) -> list[dict[str, Any]]:
    """Alive nodes that match, or one line listing what the cluster has."""
    alive = [n for n in ray.nodes() if n.get("Alive")]
    found = [n for n in alive if selector.matches(n)]
    if not found:
        resources = sorted({k for n in alive for k in (n.get("Resources") or {})
                            if not k.startswith("node:") and k not in ("memory", "object_store_memory")})
        labels = sorted({f"{k}={v}" for n in alive for k, v in (n.get("Labels") or {}).items()
                         if not k.startswith("ray.io/")})
        raise ResdeployError(f"--nodes {selector} matches none of the cluster's {len(alive)} node(s)",
                             hint=f"resources: {', '.join(resources) or 'none'}; labels: {', '.join(labels) or 'none'}")
    return found


def _model_files(model: str) -> tuple[str, dict[str, bytes]] | None:
    """(name to give it on the node, files) of a model path; None for a zoo name (built on the node)."""
    p = Path(model)
    if not p.exists():
        return None
    if p.is_dir():
        return p.name, {f.name: f.read_bytes() for f in sorted(p.iterdir()) if f.is_file()}
    files = {p.name: p.read_bytes()}
    manifest = p.parent / "manifest.json"
    if manifest.is_file():
        files["manifest.json"] = manifest.read_bytes()
    return p.parent.name + "/" + p.name, files


def _bench_on_node(cfg: Any, shipped: tuple[str, dict[str, bytes]] | None, node: dict[str, Any]) -> dict[str, Any]:
    """Runs on the node: write the model's files to a temporary folder, bench, name the node."""
    import dataclasses
    import json

    from resdeploy.artifacts import to_json
    from resdeploy.benchmark import bench

    original = cfg.model
    with tempfile.TemporaryDirectory(prefix="resdeploy-fleet-") as tmp:
        if shipped is not None:
            name, files = shipped
            folder = Path(tmp) / Path(name).parent if "/" in name else Path(tmp) / name
            folder.mkdir(parents=True, exist_ok=True)
            for fname, data in files.items():
                (folder / fname).write_bytes(data)
            cfg = dataclasses.replace(cfg, model=str(Path(tmp) / name))
        result = json.loads(to_json(bench(cfg).to_dict()))
    # The result names the model as the user did, not the node's temporary copy.
    result["config"]["model"] = original
    for run in result["runs"]:
        run["model"] = original
    result["node"] = node
    return result


@dataclass
class FleetResult:
    """One bench result per node, each with that node's machine fingerprint."""

    selector: str
    results: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        from resdeploy.artifacts import utc_now
        from resdeploy.reporting import FLEET_SCHEMA

        return {"schema": FLEET_SCHEMA, "created": utc_now(), "selector": self.selector, "results": self.results}

    def save(self, path: str | os.PathLike[str], *, force: bool = False) -> Path:
        """Write the fleet JSON (``artifacts.commit_file``): an existing file is replaced only with ``force``."""
        from resdeploy.artifacts import atomic_write_json

        return atomic_write_json(path, self.to_dict(), force=force)


def fleet_bench(cfg: Any, nodes: str | None = None, *, address: str | None = None,
                reporter: Reporter = QUIET) -> FleetResult:
    """``resdeploy.bench(cfg)`` on each node matching ``nodes``; results in one ``FleetResult``."""
    from resdeploy.scale.cluster import ray_session

    cfg.validate()
    selector = parse_selector(nodes)
    shipped = _model_files(cfg.model)
    with ray_session(address) as ray:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        targets = matching_nodes(ray, selector)
        reporter.info(f"benchmarking on {len(targets)} node(s) matching {selector}")
        payload = ray.put(shipped)
        task = ray.remote(_bench_on_node)
        refs = {}
        for n in targets:
            desc = {"node_id": n["NodeID"], "host": n.get("NodeManagerHostname"), "address": n.get("NodeManagerAddress"),
                    "labels": {k: v for k, v in (n.get("Labels") or {}).items()},
                    "cpus": float((n.get("Resources") or {}).get("CPU", 0))}
            # All of the node's CPUs: nothing else is placed beside a benchmark.
            strategy = NodeAffinitySchedulingStrategy(node_id=n["NodeID"], soft=False)
            refs[task.options(num_cpus=desc["cpus"], scheduling_strategy=strategy).remote(cfg, payload, desc)] = desc
        results: dict[str, dict[str, Any]] = {}
        pending = list(refs)
        for _ in reporter.track(range(len(pending)), total=len(pending), description="fleet bench"):
            ready, pending = ray.wait(pending, num_returns=1)
            try:
                results[refs[ready[0]]["node_id"]] = ray.get(ready[0])
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if isinstance(getattr(exc, "cause", None), ResdeployError) else None
                if cause is not None:
                    raise cause from None
                raise
    order = [n["NodeID"] for n in targets]
    return FleetResult(selector=str(selector), results=[results[i] for i in order])


__all__ = ["FleetResult", "NodeSelector", "fleet_bench", "matching_nodes", "parse_selector"]
