"""How to read ``quantize``'s quick FP32-vs-variant check: good, fair or poor.

The check runs a few samples only, so it is no accuracy gate (``validate`` is); but a
variant that disagrees with FP32 on many of them is worth a warning before anyone ships
it, and the table colours the line by the same verdict.
"""

from __future__ import annotations

from typing import Any

GOOD_AGREEMENT = 0.95  # top-1 agreement at or above: good (with GOOD_COSINE)
GOOD_COSINE = 0.99
POOR_AGREEMENT = 0.85  # below: poor
POOR_COSINE = 0.95


def check_verdict(check: dict[str, Any]) -> str:
    """good | fair | poor for a manifest's ``check`` entry (top1_agreement, cosine_min)."""
    agree = float(check.get("top1_agreement", 0.0))
    cosine = float(check.get("cosine_min", 0.0))
    if agree < POOR_AGREEMENT or cosine < POOR_COSINE:
        return "poor"
    if agree >= GOOD_AGREEMENT and cosine >= GOOD_COSINE:
        return "good"
    return "fair"


def check_warning(check: dict[str, Any], host_note: str | None = None) -> str | None:
    """The warning ``quantize`` prints for a poor check (None when the check is fair or good)."""
    if check_verdict(check) != "poor":
        return None
    data = check.get("data", "")
    why = (" (synthetic noise inputs say little about real images: pass --calib-data)" if data == "synthetic"
           else "; try --method entropy or percentile, or --exclude the first/last layers, then `resdeploy validate`")
    text = (f"the variant agrees poorly with FP32 on the quick check: top-1 agreement "
            f"{float(check.get('top1_agreement', 0.0)):.3f}, min cosine {float(check.get('cosine_min', 0.0)):.4f} "
            f"on {check.get('samples')} samples{why}")
    return f"{text}; {host_note}" if host_note else text
