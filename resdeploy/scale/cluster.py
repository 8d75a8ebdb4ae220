"""Connecting to Ray: an existing cluster at ADDRESS, or a small local one started for one call.

Why a module of its own: every Ray entry point (validate, sweep, fleet bench) needs the
same three things, in the same way: Ray imported lazily with an install hint when it is
missing, an unreachable address refused in one line within seconds (Ray itself retries
for a minute and then prints a traceback), and the local cluster it started shut down
again, whatever happened, so no Ray processes outlive the command.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any

from resdeploy.errors import MissingDependencyError, ResdeployError
from resdeploy.scale import RAY_INSTALL

# A local cluster's shared-memory object store. Ray's default is 30% of RAM; resdeploy moves
# small things through it (sample lists, logits), so a few hundred MB is plenty and leaves the
# memory to the models. RESDEPLOY_RAY_OBJECT_STORE_MB overrides it.
DEFAULT_OBJECT_STORE_MB = 300
LOCAL = ("", "local")
_CONNECT_TIMEOUT_S = 3.0


def require_ray() -> Any:
    """``import ray``, or one line naming the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError("Ray (needed by --ray)", RAY_INSTALL) from exc
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of ``host:port`` or ``ray://host:port``; None for 'auto' and other forms Ray resolves."""
    text = address.removeprefix("ray://")
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def check_reachable(address: str) -> None:
    """Refuse an address nothing listens on, in seconds and in one line."""
    hp = _host_port(address)
    if hp is None:
        return
    try:
        with socket.create_connection(hp, timeout=_CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ResdeployError(f"cannot reach a Ray cluster at {address}: {exc.strerror or exc}",
                             hint="start one with `ray start --head`, or drop the address to run on a local Ray") from None


@contextlib.contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[Any]:
    """Ray, connected for the duration of the block.

    ``address`` None/'local': start a local cluster for this call (``num_cpus`` of this
    machine) and shut it down afterwards; 'auto', ``host:port`` or ``ray://host:port``:
    connect to a running cluster (and only disconnect afterwards). When the caller has
    already called ``ray.init`` (a notebook, the tests), that connection is used and kept.
    """
    ray = require_ray()
    if address is not None and address not in LOCAL:
        check_reachable(address)
    if ray.is_initialized():
        yield ray
        return
    common: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING", "log_to_driver": False,
                              "configure_logging": True}
    try:
        if address is None or address in LOCAL:
            store_mb = int(os.environ.get("RESDEPLOY_RAY_OBJECT_STORE_MB", DEFAULT_OBJECT_STORE_MB))
            ray.init(num_cpus=num_cpus, object_store_memory=store_mb * 1024 * 1024, **common)
        else:
            ray.init(address=address, **common)
    except ResdeployError:
        raise
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        with contextlib.suppress(Exception):
            ray.shutdown()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ResdeployError(f"cannot connect to Ray at {address or 'a new local cluster'}: {first}",
                             hint="check the address (`ray status` on the head node)") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def quiet_ray_data(ray: Any) -> None:
    """Ray Data's own progress bars and per-operator logs would interleave with ours on stderr."""
    import logging

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # failures still arrive as exceptions
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False
    if hasattr(ctx, "enable_operator_progress_bars"):
        ctx.enable_operator_progress_bars = False
