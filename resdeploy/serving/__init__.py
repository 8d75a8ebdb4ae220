"""Serving artifacts: a Triton model repository from a variant (``package_triton``).

The in-graph preprocessing that lets a server take decoded images lives in
``resdeploy.preprocess_graph``; this package only lays out what a server loads.
"""

from resdeploy.serving.package import PackageResult, TritonConfig, package_triton

__all__ = ["PackageResult", "TritonConfig", "package_triton"]
