"""Shared test set-up: markers that skip where a dependency is absent, small helpers."""

from __future__ import annotations

import importlib.util
import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # pragma: no cover
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skips = {
        "gpu": (not _has_cuda(), "needs an NVIDIA GPU with CUDA (torch.cuda.is_available() is False)"),
        "trt": (not _has("tensorrt"), "needs TensorRT: the 'tensorrt' package does not import here"),
        "openvino": (not _has("openvino"), "needs the 'openvino' package"),
    }
    for item in items:
        for marker, (skip, reason) in skips.items():
            if skip and marker in item.keywords:
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
