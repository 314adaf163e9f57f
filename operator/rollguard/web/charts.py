"""Inline SVG charts of a decision's evidence. PURE: numbers in, SVG text out, nothing loaded
from anywhere; every text escaped. Called by ``rollguard.web.decision_page``.

- ``signal_chart``: the recorded samples of one signal against its objective, its limit
  (objective adjusted by the margin, as ``core.severity`` computes it: the caller passes it)
  and its critical value.
- ``score_chart``: the threshold curve (each point fires once the score has stayed at or
  above minScore for sustainedFor) and where the decision's score and dwell time lay.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 560, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 96, 16, 36  # plot margins, in px

COLOURS = {
    "samples": "#1f4e79",
    "objective": "#2e7d32",
    "limit": "#ef6c00",
    "critical": "#c62828",
    "zone": "#e8f5e9",
    "score": "#6a1b9a",
    "fires": "#fdecea",
    "grid": "#dddddd",
    "text": "#333333",
}


def num(value: float) -> str:
    """A number as the pages show it: four significant digits."""
    return f"{value:.4g}"


@dataclass(frozen=True)
class _Scale:
    """Maps data to pixels inside the plot area."""

    x0: float
    x1: float
    y0: float
    y1: float

    def x(self, value: float) -> float:
        span = self.x1 - self.x0 or 1.0
        return LEFT + (value - self.x0) / span * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        span = self.y1 - self.y0 or 1.0
        return HEIGHT - BOTTOM - (value - self.y0) / span * (HEIGHT - TOP - BOTTOM)


def _padded(low: float, high: float) -> tuple[float, float]:
    pad = (high - low) * 0.08 or abs(high) * 0.1 or 1.0
    return low - pad, high + pad


def _svg(label: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title>' + "".join(body) + "</svg>"
    )


def _frame(scale: _Scale, x_label: str) -> list[str]:
    """The plot's box, the y axis's two end values and the x axis's label."""
    c = COLOURS
    return [
        f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
        f'height="{HEIGHT - TOP - BOTTOM}" fill="none" stroke="{c["grid"]}"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end" font-size="11" '
        f'fill="{c["text"]}">{escape(num(scale.y1))}</text>',
        f'<text x="{LEFT - 6}" y="{HEIGHT - BOTTOM}" text-anchor="end" font-size="11" '
        f'fill="{c["text"]}">{escape(num(scale.y0))}</text>',
        f'<text x="{(WIDTH - RIGHT + LEFT) / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle" '
        f'font-size="11" fill="{c["text"]}">{escape(x_label)}</text>',
    ]


def spread(positions: Sequence[float], gap: float) -> list[float]:
    """Label positions moved apart to at least ``gap`` from each other, in the input's order,
    each as near its own position as the others allow."""
    order = sorted(range(len(positions)), key=lambda i: positions[i])
    placed = [0.0] * len(positions)
    previous = -math.inf
    for i in order:
        placed[i] = max(positions[i], previous + gap)
        previous = placed[i]
    return placed


def _hline(
    scale: _Scale, value: float, colour: str, label: str, *, dash: str, label_y: float
) -> list[str]:
    y = scale.y(value)
    dashing = f' stroke-dasharray="{dash}"' if dash else ""
    return [
        f'<line class="{escape(label.split(maxsplit=1)[0])}" x1="{LEFT}" x2="{WIDTH - RIGHT}" '
        f'y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}" stroke-width="1.5"{dashing}/>',
        f'<text x="{WIDTH - RIGHT + 4}" y="{label_y + 4:.1f}" font-size="11" '
        f'fill="{colour}">{escape(label)}</text>',
    ]


def signal_chart(
    *,
    name: str,
    timestamps: Sequence[float],
    values: Sequence[float],
    objective: float,
    limit: float,
    critical: float,
    end: float | None = None,
) -> str:
    """The samples of one signal (x: seconds before ``end``, default the last sample) drawn
    against its objective, limit and critical value; the tolerated zone shaded."""
    c = COLOURS
    levels = [objective, limit, critical]
    low, high = _padded(min([*values, *levels]), max([*values, *levels]))
    last = end if end is not None else (max(timestamps) if timestamps else 0.0)
    first = min(timestamps) if timestamps else last - 1.0
    scale = _Scale(first - last, 0.0, low, high)
    label = f"{name}: {len(values)} samples against objective {num(objective)}, limit {num(limit)}, critical {num(critical)}"
    zone_top, zone_bottom = sorted((scale.y(objective), scale.y(limit)))
    at = spread([scale.y(level) for level in levels], 12.0)
    body = [
        f'<rect x="{LEFT}" y="{zone_top:.1f}" width="{WIDTH - LEFT - RIGHT}" '
        f'height="{max(zone_bottom - zone_top, 0.5):.1f}" fill="{c["zone"]}"/>',
        *_frame(
            scale, f"seconds before {'the evaluation' if end is not None else 'the last sample'}"
        ),
        *_hline(
            scale,
            objective,
            c["objective"],
            f"objective {num(objective)}",
            dash="6 3",
            label_y=at[0],
        ),
        *_hline(scale, limit, c["limit"], f"limit {num(limit)}", dash="", label_y=at[1]),
        *_hline(
            scale, critical, c["critical"], f"critical {num(critical)}", dash="2 2", label_y=at[2]
        ),
        f'<text x="{LEFT}" y="{HEIGHT - 8}" font-size="11" fill="{c["text"]}">'
        f"{escape(num(first - last))} s</text>",
    ]
    if values:
        points = " ".join(
            f"{scale.x(t - last):.1f},{scale.y(v):.1f}"
            for t, v in zip(timestamps, values, strict=True)
        )
        body.append(
            f'<polyline class="samples" points="{points}" fill="none" '
            f'stroke="{c["samples"]}" stroke-width="1.5"/>'
        )
        body += [
            f'<circle cx="{scale.x(t - last):.1f}" cy="{scale.y(v):.1f}" r="1.8" fill="{c["samples"]}"/>'
            for t, v in zip(timestamps, values, strict=True)
        ]
    else:
        body.append(
            f'<text x="{(WIDTH - RIGHT + LEFT) / 2:.1f}" y="{HEIGHT / 2:.1f}" '
            f'text-anchor="middle" font-size="13" fill="{c["text"]}">no samples recorded</text>'
        )
    return _svg(label, body)


@dataclass(frozen=True)
class CurvePoint:
    """A point of the threshold curve, its dwell time in seconds."""

    action: str
    min_score: float
    sustained_seconds: float


def score_chart(
    *,
    points: Sequence[CurvePoint],
    score: float,
    sustained_seconds: float,
    fired: int | None,
) -> str:
    """The threshold curve (x: seconds the score stayed at or above a point's minScore, y:
    score in [0, 1]); the region where each point fires shaded; the decision's score and dwell
    time as a dot; the point that fired (index ``fired``) outlined."""
    c = COLOURS
    longest = max([p.sustained_seconds for p in points] + [sustained_seconds, 1.0])
    scale = _Scale(0.0, longest * 1.25, 0.0, 1.0)
    label = (
        f"score {num(score)} held {num(sustained_seconds)} s against a threshold curve of "
        f"{len(points)} point(s)"
    )
    body = _frame(scale, "seconds the score stayed at or above minScore")
    for i, p in enumerate(points):
        x, y = scale.x(p.sustained_seconds), scale.y(p.min_score)
        stroke = f' stroke="{c["critical"]}" stroke-width="2"' if i == fired else ""
        body.append(
            f'<rect class="fires" x="{x:.1f}" y="{scale.y(1.0):.1f}" '
            f'width="{WIDTH - RIGHT - x:.1f}" height="{y - scale.y(1.0):.1f}" '
            f'fill="{c["fires"]}" fill-opacity="0.6"{stroke}/>'
        )
    for p in points:
        x, y = scale.x(p.sustained_seconds), scale.y(p.min_score)
        body += [
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{c["critical"]}"/>',
            f'<text x="{x + 6:.1f}" y="{y + 14:.1f}" font-size="11" fill="{c["critical"]}">'
            f"{escape(p.action)} ≥ {escape(num(p.min_score))} for {escape(num(p.sustained_seconds))} s"
            "</text>",
        ]
    sx, sy = scale.x(min(sustained_seconds, scale.x1)), scale.y(max(0.0, min(score, 1.0)))
    left_half = sx < (LEFT + WIDTH - RIGHT) / 2
    body += [
        f'<circle class="score" cx="{sx:.1f}" cy="{sy:.1f}" r="6" fill="{c["score"]}"/>',
        f'<text x="{sx + 10 if left_half else sx - 10:.1f}" y="{max(sy - 4, TOP + 12):.1f}" '
        f'text-anchor="{"start" if left_half else "end"}" font-size="12" font-weight="600" '
        f'fill="{c["score"]}">score {escape(num(score))}, held {escape(num(sustained_seconds))} s'
        "</text>",
        f'<text x="{LEFT}" y="{HEIGHT - 8}" font-size="11" fill="{c["text"]}">0 s</text>',
    ]
    return _svg(label, body)
