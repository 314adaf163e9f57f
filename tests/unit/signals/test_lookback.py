"""How far back a query reaches: what validation must wait out after a rollback."""

from __future__ import annotations

import pytest

from rollguard.signals.promql import lookback_seconds


@pytest.mark.parametrize(
    ("query", "seconds"),
    [
        ('sum(rate(x{namespace="$namespace",deployment="$deployment"}[1m]))', 60.0),
        (
            'histogram_quantile(0.99, sum by (le) (rate(h_bucket{deployment="$deployment"}[30s])))',
            30.0,
        ),
        ('max_over_time(rate(x{deployment="$deployment"}[10s])[2m:15s])', 130.0),
        ('up{deployment="$deployment"}', 0.0),
        # The two sides of a ratio look back side by side, not one after the other.
        (
            'sum(rate(x{deployment="$deployment",code=~"5.."}[1m]))'
            ' / sum(rate(x{deployment="$deployment"}[1m]))',
            60.0,
        ),
        ('rate(x{deployment="$deployment"}[1m] offset 5m) - rate(x[2m])', 360.0),
        ("max_over_time(rate(x[10s] offset 20s)[2m:15s] offset 1m)", 210.0),
    ],
)
def test_lookback_adds_nested_ranges_and_offsets_and_takes_the_deepest_path(
    query: str, seconds: float
) -> None:
    assert lookback_seconds(query) == seconds
