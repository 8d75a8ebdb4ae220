"""Shared test set-up: markers that skip where a dependency is absent, small helpers."""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from resdeploy.training import pin_portable_cpu_kernels

os.environ.setdefault("OMP_NUM_THREADS", "2")
# One trained network on every CI host: AVX2-only and AVX-512 VNNI hosts trained different digits
# models from the same seed, and the accuracy tests' margins belong to one network.
pin_portable_cpu_kernels()


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _has_tensorrt() -> bool:
    # tensorrt-stubs installs a tensorrt/ folder of .pyi files that imports as an empty
    # namespace package, so find_spec alone would say yes: ask the loader that checks.
    from resdeploy.trt.loader import tensorrt_status

    return bool(tensorrt_status()["available"])


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # pragma: no cover
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skips = {
        "gpu": (not _has_cuda(), "needs an NVIDIA GPU with CUDA (torch.cuda.is_available() is False)"),
        "trt": (not _has_tensorrt(), "needs TensorRT: the 'tensorrt' package does not import here"),
        "openvino": (not _has("openvino"), "needs the 'openvino' package"),
    }
    for item in items:
        for marker, (skip, reason) in skips.items():
            # get_closest_marker, not `in item.keywords`: keywords also hold directory and file
            # names, so every test under tests/trt/ would count as marked `trt`.
            if skip and item.get_closest_marker(marker) is not None:
                item.add_marker(pytest.mark.skip(reason=reason))


def run_cli(*args: str) -> tuple[int, str, str]:
    """Run the CLI in-process and return (exit code, stdout, stderr)."""
    import contextlib
    import io

    from resdeploy.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return code, out.getvalue(), err.getvalue()


def one_line_error(code: int, out: str, err: str, *words: str) -> None:
    """Bad input's contract: exit 2, no traceback, one `error:` line that says each of ``words``."""
    assert code == 2, (out, err)
    assert "Traceback" not in err + out
    assert len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 1, err
    for word in words:
        assert word in " ".join(err.split()), err


def uint8_pixel_net():  # noqa: ANN201 - a torch module; torch is imported lazily
    """A seeded classifier (3 channels -> 5 logits) that takes uint8 pixels and normalises them in the graph."""
    import torch

    class PixelNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.fc = torch.nn.Linear(8, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.relu(self.conv((x.float() - 127.5) / 64.0)).mean(dim=(2, 3)))

    torch.manual_seed(0)
    return PixelNet().eval()


def nhwc_wrapper(inner):  # noqa: ANN001, ANN201 - torch modules; torch is imported lazily
    """What a Keras export looks like from outside: channels-last input, the same network ``inner`` inside."""
    import torch

    class NHWC(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x.permute(0, 3, 1, 2))

    return NHWC(inner).eval()


def _tiny_net():  # noqa: ANN202 - a torch module; torch is imported lazily
    """The seeded tiny conv net (3x32x32 -> 10 logits) behind ``tiny_onnx`` and ``tiny_artifact``."""
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 10),
    ).eval()


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - (path, torch module)
    """A tiny conv net exported with torch.onnx.export: input "input" [batch,3,32,32], output "logits" [batch,10].

    Returns (model.onnx path, the eval-mode torch module it came from) so tests can check
    engines' outputs against PyTorch. Exported once per session (about a second).
    """
    import torch

    net = _tiny_net()
    path = tmp_path_factory.mktemp("tiny") / "model.onnx"
    import warnings

    with warnings.catch_warnings():  # the legacy exporter's deprecation notice; it is the fast one
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (torch.randn(1, 3, 32, 32),), str(path), input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          dynamo=False)
    return path, net


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - Path of an artifact directory
    """``tiny_onnx``'s net as an opset-18 artifact directory with a manifest (preprocess 37 -> 32, 10 named classes).

    What in-graph preprocessing and serving tests need (Resize with antialias and CenterCropPad
    are opset 18), exported in about a second rather than a zoo export's half minute.
    """
    import warnings

    import torch

    from resdeploy import artifacts
    from resdeploy.preprocess import PreprocessSpec

    net = _tiny_net()
    out = tmp_path_factory.mktemp("tinyart") / "tinynet" / "fp32"
    out.mkdir(parents=True)
    path = out / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (torch.randn(1, 3, 32, 32),), str(path), input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=18, dynamo=False)
    artifacts.write_manifest(out, {
        "stage": "export", "precision": "fp32",
        "model": {"name": "tinynet", "classes": [f"class {i}" for i in range(10)]},
        "artifact": {"file": "model.onnx", "sha256": artifacts.sha256_file(path), "bytes": path.stat().st_size},
        "preprocess": PreprocessSpec(resize=37, crop=32).to_dict(),
    })
    return out
# --- Ray (tests/scale) --------------------------------------------------------------------------
# One real local Ray for the whole session: two nodes of one CPU each (ray.cluster_utils.Cluster),
# so the fleet benchmark has nodes to select from; two CPUs in all, as on this machine. Started on
# first use (only the Ray tests pay for it), shut down at the end of the session; the teardown
# checks with psutil that no Ray process of ours is left.
_RAY_STORE = 150 * 1024 * 1024  # per node: small objects only (shard lists, logits)


def _ray_processes() -> list[Any]:
    import psutil

    me = psutil.Process()
    found = []
    for p in me.children(recursive=True):
        try:
            text = " ".join(p.cmdline()) + " " + p.name()
        except (psutil.Error, OSError):
            continue
        if "ray" in text or "raylet" in text or "gcs_server" in text:
            found.append(p)
    return found


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """(ray, cluster): the driver connected to a two-node local cluster; node 2 has resource 'fleet'."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": _RAY_STORE, "include_dashboard": False,
        "labels": {"role": "head"}})
    cluster.add_node(num_cpus=1, object_store_memory=_RAY_STORE, resources={"fleet": 1}, labels={"role": "bench"})
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    cluster.wait_for_nodes()
    try:
        yield ray, cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        deadline = time.monotonic() + 20
        while _ray_processes() and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _ray_processes()
        for p in left:  # never leave them running, even when the check below fails
            p.kill()
        assert not left, f"Ray processes left after shutdown: {[p.pid for p in left]}"
