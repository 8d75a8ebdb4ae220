"""resdeploy's accuracy budget against NNCF's ``quantize_with_accuracy_control``, side by side.

    .venv/bin/pip install -c constraints.txt ".[nncf]"   # nncf 3.4.0, optional, for this script only
    python benchmarks/nncf_accuracy_control.py [--workdir artifacts/planted] [--max-drop 0.5] [--target trt]
        [--method minmax] [--raw]

Both get the same FP32 ONNX (the planted-outlier digits ResNet-20 of
benchmarks/planted_case.py), the same 256 calibration images (seeded selection), the
same 359 held-out validation images and the same budget (top-1 drop in points; NNCF's
``max_drop`` is the same number as an absolute fraction). Printed for each: layers
(Conv/Gemm) left in FP32, the drop reached (measured here, in ONNX Runtime, on the
validation set), full validations run, and wall time. NNCF's ranking also calls the
validation function on subsets (per-sample metrics); those calls are counted apart.
The machine is shared: wall times are indicative.

``--raw`` gives resdeploy's quantizer without cross-layer equalization and bias correction
(``--no-equalize --no-bias-correction``): with ``--method minmax`` that is the planted
damage the budget search has to repair; resdeploy's defaults already keep the planted
model within the budget without reverting anything.
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


def _top1(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return float(np.mean(sess.run(None, {name: x})[0].argmax(1) == y))


def _fp32_layers(model: Any) -> int:
    """Conv/Gemm nodes that read no de-quantized input (run in float)."""
    from resdeploy.precision.revert import WEIGHTED_OPS, quantized_nodes

    quantized = {n.name for n in quantized_nodes(model)}
    return sum(1 for n in model.graph.node if n.op_type in WEIGHTED_OPS and n.name not in quantized)


def run_nncf(fp32: Path, train: Path, val: Path, max_drop: float) -> dict[str, Any]:
    import nncf  # optional dependency of this script only
    import onnx

    from resdeploy.artifacts import read_manifest
    from resdeploy.data import open_data
    from resdeploy.preprocess import PreprocessSpec

    spec = PreprocessSpec.from_dict((read_manifest(fp32 / "model.onnx") or {})["preprocess"])
    xc, _ = open_data(train, spec, samples=CALIB_SAMPLES, seed=0).load()
    xv, yv = open_data(val, spec).load()
    model = onnx.load(str(fp32 / "model.onnx"))
    name = model.graph.input[0].name
    calib = nncf.Dataset([xc[i:i + 1] for i in range(len(xc))], lambda x: {name: x})
    items = [(xv[i:i + 1], int(yv[i])) for i in range(len(xv))]
    val_ds = nncf.Dataset(items, lambda item: {name: item[0]})
    calls = {"full": 0, "subset": 0, "subset_samples": 0}

    def validation_fn(m: Any, data: Any) -> tuple[float, list[float]]:
        batch = list(data)
        x = np.concatenate([b[0] for b in batch])
        y = np.array([b[1] for b in batch])
        import onnxruntime as ort

        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        hits = (sess.run(None, {name: x})[0].argmax(1) == y).astype(float)
        if len(batch) == len(items):
            calls["full"] += 1
        else:
            calls["subset"] += 1
            calls["subset_samples"] += len(batch)
        return float(hits.mean()), hits.tolist()

    plain = nncf.quantize(model, calib, subset_size=CALIB_SAMPLES)
    t0 = time.perf_counter()
    q = nncf.quantize_with_accuracy_control(model, calib, val_ds, validation_fn, max_drop=max_drop / 100.0,
                                            drop_type=nncf.DropType.ABSOLUTE, subset_size=CALIB_SAMPLES)
    wall = time.perf_counter() - t0
    ref = _top1(model, xv, yv)
    return {"tool": "NNCF quantize_with_accuracy_control", "layers_fp32": _fp32_layers(q) - _fp32_layers(plain),
            "drop_points": 100 * (ref - _top1(q, xv, yv)), "full_validations": calls["full"],
            "other_validation_calls": f"{calls['subset']} calls on {calls['subset_samples']} samples",
            "wall_s": wall}


def run_resdeploy(fp32: Path, train: Path, val: Path, max_drop: float, target: str, method: str | None,
                  out: Path, raw: bool = False) -> dict[str, Any]:
    from resdeploy.precision import Budget, quantize

    t0 = time.perf_counter()
    try:
        res = quantize(fp32 / "model.onnx", precision="int8", target=target, method=method, calib_data=str(train),
                       calib_samples=CALIB_SAMPLES, output=str(out), force=True, equalize=not raw,
                       bias_correction=not raw,
                       budget=Budget(val_data=str(val), max_top1_drop=max_drop))
        manifest = res.manifest
    except Exception as exc:  # GateFailure: budget unmet, the closest variant was written
        if getattr(exc, "exit_code", None) != 1:
            raise
        manifest = exc.result.manifest  # type: ignore[attr-defined]
    wall = time.perf_counter() - t0
    b = manifest["quantization"]["accuracy_budget"]
    flags = " --no-equalize --no-bias-correction" if raw else ""
    return {"tool": f"resdeploy quantize --target {target} --method {manifest['calibration']['method']}{flags}",
            "layers_fp32": sum(1 for k in b["kept_fp32"] if not k["node"].startswith("node_add")),
            "drop_points": b["top1_drop_points"], "full_validations": b["full_validations"],
            "other_validation_calls": "0 (ranking runs on 64 calibration samples, no labels)", "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="artifacts/planted")
    ap.add_argument("--max-drop", type=float, default=0.5, help="top-1 drop budget in points")
    ap.add_argument("--target", default="trt", choices=["cpu", "trt"])
    ap.add_argument("--method", default=None, help="resdeploy's estimator (default: the target's)")
    ap.add_argument("--case", default="planted", choices=["planted", "plain"])
    ap.add_argument("--raw", action="store_true", help="resdeploy without equalization and bias correction")
    args = ap.parse_args()
    import planted_case

    paths = planted_case.build(Path(args.workdir))
    fp32 = paths[args.case]
    rows = [run_resdeploy(fp32, paths["train"], paths["val"], args.max_drop, args.target, args.method,
                          fp32.parent / f"int8-{args.target}-budget", raw=args.raw),
            run_nncf(fp32, paths["train"], paths["val"], args.max_drop)]
    print(f"budget: top-1 drop <= {args.max_drop} points on {args.case} ({paths['val']})")
    print("| tool | layers in FP32 | drop reached (points) | full validations | other validation calls | wall (s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['tool']} | {r['layers_fp32']} | {r['drop_points']:.2f} | {r['full_validations']} | "
              f"{r['other_validation_calls']} | {r['wall_s']:.1f} |")


if __name__ == "__main__":
    main()
