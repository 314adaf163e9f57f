"""What a transition raises, who is told of it, what they read, and when a refused message is
tried again (``rollguard.core.notices``)."""

from __future__ import annotations

from typing import get_args

from hypothesis import given
from hypothesis import strategies as st

from rollguard.api.policy import Notify, NotifyOn
from rollguard.core import notices

EVENTS: tuple[NotifyOn, ...] = get_args(NotifyOn)


def test_a_transition_raises_its_most_specific_names_first() -> None:
    assert notices.raised(
        "Failed", changed_workload=False, validation_failed=True, escalates=True
    ) == ("ValidationFailed", "Failed", "Escalated")
    assert notices.raised(
        "Validating", changed_workload=True, validation_failed=False, escalates=False
    ) == ("Executed",)
    assert notices.raised(
        "Succeeded", changed_workload=True, validation_failed=False, escalates=False
    ) == ("Executed", "Succeeded")  # a Pause: applied and done in one move
    assert (
        notices.raised(
            "Executing", changed_workload=False, validation_failed=False, escalates=False
        )
        == ()
    )
    assert (
        notices.raised(
            "Superseded", changed_workload=False, validation_failed=False, escalates=False
        )
        == ()
    )


def test_a_receiver_hears_once_per_transition_with_the_name_it_asked_for() -> None:
    notify = [
        Notify(transitions=["Failed"], receiver="pager"),
        Notify(transitions=["Escalated", "ValidationFailed"], receiver="pager"),
        Notify(transitions=["Escalated"], receiver="chat"),
        Notify(transitions=["PendingApproval"], receiver="quiet"),
    ]
    told = notices.subscribed(notify, ("ValidationFailed", "Failed", "Escalated"))
    assert told == [("pager", "ValidationFailed"), ("chat", "Escalated")]


@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(EVENTS), min_size=1, max_size=4, unique=True),
            st.sampled_from(["a", "b", "c"]),
        ),
        max_size=6,
    ),
    st.lists(st.sampled_from(EVENTS), max_size=4, unique=True),
)
def test_subscriptions_tell_each_receiver_at_most_once_of_what_it_asked_for(
    lines: list[tuple[list[NotifyOn], str]], events: list[NotifyOn]
) -> None:
    notify = [Notify(transitions=on, receiver=r) for on, r in lines]
    told = notices.subscribed(notify, events)
    receivers = [r for r, _ in told]
    assert len(receivers) == len(set(receivers))
    for receiver, event in told:
        asked = {e for on, r in lines if r == receiver for e in on}
        assert event in asked
        assert event in events
        assert all(e not in asked for e in events[: events.index(event)])
    wanted = {r for on, r in lines if set(on) & set(events)}
    assert set(receivers) == wanted


def test_retries_double_up_to_a_cap_and_then_stop() -> None:
    waits = [notices.retry_after(n) for n in range(1, notices.MAX_ATTEMPTS + 1)]
    assert waits[:5] == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert all(w is not None and w <= notices.MAX_RETRY for w in waits[:-1])
    assert waits[-1] is None
    total = sum(w for w in waits if w is not None)
    assert 300 < total < 900  # about eight minutes of trying


def test_commands_quote_what_a_shell_would_misread() -> None:
    cmds = notices.commands("ml", "model-rb-1")
    assert cmds["approve"] == "rollguard approve model-rb-1 -n ml --reason '...'"
    assert cmds["reject"] == "rollguard reject model-rb-1 -n ml --reason '...'"
