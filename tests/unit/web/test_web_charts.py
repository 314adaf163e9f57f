"""The dashboard's SVG charts: well-formed SVG, every level drawn where its value lies, no text
unescaped, labels kept apart."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from rollguard.web.charts import HEIGHT, CurvePoint, score_chart, signal_chart, spread

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _line_y(root: ET.Element, cls: str) -> float:
    (line,) = [e for e in root.iter(f"{SVG}line") if e.get("class") == cls]
    return float(line.get("y1", "nan"))


def test_signal_chart_draws_samples_and_the_objective_limit_and_critical_in_value_order() -> None:
    root = _parse(
        signal_chart(
            name="error_rate",
            timestamps=[100.0, 110.0, 120.0],
            values=[0.02, 0.06, 0.03],
            objective=0.01,
            limit=0.015,
            critical=0.05,
            end=120.0,
        )
    )
    (polyline,) = root.iter(f"{SVG}polyline")
    assert len(polyline.get("points", "").split()) == 3
    # Higher values lie higher on the page (smaller y).
    assert _line_y(root, "objective") > _line_y(root, "limit") > _line_y(root, "critical")
    assert all(0 <= float(c.get("cy", "-1")) <= HEIGHT for c in root.iter(f"{SVG}circle"))
    assert "error_rate: 3 samples" in (root.findtext(f"{SVG}title") or "")


def test_signal_chart_without_samples_says_so() -> None:
    svg = signal_chart(name="x", timestamps=[], values=[], objective=1, limit=2, critical=3)
    root = _parse(svg)
    assert not list(root.iter(f"{SVG}polyline"))
    assert "no samples recorded" in svg


def test_chart_text_is_escaped() -> None:
    svg = signal_chart(
        name='<script>"x"</script>',
        timestamps=[1.0],
        values=[1.0],
        objective=0,
        limit=1,
        critical=2,
    )
    assert "<script>" not in svg
    _parse(svg)  # still well-formed


def test_score_chart_marks_the_fired_point_and_the_decision_score() -> None:
    points = [CurvePoint("Rollback", 0.7, 0.0), CurvePoint("Hold", 0.15, 120.0)]
    root = _parse(score_chart(points=points, score=0.85, sustained_seconds=30.0, fired=0))
    rects = [e for e in root.iter(f"{SVG}rect") if e.get("class") == "fires"]
    assert len(rects) == 2
    assert rects[0].get("stroke") and not rects[1].get("stroke")
    (dot,) = [e for e in root.iter(f"{SVG}circle") if e.get("class") == "score"]
    # The score 0.85 lies above the fired point's minScore 0.7.
    fired_y = float(rects[0].get("y", "0")) + float(rects[0].get("height", "0"))
    assert float(dot.get("cy", "nan")) < fired_y


def test_spread_keeps_labels_apart_in_their_order() -> None:
    assert spread([100.0, 105.0, 50.0], 12.0) == [100.0, 112.0, 50.0]
    assert spread([10.0, 40.0], 12.0) == [10.0, 40.0]
