"""One decision machine, for the Monte Carlo: ``rollguard simulate`` over scenarios
(``simrun``, every seed at once) and the operator in memory (``virtual.VirtualMember``, which
``simulate --series`` runs and the differential test holds to the operator's control code)
make the same decisions at the same evaluation times on the same samples.

Each case runs a few seeds of a scenario through the Monte Carlo, then ``VirtualMember`` over
the acted samples of each seed, window by window (the rows the Monte Carlo scored), and
compares, per evaluation: the score (bit for bit), the point fired, whether safety blocked it,
the recommended action, whether that decision was executed and when, and the escalations.
The scenarios' rollouts complete at once (rolloutDelay 0s), as VirtualMember's do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from rollguard.api.base import duration_seconds
from rollguard.api.decision import Samples
from rollguard.api.policy import ACTIONS, EffectivePolicy
from rollguard.core import machine
from rollguard.core.engine import Measurements
from rollguard.core.warmup import began_inside
from rollguard.files.loading import load_policy
from rollguard.simulation.scenario_run import SIM_EPOCH, ScenarioRun, run_scenario
from rollguard.simulation.scenarios import Scenario, load_scenario
from rollguard.simulation.seed_decisions import ESCALATIONS
from rollguard.simulation.virtual import Setting, VirtualMember

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "scenarios"
SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def policy() -> EffectivePolicy:
    return load_policy(path=EXAMPLES / "policy.yaml")


def scenario(name: str, policy: EffectivePolicy, **update: object) -> Scenario:
    loaded = load_scenario(path=EXAMPLES / f"{name}.yaml", policy=policy)
    return loaded.model_copy(update={"rollout_delay": "0s", **update})


def noise_free(sc: Scenario) -> Scenario:
    quiet = {
        name: gen.model_copy(update={"noise": gen.noise.model_copy(update={"sigma": 0.0})})
        for name, gen in sc.signals.items()
    }
    return sc.model_copy(update={"signals": quiet})


def with_update(policy: EffectivePolicy, part: str, **update: object) -> EffectivePolicy:
    return policy.model_copy(update={part: getattr(policy, part).model_copy(update=update)})


@dataclass(frozen=True)
class Timeline:
    """Per evaluation: score, fired point, blocked, recommended action (ACTIONS index, -1
    none), whether that decision executed, whether an action executed then, and the
    escalation (ESCALATIONS index)."""

    score: np.ndarray
    fired: np.ndarray
    blocked: np.ndarray
    recommended: np.ndarray
    executed: np.ndarray
    executions: np.ndarray
    escalation: np.ndarray


def monte_carlo(run: ScenarioRun, b: int) -> Timeline:
    return Timeline(
        score=run.score[:, b],
        fired=run.fired[:, b],
        blocked=run.blocked[:, b],
        recommended=run.recommended[:, b].astype(np.int64),
        executed=run.executed[:, b],
        executions=run.executions[:, b],
        escalation=run.escalation[:, b].astype(np.int64),
    )


def virtual(policy: EffectivePolicy, run: ScenarioRun, b: int, setting: Setting) -> Timeline:
    """VirtualMember over seed ``b``'s acted samples, with the Monte Carlo's windows."""
    assert run.values is not None and run.present is not None
    tl = run.timeline
    n_s, pad = len(policy.signals), tl.window - 1
    values = np.concatenate([np.full((n_s, pad), np.nan), run.values[b]], axis=1)
    present = np.concatenate([np.zeros((n_s, pad), np.bool_), run.present[b]], axis=1)
    times = SIM_EPOCH + (np.arange(values.shape[1]) - pad) * tl.dt
    member = VirtualMember(policy, setting)
    queries = [s.query for s in policy.signals]
    n_j = tl.eval_times.size
    out = Timeline(
        score=np.empty(n_j),
        fired=np.empty(n_j, dtype=np.int64),
        blocked=np.zeros(n_j, dtype=np.bool_),
        recommended=np.full(n_j, -1, dtype=np.int64),
        executed=np.zeros(n_j, dtype=np.bool_),
        executions=np.zeros(n_j, dtype=np.bool_),
        escalation=np.zeros(n_j, dtype=np.int64),
    )
    at = {}
    for j, k in enumerate(tl.eval_index):
        now = SIM_EPOCH + float(tl.eval_times[j])
        at[now] = j
        rows = slice(int(k), int(k) + tl.window)  # padded rows: samples k - pad .. k
        v, m = values[:, rows], present[:, rows]
        samples: list[Samples | None] = [
            Samples(
                timestamps=[float(x) for x in times[rows][m[s]]],
                values=[float(x) for x in v[s][m[s]]],
            )
            for s in range(n_s)
        ]
        # As run_recorded lays out a window: on the time grid, so a series that began inside
        # it shows (warm-up).
        measured = Measurements(
            v[None], m[None], np.ones((1, n_s), dtype=np.bool_), began=began_inside(m[None])
        )
        result = member.evaluate(
            measured,
            now=now,
            samples=samples,
            queries=queries,
        )
        out.score[j] = result.score[0]
        out.fired[j] = result.fired[0]
        out.blocked[j] = result.blocked[0] != ""
    for d in member.decisions:
        j = at[d.time]
        out.recommended[j] = ACTIONS.index(d.action)
        if d.executed_at is not None:
            out.executed[j] = True
            out.executions[at[d.executed_at]] = True
        if d.blocked == "cooldown" and d.action != "Hold":  # waits for a human's approval
            out.escalation[j] = ESCALATIONS.index("cooldown")
    for e in member.escalations:
        out.escalation[at[e.time]] = ESCALATIONS.index(e.reason)
    return out


def setting_for(sc: Scenario, *, rollout_in_progress: bool = False) -> Setting:
    delay = None if sc.approval_delay is None else duration_seconds(sc.approval_delay)
    return Setting(
        revisions=2,
        rollout_in_progress=rollout_in_progress,
        approve_after=delay,
        settle=0.0,
        scrape_interval=sc.dt,
    )


def assert_agree(
    policy: EffectivePolicy, sc: Scenario, *, rollout_in_progress: bool = False
) -> list[Timeline]:
    run = run_scenario(policy, sc, SEEDS, keep_series=True)
    setting = setting_for(sc, rollout_in_progress=rollout_in_progress)
    timelines = []
    for b in range(len(SEEDS)):
        mc, vm = monte_carlo(run, b), virtual(policy, run, b, setting)
        for field in Timeline.__dataclass_fields__:
            np.testing.assert_array_equal(
                getattr(mc, field), getattr(vm, field), err_msg=f"seed {SEEDS[b]}: {field}"
            )
        timelines.append(mc)
    return timelines


def test_dry_run_fires_at_the_same_evaluations_and_never_executes(
    policy: EffectivePolicy,
) -> None:
    dry = policy.model_copy(update={"mode": "DryRun"})
    timelines = assert_agree(dry, scenario("error-burst", policy))
    assert all((t.fired >= 0).any() and not t.executions.any() for t in timelines)


def test_no_decision_on_healthy_signals_or_data_gaps(policy: EffectivePolicy) -> None:
    base = scenario("missing-data", policy)
    gaps = base.model_copy(update={"events": [e for e in base.events if e.kind == "gap"]})
    timelines = assert_agree(policy, gaps)
    assert all(np.isnan(t.score).any() and (t.fired < 0).all() for t in timelines)


def test_an_incurable_regression_fails_the_rollbacks_validation_and_escalates(
    policy: EffectivePolicy,
) -> None:
    base = scenario("error-burst", policy)
    stuck = base.model_copy(
        update={"events": [base.events[0].model_copy(update={"curable": False})]}
    )
    timelines = assert_agree(policy, stuck)
    failed = ESCALATIONS.index(machine.ESCALATION_FAILED)
    for t in timelines:
        assert t.executions.sum() == 1
        escalated = np.flatnonzero(t.escalation == failed)
        assert escalated.size == 1
        assert (t.fired[escalated[0] :] < 0).all()  # escalated: nothing fires any more


def test_a_cured_regressions_rollback_is_validated_and_nothing_fires_after(
    policy: EffectivePolicy,
) -> None:
    timelines = assert_agree(policy, scenario("error-burst", policy))
    for t in timelines:
        (executed,) = np.flatnonzero(t.executions)
        assert t.recommended[executed] == ACTIONS.index("Rollback")
        assert not t.escalation.any()
        assert (t.fired[executed + 1 :] < 0).all()


def test_a_rollback_outside_auto_approval_executes_after_the_humans_delay(
    policy: EffectivePolicy,
) -> None:
    strict = with_update(
        policy,
        "authorization",
        auto_approve=policy.authorization.auto_approve.model_copy(update={"max_score": 0.1}),
    )
    timelines = assert_agree(strict, scenario("error-burst", policy))
    for t in timelines:
        decided = np.flatnonzero(t.executed)
        executed = np.flatnonzero(t.executions)
        assert decided.size == executed.size == 1
        assert (executed[0] - decided[0]) * 30 == 600  # approvalDelay 10m, evaluations every 30s


def test_nobody_approving_lets_the_decision_expire_and_the_next_one_fire(
    policy: EffectivePolicy,
) -> None:
    strict = with_update(
        policy,
        "authorization",
        auto_approve=policy.authorization.auto_approve.model_copy(update={"max_score": 0.1}),
        approval_timeout="15m",
    )
    timelines = assert_agree(strict, scenario("error-burst", policy, approval_delay=None))
    assert all(not t.executions.any() for t in timelines)


def test_with_no_action_budget_the_first_fire_escalates_and_waits_for_a_human(
    policy: EffectivePolicy,
) -> None:
    budget = policy.safety.max_actions_per_window.model_copy(update={"count": 0})
    none = with_update(policy, "safety", max_actions_per_window=budget)
    timelines = assert_agree(none, scenario("error-burst", policy))
    budget_code = ESCALATIONS.index(machine.ESCALATION_BUDGET)
    for t in timelines:
        (first,) = np.flatnonzero(t.escalation == budget_code)
        assert t.blocked[first] and t.executed[first] and not t.executions[first]
        assert (t.fired[first + 1 :] < 0).all()


def test_a_pause_acts_on_a_rollout_in_progress_and_holds_without_one(
    policy: EffectivePolicy,
) -> None:
    # Noise free, so that nothing fires before the ramp begins (rollout in progress from the
    # start for VirtualMember, from the ramp's start in the scenario).
    ramping = noise_free(scenario("latency-regression", policy))
    # Ramps past the end of the run: a rollout in progress until the Pause stops it.
    effect = ramping.events[0].model_copy(
        update={"ramp_for": "3h", "magnitude": {"latency_p99": 3.0}}
    )
    ramping = ramping.model_copy(update={"events": [effect]})
    pause = ACTIONS.index("Pause")
    (paused,) = assert_agree(policy, ramping, rollout_in_progress=True)[:1]
    assert (paused.executions & (paused.recommended == pause)).any()
    step = noise_free(scenario("error-burst", policy))  # a step: no rollout in progress
    step_event = step.events[0].model_copy(update={"magnitude": {"error_rate": 0.025}})
    (held,) = assert_agree(policy, step.model_copy(update={"events": [step_event]}))[:1]
    hold_for_pause = (held.recommended == ACTIONS.index("Hold")) & (held.fired == 2)
    assert hold_for_pause.any()


def test_one_decision_at_a_time_a_rollback_waits_while_a_pause_awaits_approval(
    policy: EffectivePolicy,
) -> None:
    ramping = noise_free(scenario("latency-regression", policy))
    effect = ramping.events[0].model_copy(
        update={"ramp_for": "2h", "magnitude": {"latency_p99": 3.0}}
    )
    ramping = ramping.model_copy(update={"events": [effect]})
    only_hold = with_update(
        policy,
        "authorization",
        auto_approve=policy.authorization.auto_approve.model_copy(update={"actions": ["Hold"]}),
    )
    t = assert_agree(only_hold, ramping, rollout_in_progress=True)[0]
    decided = np.flatnonzero(t.recommended >= 0)
    actions = [ACTIONS[int(a)] for a in t.recommended[decided]]
    pause, rollback = decided[actions.index("Pause")], decided[actions.index("Rollback")]
    # The ramp crosses the Rollback point while the Pause waits 10 minutes for its approval;
    # the Rollback fires only once the Pause has executed and its decision closed.
    paused = np.flatnonzero(t.executions)[0]
    assert paused - pause == 20 and rollback > paused
    assert t.score[pause:paused].max() >= 0.3


@pytest.mark.parametrize(("start", "cooling"), [("1h", False), ("45m", True)])
def test_after_a_rollback_a_new_incurable_regression_finds_no_revision_to_roll_back_to(
    policy: EffectivePolicy, start: str, cooling: bool
) -> None:
    base = scenario("error-burst", policy)
    later = base.events[0].model_copy(
        update={"start": start, "magnitude": {"latency_p99": 1.5}, "curable": False}
    )
    sc = noise_free(base.model_copy(update={"events": [base.events[0], later]}))
    t = assert_agree(policy, sc)[0]
    decided = np.flatnonzero(t.recommended >= 0)
    wanted = [policy.triggers[int(f)].action for f in t.fired[decided]]
    actions = [ACTIONS[int(a)] for a in t.recommended[decided]]
    # The first regression is rolled back (at 34 min, validated until 44 min); the revision
    # now running is the approved one, so the second regression's Rollback falls back to Hold,
    # within the rollback's 20 min cooldown (at 45 min) or after it.
    assert wanted[0] == actions[0] == "Rollback" and t.executed[decided[0]]
    assert wanted[-1] == "Rollback" and actions[-1] == "Hold"
    assert t.blocked[decided[-1]] == cooling
    assert not t.escalation.any()  # a Hold needs nobody, blocked or not


def test_warm_up_after_a_rollback_is_judged_alike(policy: EffectivePolicy) -> None:
    # error_rate breaches on missing data; its samples stop right after the rollback for 5
    # minutes: windows younger than the rolled-back revision are warming up instead, so the
    # rollback stays the only action.
    signals = [policy.signals[0].model_copy(update={"on_missing_data": "Breach"})]
    breach = policy.model_copy(update={"signals": signals + policy.signals[1:]})
    base = noise_free(scenario("error-burst", policy))
    [rolled] = np.flatnonzero(assert_agree(breach, base)[0].executions).tolist()
    after = (rolled + 1) * duration_seconds(policy.evaluation.interval) + 15
    gap = {"kind": "gap", "start": f"{after:g}s", "samples": 20, "signals": ["error_rate"]}
    events = [*base.model_dump(by_alias=True)["events"], gap]
    sc = Scenario.model_validate({**base.model_dump(by_alias=True), "events": events})
    t = assert_agree(breach, sc)[0]
    assert np.flatnonzero(t.executions).tolist() == [rolled]
