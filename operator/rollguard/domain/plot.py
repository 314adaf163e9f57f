"""PNG plots: one simulated seed (what the policy saw and what it did), and the calibration
report's panels.

matplotlib is an optional extra (``pip install 'rollguard[plot]'``), imported inside
``render_png`` only; without it ``PlotUnavailableError`` says so in one line. Renders to bytes with
matplotlib's object API (no pyplot, no global state); the CLI writes the file.

Panels: each signal's samples against its objective, objective + margin and critical; the
impact score against the trigger curve's minScore lines and clearBelow. Every panel shades
the ground-truth regression spans and marks the evaluations at which a trigger fired (solid:
executed, dashed: not executed; colour by action).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from rollguard.api.policy import EffectivePolicy
from rollguard.domain.calibration import ImpactPoint, PolicyReading
from rollguard.domain.severity import signal_limit
from rollguard.domain.simrun import ScenarioRun

_COLOURS = {"Rollback": "tab:red", "Pause": "tab:orange", "Hold": "tab:gray"}


class PlotUnavailableError(RuntimeError):
    """matplotlib is not installed."""


def _spans(active: np.ndarray[Any, Any], t: np.ndarray[Any, Any]) -> list[tuple[float, float]]:
    edges = np.diff(active.astype(np.int8), prepend=0, append=0)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    step = float(t[1] - t[0]) if t.size > 1 else 1.0
    return [(float(t[a]), float(t[b - 1]) + step) for a, b in zip(starts, ends, strict=True)]


def _figure_tools() -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 (optional)
        from matplotlib.figure import Figure  # noqa: PLC0415
    except ImportError as err:
        raise PlotUnavailableError("--png needs matplotlib: pip install 'rollguard[plot]'") from err
    return FigureCanvasAgg, Figure


def render_png(policy: EffectivePolicy, run: ScenarioRun, *, seed_label: str = "") -> bytes:
    """The plot of the first seed of ``run`` (which must keep its series) as PNG bytes."""
    FigureCanvasAgg, Figure = _figure_tools()  # noqa: N806 - classes
    if run.values is None or run.present is None:
        raise ValueError("render_png needs a run that kept its series (simulate.trace)")
    tl = run.timeline
    minutes = tl.sample_times / 60.0
    evals = tl.eval_times / 60.0
    signals = policy.signals
    fig = Figure(figsize=(11, 2.3 * (len(signals) + 1)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(signals) + 1, 1, sharex=True)
    spans = _spans(run.active[0].any(axis=0), minutes)
    fired = run.fired[:, 0]

    for s, (ax, signal) in enumerate(zip(axes[:-1], signals, strict=True)):
        present = run.present[0, s]
        ax.plot(
            minutes[present],
            run.values[0, s][present],
            ".",
            ms=2.5,
            color="tab:blue",
            label="samples",
        )
        ax.axhline(signal.objective.value, color="tab:green", lw=1, label="objective")
        ax.axhline(
            signal_limit(signal), color="tab:green", lw=1, ls="--", label="objective + margin"
        )
        ax.axhline(signal.critical, color="tab:red", lw=1, ls=":", label="critical")
        ax.set_ylabel(signal.name)
    score_ax = axes[-1]
    score_ax.plot(evals, run.score[:, 0], color="black", lw=1.2, label="score")
    score_ax.plot(
        evals,
        run.score_counterfactual[:, 0],
        color="black",
        lw=0.8,
        ls=":",
        label="score without acting",
    )
    for point in policy.triggers:
        score_ax.axhline(
            point.min_score,
            color=_COLOURS[point.action],
            lw=0.8,
            ls="--",
            label=f"{point.action} ≥{point.min_score:g} for {point.sustained_for}",
        )
    score_ax.axhline(policy.clear_below, color="tab:green", lw=0.8, ls=":", label="clearBelow")
    score_ax.set_ylim(-0.02, 1.02)
    score_ax.set_ylabel("impact score")
    score_ax.set_xlabel("minutes since start")

    for ax in axes:
        for a, b in spans:
            ax.axvspan(a, b, color="tab:red", alpha=0.08, lw=0)
        for j in np.flatnonzero(fired >= 0):
            action = policy.triggers[int(fired[j])].action
            ax.axvline(
                evals[j],
                color=_COLOURS[action],
                lw=1.0,
                ls="-" if run.executed[j, 0] else "--",
                alpha=0.8,
            )
        ax.legend(loc="upper left", fontsize=7, ncol=4, framealpha=0.7)
    fig.suptitle(
        f"{run.scenario.name}{seed_label}: shaded = regression in force; vertical "
        "lines = trigger fired (solid: executed)",
        fontsize=10,
    )
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=90, metadata={"Software": None})
    return out.getvalue()


def render_calibration_png(
    points: Sequence[ImpactPoint], readings: Sequence[PolicyReading]
) -> bytes:
    """Two panels: expected against observed avoided loss (the diagonal is a perfect
    expectation), and per policy the false-rollback and missed-regression rates with their 95%
    intervals."""
    FigureCanvasAgg, Figure = _figure_tools()  # noqa: N806 - classes
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
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
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=90, metadata={"Software": None})
    return out.getvalue()
