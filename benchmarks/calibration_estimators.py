"""Which activation-range estimator survives outliers: resdeploy's estimators against NNCF's plain quantize.

    python benchmarks/calibration_estimators.py [--workdir artifacts/planted] [--no-nncf]

On the digits ResNet-20 and its planted-outlier twin (benchmarks/planted_case.py), for
each target and each estimator: `quantize` with 256 seeded training images, then
top-1 on the 359 held-out images (validate). NNCF's plain ``nncf.quantize`` (pip
``nncf``, optional) gets the same FP32 ONNX and the same 256 images, and its model runs
in the same ONNX Runtime. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

CALIB_SAMPLES = 256
METHODS = [("minmax", None), ("avgminmax", None), ("percentile", 99.99), ("entropy", None)]
TARGETS = [("cpu", False), ("cpu", True), ("trt", False)]


def nncf_top1(fp32: Path, train: Path, val: Path) -> float:
    import nncf  # optional: this script only
    import numpy as np
    import onnx
    import onnxruntime as ort

    from resdeploy.artifacts import read_manifest
    from resdeploy.data import open_data
    from resdeploy.preprocess import PreprocessSpec

    spec = PreprocessSpec.from_dict((read_manifest(fp32 / "model.onnx") or {})["preprocess"])
    xc, _ = open_data(train, spec, samples=CALIB_SAMPLES, seed=0).load()
    xv, yv = open_data(val, spec).load()
    model = onnx.load(str(fp32 / "model.onnx"))
    name = model.graph.input[0].name
    q = nncf.quantize(model, nncf.Dataset([xc[i:i + 1] for i in range(len(xc))], lambda x: {name: x}),
                      subset_size=CALIB_SAMPLES)
    sess = ort.InferenceSession(q.SerializeToString(), providers=["CPUExecutionProvider"])
    return float(np.mean(sess.run(None, {name: xv})[0].argmax(1) == yv))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="artifacts/planted")
    ap.add_argument("--no-nncf", action="store_true")
    args = ap.parse_args()
    import planted_case

    import resdeploy

    paths = planted_case.build(Path(args.workdir))
    rows = []
    for case in ("plain", "planted"):
        fp32 = paths[case]
        for target, rr in TARGETS:
            for method, pct in METHODS:
                t0 = time.perf_counter()
                out = fp32.parent / f"int8-{target}{'-rr' if rr else ''}-{method}"
                q = resdeploy.quantize(fp32 / "model.onnx", precision="int8", target=target, reduce_range=rr,
                                       method=method, percentile=pct or 99.999, calib_data=str(paths["train"]),
                                       calib_samples=CALIB_SAMPLES, output=str(out), force=True)
                r = resdeploy.validate(q.model_path, data=str(paths["val"]))
                assert r.accuracy is not None
                label = f"{method}{f' {pct}' if pct else ''}"
                rows.append((case, f"{target}{' --reduce-range' if rr else ''}", label,
                             r.accuracy["reference"]["top1"], r.accuracy["candidate"]["top1"], time.perf_counter() - t0))
                print(rows[-1], file=sys.stderr, flush=True)
        if not args.no_nncf:
            t0 = time.perf_counter()
            top1 = nncf_top1(fp32, paths["train"], paths["val"])
            rows.append((case, "NNCF (its own Q/DQ)", "nncf.quantize defaults", rows[-1][3], top1, time.perf_counter() - t0))
    print("| model | target | estimator | FP32 top-1 | INT8 top-1 | drop (points) |")
    print("|---|---|---|---|---|---|")
    for case, target, label, ref, cand, _ in rows:
        print(f"| {case} | {target} | {label} | {100 * ref:.2f}% | {100 * cand:.2f}% | {100 * (ref - cand):.2f} |")


if __name__ == "__main__":
    main()
