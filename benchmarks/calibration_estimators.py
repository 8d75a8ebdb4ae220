"""Which calibration survives outliers: range estimators, equalization and bias correction against NNCF's plain quantize.

    python benchmarks/calibration_estimators.py [--workdir artifacts/planted] [--no-nncf]
        [--methods minmax,avgminmax,percentile,entropy] [--techniques none,eq,bc,eq+bc] [--targets cpu,trt]

On the digits ResNet-20 and its planted-outlier twin (benchmarks/planted_case.py), for
each target, estimator and technique (``none``: ``--no-equalize --no-bias-correction``,
the raw quantizer; ``eq``: cross-layer equalization only; ``bc``: bias correction only;
``eq+bc``: both, the default): `quantize` with 256 seeded training images, then top-1 on
the 359 held-out images (validate). NNCF's plain ``nncf.quantize`` (pip ``nncf``,
optional, this script only) gets the same FP32 ONNX and the same 256 images, and its
model runs in the same ONNX Runtime. Prints a Markdown table with top-1 and the logit SQNR
against FP32 on the held-out images (one image is 0.28 points of top-1; SQNR tells apart
what top-1 cannot).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

CALIB_SAMPLES = 256
PERCENTILE = 99.999  # quantize's default
TECHNIQUES = {"none": (False, False), "eq": (True, False), "bc": (False, True), "eq+bc": (True, True)}


def _logits(model: Any, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    data = model if isinstance(model, bytes) else Path(model).read_bytes()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + 64]})[0] for i in range(0, len(x), 64)])


def sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / max(np.sum((ref - got) ** 2.0), 1e-30)))


def val_tensors(fp32: Path, val: Path) -> tuple[np.ndarray, np.ndarray]:
    from resdeploy.artifacts import read_manifest
    from resdeploy.data import open_data
    from resdeploy.preprocess import PreprocessSpec

    spec = PreprocessSpec.from_dict((read_manifest(fp32 / "model.onnx") or {})["preprocess"])
    return open_data(val, spec).load()


def nncf_top1(fp32: Path, train: Path, val: Path) -> tuple[float, float]:
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
    got = sess.run(None, {name: xv})[0]
    return float(np.mean(got.argmax(1) == yv)), sqnr_db(_logits(fp32 / "model.onnx", xv), got)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="artifacts/planted")
    ap.add_argument("--no-nncf", action="store_true")
    ap.add_argument("--methods", default="minmax,avgminmax,percentile,entropy")
    ap.add_argument("--techniques", default="none,eq+bc", help=f"comma-separated, from {', '.join(TECHNIQUES)}")
    ap.add_argument("--targets", default="cpu,trt")
    ap.add_argument("--cases", default="plain,planted")
    args = ap.parse_args()
    import planted_case

    import resdeploy

    paths = planted_case.build(Path(args.workdir))
    rows = []
    for case in args.cases.split(","):
        fp32 = paths[case]
        ref = None
        xv, _ = val_tensors(fp32, paths["val"])
        ref_logits = _logits(fp32 / "model.onnx", xv)
        for target in args.targets.split(","):
            for method in args.methods.split(","):
                for tech in args.techniques.split(","):
                    eq, bc = TECHNIQUES[tech]
                    t0 = time.perf_counter()
                    out = fp32.parent / f"int8-{target}-{method}-{tech}"
                    q = resdeploy.quantize(fp32 / "model.onnx", precision="int8", target=target, method=method,
                                           percentile=PERCENTILE, calib_data=str(paths["train"]), equalize=eq,
                                           bias_correction=bc, calib_samples=CALIB_SAMPLES, output=str(out), force=True)
                    wall = time.perf_counter() - t0
                    r = resdeploy.validate(q.model_path, data=str(paths["val"]))
                    assert r.accuracy is not None
                    ref = r.accuracy["reference"]["top1"]
                    label = f"{method}{f' {PERCENTILE}' if method == 'percentile' else ''}"
                    db = sqnr_db(ref_logits, _logits(q.model_path, xv))
                    rows.append((case, target, label, tech, ref, r.accuracy["candidate"]["top1"], db, wall))
                    print(rows[-1], file=sys.stderr, flush=True)
        if not args.no_nncf:
            t0 = time.perf_counter()
            top1, db = nncf_top1(fp32, paths["train"], paths["val"])
            rows.append((case, "NNCF (its own Q/DQ)", "nncf.quantize defaults", "its own", ref or 0.0, top1, db,
                         time.perf_counter() - t0))
            print(rows[-1], file=sys.stderr, flush=True)
    print("| model | target | estimator | equalize / bias correction | FP32 top-1 | INT8 top-1 | drop (points) "
          "| logit SQNR (dB) | quantize wall (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case, target, label, tech, r, cand, db, wall in rows:
        print(f"| {case} | {target} | {label} | {tech} | {100 * r:.2f}% | {100 * cand:.2f}% | {100 * (r - cand):.2f} "
              f"| {db:.1f} | {wall:.1f} |")


if __name__ == "__main__":
    main()
