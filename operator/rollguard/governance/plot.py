"""The calibration report's PNG panels: expected against observed avoided loss, and per policy
the false-rollback and missed-regression rates with their intervals.

matplotlib is optional (see ``rollguard.files.png``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rollguard.files.png import figure, png_bytes
from rollguard.governance.calibration import ImpactPoint, PolicyReading


def render_calibration_png(
    points: Sequence[ImpactPoint], readings: Sequence[PolicyReading]
) -> bytes:
    """Two panels: expected against observed avoided loss (the diagonal is a perfect
    expectation), and per policy the false-rollback and missed-regression rates with their 95%
    intervals."""
    fig = figure(width=11, height=4.2)
    left, right = fig.subplots(1, 2)
    if points:
        xs = [p.expected for p in points]
        ys = [p.observed for p in points]
        top = max(*xs, *ys, 1e-9) * 1.1
        left.plot(
            [0, top], [0, top], color="tab:gray", lw=0.8, ls="--", label="observed = expected"
        )
        left.plot(xs, ys, "o", color="tab:blue", label="decision")
        left.legend(loc="upper left", fontsize=8)
    left.set_xlabel("expected loss avoided (impact-hours)")
    left.set_ylabel("observed loss avoided (impact-hours)")
    left.set_title("expected against observed", fontsize=10)
    names = [r.policy for r in readings]
    at = np.arange(len(names), dtype=np.float64)
    for offset, label, colour, rates in (
        (-0.15, "false rollbacks", "tab:red", [r.false_rate for r in readings]),
        (0.15, "missed regressions", "tab:orange", [r.missed_rate for r in readings]),
    ):
        shown = [(i, r) for i, r in enumerate(rates) if r is not None]
        if not shown:
            continue
        right.errorbar(
            [at[i] + offset for i, _ in shown],
            [r.value for _, r in shown],
            yerr=[[r.value - r.low for _, r in shown], [r.high - r.value for _, r in shown]],
            fmt="o",
            color=colour,
            capsize=4,
            label=label,
        )
    right.set_xticks(at, names, fontsize=8, rotation=15)
    right.set_ylim(-0.02, 1.02)
    right.set_ylabel("rate (95% interval)")
    right.set_title("reviews, per policy", fontsize=10)
    right.legend(loc="upper right", fontsize=8)
    return png_bytes(fig)
