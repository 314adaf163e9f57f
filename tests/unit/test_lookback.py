"""How far back a query reaches: what validation must wait out after a rollback."""

from __future__ import annotations

import pytest

from rollguard.monitoring.promql import lookback_seconds


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
    ],
)
def test_lookback_is_the_sum_of_the_ranges_in_the_query(query: str, seconds: float) -> None:
    assert lookback_seconds(query) == seconds
