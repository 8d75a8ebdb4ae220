"""Digits ResNet-20: FP32 against INT8 variants per CPU kind, with the defaults and with the raw quantizer.

    python benchmarks/digits_cpu_variants.py [WORKDIR] [--out benchmarks/results/digits_cpu_variants.json]

The model and data are the CI accuracy test's (``benchmarks/planted_case.py`` builds them:
scikit-learn's digits as PNGs, ResNet-20 trained with ``resdeploy.training``). Each variant is
made by ``resdeploy.quantize`` from 256 seeded training images and gated by
``resdeploy.validate`` on the held-out images, so the numbers are the ones a user gets from
the CLI. The host's instruction set decides what full 8-bit weights (``--cpu vnni``) score under
ONNX Runtime: on AVX2 without VNNI they saturate; the default (``--cpu portable``) must not.

Each variant is also run with ``ORT_DISABLE_ALL``: the Q/DQ graph as written, DequantizeLinear then
an FP32 Conv, no integer kernel. That is the arithmetic a CPU without the int16 pair sums computes
exactly in integers (VNNI, AMX, ARM64), so the column predicts those hosts from this one; it is a
prediction, not a measurement on such a host, and is labelled so in the JSON.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

VARIANTS: dict[str, dict[str, Any]] = {
    "int8 --target cpu (defaults: --cpu portable)": {"target": "cpu"},
    "int8 --target cpu --cpu vnni (full 8-bit weights)": {"target": "cpu", "cpu": "vnni"},
    "int8 --target trt (defaults)": {"target": "trt"},
    "int8 --target cpu, raw (--method minmax --no-equalize --no-bias-correction)":
        {"target": "cpu", "method": "minmax", "equalize": False, "bias_correction": False},
    "int8 --target cpu --cpu vnni, raw": {"target": "cpu", "cpu": "vnni", "method": "minmax", "equalize": False,
                                          "bias_correction": False},
    "int8 --target trt, raw": {"target": "trt", "method": "minmax", "equalize": False, "bias_correction": False},
}


def _top1(model: Path, inputs: Any, labels: Any, *, fused: bool) -> float:
    """Top-1 of one graph under ONNX Runtime, with its fusions (the int8 kernels) or without (exact Q/DQ)."""
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if fused
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    sess = ort.InferenceSession(str(model), sess_options=so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    preds = np.concatenate([sess.run(None, {name: inputs[i:i + 64]})[0].argmax(1) for i in range(0, len(inputs), 64)])
    return 100.0 * float((preds == labels).mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdir", nargs="?", default=None, help="reused between runs (default: a temporary folder)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "digits_cpu_variants.json"))
    args = ap.parse_args()

    import planted_case

    import resdeploy
    from resdeploy.artifacts import atomic_write_json, package_versions, read_manifest, utc_now
    from resdeploy.data import open_data
    from resdeploy.machine import cpu_flags
    from resdeploy.precision.isa import host_kind
    from resdeploy.preprocess import PreprocessSpec
    from resdeploy.validation import model_file

    work = Path(args.workdir or tempfile.mkdtemp(prefix="digits-variants-"))
    paths = planted_case.build(work)
    fp32 = paths["plain"]
    manifest = read_manifest(fp32, required=True) or {}
    inputs, labels = open_data(str(paths["val"]), PreprocessSpec.from_dict(manifest["preprocess"])).load()
    fp32_exact = _top1(model_file(Path(fp32), "ort", role="reference"), inputs, labels, fused=False)
    rows: list[dict[str, Any]] = []
    for i, (name, kw) in enumerate(VARIANTS.items()):
        out = work / "variants" / f"v{i}"
        if not (out / "model.onnx").exists():
            resdeploy.quantize(fp32, precision="int8", calib_data=str(paths["train"]), calib_samples=256,
                               output=str(out), force=True, **kw)
        r = resdeploy.validate(out / "model.onnx", data=str(paths["val"]), max_top1_drop=100.0)
        acc = r.accuracy or {}
        rows.append({"variant": name, "settings": kw, "fp32_top1": 100 * acc["reference"]["top1"],
                     "int8_top1": 100 * acc["candidate"]["top1"],
                     "drop": 100 * (acc["reference"]["top1"] - acc["candidate"]["top1"]),
                     "agreement": 100 * r.parity["top1_agreement"], "samples": r.samples})
        exact = _top1(out / "model.onnx", inputs, labels, fused=False)
        rows[-1].update({"int8_top1_fused_here": _top1(out / "model.onnx", inputs, labels, fused=True),
                         "unfused_qdq_top1 (predicts VNNI/AMX/ARM64)": exact,
                         "unfused_qdq_drop (predicts VNNI/AMX/ARM64)": fp32_exact - exact})
        print(f"{name:78s} {rows[-1]['int8_top1']:6.2f}%  drop {rows[-1]['drop']:+.2f}  "
              f"agreement {rows[-1]['agreement']:6.2f}%  unfused Q/DQ {exact:6.2f}% (drop {fp32_exact - exact:+.2f})",
              flush=True)
    flags = cpu_flags()
    atomic_write_json(Path(args.out), {
        "schema": "resdeploy.digits-cpu-variants/1", "created": utc_now(), "host_kind": host_kind(),
        "cpu_flags": flags, "versions": package_versions(["onnxruntime", "onnx", "torch", "numpy"]),
        "fp32_top1_unfused": fp32_exact,
        # the PyTorch kernels that trained the network (AVX2 on every x86 host: planted_case pins them)
        "train_cpu_kernels": ((read_manifest(paths["trained"]) or {}).get("train") or {}).get("cpu_kernels"),
        "unfused_note": "unfused_qdq_* columns: ORT_DISABLE_ALL on this host, i.e. DequantizeLinear + FP32 Conv; "
                        "a prediction of CPUs whose int8 kernels accumulate in int32 (VNNI, AMX, ARM64), "
                        "not a measurement on one",
        "rows": rows},
        force=True)
    print(f"\nhost: {host_kind()} ({', '.join(flags) or 'no flags read'}); FP32 top-1 {rows[0]['fp32_top1']:.2f}% "
          f"on {rows[0]['samples']} held-out images; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
