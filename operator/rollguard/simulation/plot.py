"""The PNG plot of one simulated seed: what the policy saw and what it did.

matplotlib is optional (see ``rollguard.files.png``).

Panels: each signal's samples against its objective, objective + margin and critical; the
impact score against the trigger curve's minScore lines and clearBelow. Every panel shades
the ground-truth regression spans and marks the evaluations at which a trigger fired (solid:
executed, dashed: not executed; colour by action).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rollguard.api.policy import EffectivePolicy
from rollguard.core.severity import signal_limit
from rollguard.files.png import figure, png_bytes
from rollguard.simulation.scenario_run import ScenarioRun

_COLOURS = {"Rollback": "tab:red", "Pause": "tab:orange", "Hold": "tab:gray"}


def _spans(active: np.ndarray[Any, Any], t: np.ndarray[Any, Any]) -> list[tuple[float, float]]:
    edges = np.diff(active.astype(np.int8), prepend=0, append=0)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    step = float(t[1] - t[0]) if t.size > 1 else 1.0
    return [(float(t[a]), float(t[b - 1]) + step) for a, b in zip(starts, ends, strict=True)]


def render_png(policy: EffectivePolicy, run: ScenarioRun, *, seed_label: str = "") -> bytes:
    """The plot of the first seed of ``run`` (which must keep its series) as PNG bytes."""
    if run.values is None or run.present is None:
        raise ValueError("render_png needs a run that kept its series (simulate.trace)")
    tl = run.timeline
    minutes = tl.sample_times / 60.0
    evals = tl.eval_times / 60.0
    signals = policy.signals
    fig = figure(width=11, height=2.3 * (len(signals) + 1))
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
    return png_bytes(fig)
