#!/usr/bin/env bash
# Issue 11's numbers for a CPU with AVX-512 VNNI or AMX, in one call (measured 2026-12-01 on an AVX-512 VNNI
# AMD EPYC: docs/precision.md, "Measured on an AVX-512 VNNI host"):
#   * ResNet-50 batch 1, INT8 against FP32 (target >= 3x), and the portable default's cost against
#     full 8-bit weights (target <= 5%): benchmarks/int8_cpu_speed.py, all variants interleaved;
#   * the digits ResNet-20's INT8 drop per variant (target <= 0.5 point for the default):
#     benchmarks/digits_cpu_variants.py, with its unfused-Q/DQ prediction beside each measurement.
#
#     OUT=/some/dir bash benchmarks/vnni_host_check.sh        # e.g. the device machine's $OUT
#
# Uses whatever python3 has resdeploy importable; otherwise installs this checkout with --no-deps
# (a machine without a network, such as the lent GPU machine, already has torch/onnx/onnxruntime).
# Results and the log go under $OUT (default benchmarks/results/vnni-check), the models (ResNet-50
# four times, ~400 MB) under $WORK (default a temporary folder); the table is printed last.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-benchmarks/results/vnni-check}
WORK=${WORK:-$(mktemp -d -t vnni-check-XXXXXX)}
mkdir -p "$OUT" "$WORK"
LOG="$OUT/vnni_host_check.log"
exec > >(tee "$LOG") 2>&1

echo "date: $(date -u +%FT%TZ)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') ($(nproc) logical CPUs)"
isa=$(grep -o -E 'avx512_vnni|amx_int8|avx_vnni|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')
echo "isa flags: ${isa:-none of avx2/avx_vnni/avx512_vnni/amx_int8}"
case "$isa" in
  *avx512_vnni*|*amx_int8*) ;;
  *) echo "note: this host has no AVX-512 VNNI/AMX, so these are not the VNNI numbers the issue wants" ;;
esac
if ! "$PY" -c 'import resdeploy' 2>/dev/null; then
  "$PY" -m pip install -q --no-deps -e . || { echo "cannot install resdeploy with $PY" >&2; exit 2; }
fi
"$PY" -c 'import onnxruntime, torch; print("onnxruntime", onnxruntime.__version__, "torch", torch.__version__)'

t0=$(date +%s)
"$PY" benchmarks/int8_cpu_speed.py --artifacts "$WORK/resnet50" --rounds "${ROUNDS:-15}" --iters "${ITERS:-20}" \
  --out "$OUT/int8_cpu_speed.json"
t1=$(date +%s)
"$PY" benchmarks/digits_cpu_variants.py "$WORK/digits" --out "$OUT/digits_cpu_variants.json"
t2=$(date +%s)

"$PY" - "$OUT" "$((t1 - t0))" "$((t2 - t1))" <<'EOF'
import json, sys
out = sys.argv[1]
speed = json.load(open(f"{out}/int8_cpu_speed.json"))
digits = json.load(open(f"{out}/digits_cpu_variants.json"))
v = speed["variants"]
default, full = v["int8 u8, 7-bit w (default)"], v["int8 u8, 8-bit w (--cpu vnni)"]
cost = 100 * (default["stats"]["p50_ms"] / full["stats"]["p50_ms"] - 1)
print(f"\n== {speed['cpu']}, flags {' '.join(speed['cpu_flags'])}, {speed['versions']}")
print(f"ResNet-50 batch 1 ({sys.argv[2]} s): {'variant':30s} {'p50 ms':>8s} {'vs FP32':>8s}")
for name, row in v.items():
    print(f"{'':30s}{name:30s} {row['stats']['p50_ms']:8.2f} {row['speedup_p50']:7.2f}x")
print(f"portable default against full 8-bit weights: {cost:+.1f}% p50 (target <= 5%)")
print(f"digits ResNet-20 ({sys.argv[3]} s), FP32 {digits['rows'][0]['fp32_top1']:.2f}%:")
print(f"  {'variant':78s} {'top-1':>7s} {'drop':>6s} {'unfused drop':>13s}")
for r in digits["rows"]:
    print(f"  {r['variant']:78s} {r['int8_top1']:6.2f}% {r['drop']:+6.2f} "
          f"{r['unfused_qdq_drop (predicts VNNI/AMX/ARM64)']:+13.2f}")
EOF
