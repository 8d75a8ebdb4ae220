"""Beyond one machine: validation over a Ray cluster, sweeps of many variants, fleet benchmarks.

Everything here is optional: Ray (``pip install 'resdeploy[ray]'``) is imported only
when one of these functions runs, so ``import resdeploy`` stays fast and every command
works in one process without it. Modules:

- ``cluster``: connecting to (or starting) a Ray cluster, with one-line errors.
- ``ray_validate``: ``validate`` with the data sharded over Ray Data actors.
- ``cache``: content-addressed artifacts, written atomically.
- ``sweep``: models x precisions x targets, export -> quantize -> validate -> bench.
- ``fleet``: the same ``bench`` on every node matching a selector.
"""

from __future__ import annotations

RAY_INSTALL = "pip install 'resdeploy[ray]'"

__all__ = ["RAY_INSTALL"]
