"""The evaluation instants: multiples of the interval, each due once the offset has passed,
never evaluated twice, never ahead of the data, and the same list for backtest."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rollguard.core.schedule import instants, latest_instant, next_instant

INTERVALS = st.sampled_from([1.0, 1.5, 2.0, 10.0, 15.0, 30.0, 60.0])
WALLS = st.floats(min_value=1.7e9, max_value=1.8e9, allow_nan=False)
OFFSETS = st.sampled_from([0.0, 0.5, 1.0, 5.0])


def _on_grid(t: float, interval: float) -> bool:
    return round(t * 1000) % round(interval * 1000) == 0


@given(WALLS, INTERVALS, OFFSETS)
def test_the_latest_instant_is_on_the_grid_and_its_offset_has_passed(
    wall: float, interval: float, offset: float
) -> None:
    at = latest_instant(wall=wall, interval=interval, offset=offset)
    assert _on_grid(at, interval)
    assert at + offset <= wall + 1e-6
    assert wall - (at + offset) < interval + 1e-6


@given(WALLS, INTERVALS, OFFSETS, st.lists(st.floats(0.0, 40.0), min_size=1, max_size=30))
def test_a_loop_evaluates_each_instant_once_in_order_and_never_early(
    start: float, interval: float, offset: float, pauses: list[float]
) -> None:
    """A loop that asks for the next instant, sleeps until it is due, evaluates it, and then
    pauses for however long its cycle took."""
    wall, last, done = start, None, []
    for pause in pauses:
        at = next_instant(wall=wall, last=last, interval=interval, offset=offset)
        wall = max(wall, at + offset)  # sleeps until due
        assert _on_grid(at, interval)
        assert last is None or at > last
        assert at + offset <= wall + 1e-6
        done.append(at)
        last = at
        wall += pause
    assert done == sorted(set(done))


def test_a_loop_that_keeps_up_evaluates_every_instant() -> None:
    wall, last, done = 1_700_000_000.3, None, []
    for _ in range(10):
        at = next_instant(wall=wall, last=last, interval=2.0, offset=1.0)
        wall = max(wall, at + 1.0) + 0.2
        done.append(at)
        last = at
    assert done == [1_699_999_998.0 + 2 * k for k in range(10)]


def test_a_late_cycle_skips_to_the_newest_instant() -> None:
    assert next_instant(wall=1000.5, last=990.0, interval=2.0, offset=1.0) == 998.0


def test_backtest_instants_are_the_operators() -> None:
    assert instants(start=10.5, end=20.0, interval=3.0) == [12.0, 15.0, 18.0]
    assert instants(start=12.0, end=18.0, interval=3.0) == [12.0, 15.0, 18.0]
    assert instants(start=1.0, end=2.999, interval=1.5) == [1.5]
