"""Breach-to-rollback latency on the real local environment, and the same recorded series
through canary-analysis rules in the style of Argo Rollouts and Flagger at the same cadence.

Run: ``make bench`` (or ``PYTHONPATH=tools .venv/bin/python bench/latency.py [--trials 20]
[--interval 5] [--rate-window 10s] [--out FILE]``). Starts a fresh local environment (control
plane, Prometheus scraping every second, workload simulator) and the operator as deploy/'s
ServiceAccount; prints the figures and writes them, with the commit and the date, to
``bench/results/latency.json`` (or ``--out``). Not a test: nothing is asserted.

Each trial: a fresh namespace with a healthy Deployment, its ModelDeployment and a policy
(interval ``--interval``, 5 s by default, window 30 s, Rollback at score >= 0.5 sustained
10 s, inside the auto-approval boundary); once it is judged Healthy the Deployment switches to
the ``errors`` profile at t0, at a random phase of the evaluation grid (``--seed``). Measured:
the Deployment patched back (t_patch) and the decision ``Succeeded`` (t_done). Detection
overhead = t_patch - t0 - sustainedFor, in evaluation intervals and in scrape intervals; and
the operator's own latency from the decision's creation to the patch (its
RollbackRecommended and RollbackExecuted audit lines).

Percentiles: each trial gives one value of each figure, so N trials support only so much
tail. The result gives p50 and, for the tail, p99 with at least 100 trials, p95 with at least
20, and otherwise the maximum, always with N; a goal on a tail the trials cannot support is
reported as not measured. ``--trials`` defaults to 20 (p95); p99 needs ``--trials 100``.

Decision cost: the operator reaches the API server through a counting proxy
(``devenv.apiproxy``, pass-through); each trial counts the operator's writes in the trial's
namespace from t0 until the decision is final and exported, by kind: the decision (create
and status), the Deployment patch, Events, and the ModelDeployment's status (per evaluation,
not per decision).

Comparison. A rollback cuts a trial's breach short, so a rule that needs several failed
checks never gets them on that record. The comparison uses a breach left in place instead: a
DryRun ``reference`` service runs the ``errors`` profile for 2 minutes, and its error-ratio
series (1 s resolution, from Prometheus) goes through three detectors, each checking at the
same instants: every ``--interval`` seconds (rollguard's evaluation interval), at every phase
of that grid relative to the breach (one per second of the interval):

- rollguard: its decision core on the recorded series (``run_recorded``), evaluating at
  those instants;
- Argo Rollouts style (``argo_analysis``): an AnalysisRun started at the first check instant
  after the breach; a measurement every interval, ``count`` measurements; a measurement fails
  when the value is above the policy's limit (``successCondition: result[0] <= limit``) and
  is an error when the query returns nothing; the run is Failed when failed measurements
  exceed ``failureLimit`` and Error when consecutive errors exceed ``consecutiveErrorLimit``
  (4, Argo's default), either of which aborts the rollout; Successful after ``count``;
- Flagger style (``flagger_analysis``): a canary analysis started at the same instant; a
  check every interval, failed when the value is above the limit or the query returns
  nothing; the canary is rolled back once the failed checks reach ``threshold``, and promoted
  once ``iterations`` checks have passed (a failed check does not advance the analysis).

Both canary analyses last ``--analysis-seconds`` (120 s) of checks: ``count`` and
``iterations`` are that over the interval. Their threshold is the policy's limit; their count
(``failureLimit``, ``threshold``) is the smallest that raises no alarm on a ``noisy`` and a
``spiky`` service recorded alongside for the whole run, run as back-to-back analyses from
their first data at every phase. rollguard is replayed on both baselines at every phase too:
the same false-alarm rate, zero. The canary rules are credited generously, so their figures
are lower bounds on the tools' own: each check is taken at its instant with no controller
delay; Flagger's first tick, which only starts the analysis, is counted as a check; its
controller rolls back on the tick after the threshold is reached, and the rollback is
credited at the check that reaches it; and Flagger clamps an interval under 10 s to 10 s,
which is ignored here (at a 5 s interval the Flagger-style rule checks every 5 s). Each
trial's own record is replayed through rollguard as well (at the operator's own instants), as
a check of the live figure. The policy tests its newest 5 samples too
(``--recent-samples``).
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from kubernetes import client

from devenv.apiproxy import ApiProxy, Request
from devenv.launcher import Environment, build_controlplane
from devenv.operatorproc import start_operator
from devenv.testing import (
    api_client_for,
    deployment_manifest,
    fast_policy,
    kubectl_for,
    poll,
    write_bench_result,
)
from rollguard.api.policy import EffectivePolicy
from rollguard.core.severity import signal_limit
from rollguard.files.loading import parse_policy
from rollguard.files.series import Series
from rollguard.signals.backtest import fetch
from rollguard.signals.prometheus import PrometheusSource
from rollguard.simulation.recorded import run_recorded

GROUP, VERSION = "rollguard.dev", "v1alpha1"
OUT = Path(__file__).parent / "results" / "latency.json"
INTERVAL, SUSTAINED, SCRAPE = 5.0, 10.0, 1.0
REFERENCE_SECONDS = 120.0  # the breach the comparison replays
ANALYSIS_SECONDS = 120.0  # length of a canary analysis, in checks every interval
ARGO_CONSECUTIVE_ERROR_LIMIT = 4  # Argo Rollouts' default consecutiveErrorLimit
POLICY: dict[str, Any] = fast_policy(
    interval="5s", window="30s", sustained_for="10s", validation_window="10s"
)
POLICY["safety"]["maxActionsPerWindow"]["count"] = 5
GOALS = {
    "overhead_p50_intervals": 1.5,
    "overhead_p95_intervals": 2.5,
    "trigger_to_patch_p99_ms": 300.0,
}


def _wait(what: str, probe: Any, timeout: float = 180.0, every: float = 0.1) -> Any:
    return poll(what, probe, timeout=timeout, every=every)


class Service:
    """One model service: Deployment, policy and ModelDeployment in their own namespace."""

    def __init__(
        self, api: client.ApiClient, namespace: str, profile: str, *, mode: str = "Enforce"
    ) -> None:
        self.ns = namespace
        self.core, self.apps = client.CoreV1Api(api), client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.core.create_namespace({"metadata": {"name": namespace}})
        self.apps.create_namespaced_deployment(
            namespace, deployment_manifest("svc", profile=profile)
        )
        _wait("revision 1", lambda: (self.deployment().metadata.annotations or {}).get(
            "deployment.kubernetes.io/revision") == "1")  # fmt: skip
        for plural, kind, spec in (
            ("rollbackpolicies", "RollbackPolicy", {**POLICY, "mode": mode}),
            ("modeldeployments", "ModelDeployment", {
                "deploymentRef": {"name": "svc"}, "policyRef": {"name": "svc"},
                "model": {"name": "svc", "version": "v1"}, "approvedRevisions": [{"revision": 1}]}),
        ):  # fmt: skip
            body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind,
                    "metadata": {"name": "svc"}, "spec": spec}  # fmt: skip
            self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)

    def deployment(self) -> Any:
        return self.apps.read_namespaced_deployment("svc", self.ns)

    def phase(self) -> str | None:
        obj = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.ns, "modeldeployments", "svc"
        )
        return (obj.get("status") or {}).get("phase")

    def decisions(self) -> list[dict[str, Any]]:
        return list(self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.ns, "rollbackdecisions")["items"])  # fmt: skip

    def set_profile(self, profile: str) -> None:
        container = {"name": "model", "env": [{"name": "SIM_PROFILE", "value": profile}]}
        self.apps.patch_namespaced_deployment(
            "svc", self.ns, {"spec": {"template": {"spec": {"containers": [container]}}}}
        )


# --- canary-analysis rules on a recorded series ------------------------------------------------


def _value_at(series: Series, t: float) -> float | None:
    """The query's value at ``t`` (a point of the record's grid); None: it returned nothing."""
    k = round((t - series.start) / series.step)
    if not 0 <= k < series.values.shape[1] or not series.mask[0, k]:
        return None
    value = float(series.values[0, k])
    return value if np.isfinite(value) else None


def _ticks(series: Series, first: float, interval: float) -> Iterator[float]:
    """``first``, ``first + interval``, ... while the record lasts."""
    last = float(series.times[-1])
    t = first
    while t <= last + 1e-9:
        yield t
        t += interval


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How an analysis ended: its phase and the instant of its last check. ``Running``: the
    record ended first."""

    phase: str
    at: float

    @property
    def alarm(self) -> bool:
        return self.phase in ("Failed", "Error")


def argo_analysis(
    series: Series,
    start: float,
    *,
    interval: float,
    limit: float,
    count: int,
    failure_limit: int,
    consecutive_error_limit: int = ARGO_CONSECUTIVE_ERROR_LIMIT,
) -> Outcome:
    """One Argo Rollouts AnalysisRun of one metric, started at ``start`` (no initialDelay, so
    its first measurement is then): a measurement every ``interval``, ``count`` of them. A
    measurement is Successful when the value is at most ``limit`` (``successCondition:
    result[0] <= limit``), Failed when above, and Error when the query returns nothing. The
    run is Failed once failed measurements exceed ``failureLimit``, Error once consecutive
    errors exceed ``consecutiveErrorLimit`` (either aborts the rollout), and Successful after
    ``count`` measurements."""
    failed = consecutive_errors = 0
    for taken, t in enumerate(_ticks(series, start, interval), start=1):
        value = _value_at(series, t)
        if value is None:
            consecutive_errors += 1
        else:
            consecutive_errors = 0
            failed += value > limit
        if failed > failure_limit:
            return Outcome("Failed", t)
        if consecutive_errors > consecutive_error_limit:
            return Outcome("Error", t)
        if taken == count:
            return Outcome("Successful", t)
    return Outcome("Running", float(series.times[-1]))


def flagger_analysis(
    series: Series,
    start: float,
    *,
    interval: float,
    limit: float,
    iterations: int,
    threshold: int,
) -> Outcome:
    """One Flagger canary analysis, its first check at ``start``: a check every ``interval``;
    a check fails when the value is above ``limit`` (``thresholdRange.max``) or the query
    returns nothing (Flagger halts advancement on "no values found" and counts a failed
    check). The canary is rolled back (Failed) once the failed checks reach ``threshold``, and
    promoted (Succeeded) once ``iterations`` checks have passed; a failed check does not
    advance the analysis, and a passed one does not reset the failed count."""
    failed = passed = 0
    for t in _ticks(series, start, interval):
        value = _value_at(series, t)
        if value is None or value > limit:
            failed += 1
            if failed >= threshold:
                return Outcome("Failed", t)
        else:
            passed += 1
            if passed == iterations:
                return Outcome("Succeeded", t)
    return Outcome("Running", float(series.times[-1]))


Analysis = Callable[[Series, float, int], Outcome]
"""An analysis of a record started at an instant, with a count (failureLimit, threshold)."""


def false_alarms(series: Series, analysis: Analysis, count: int, *, interval: float) -> int:
    """Back-to-back analyses over a baseline record from its first data, at every phase of the
    check grid: how many of them raised an alarm."""
    present = np.flatnonzero(series.mask[0])
    if not present.size:
        return 0
    first = float(series.times[present[0]])
    alarms = 0
    for phase in range(round(interval / series.step)):
        at = first + phase * series.step
        while True:
            outcome = analysis(series, at, count)
            alarms += outcome.alarm
            if outcome.phase == "Running":
                break
            at = outcome.at + interval
    return alarms


def calibrate(
    baselines: list[Series], analysis: Analysis, counts: range, *, interval: float
) -> int | None:
    """The smallest count with no alarm on any baseline record at any phase; None if none."""
    for count in counts:
        if all(false_alarms(r, analysis, count, interval=interval) == 0 for r in baselines):
            return count
    return None


def breach_index(series: Series) -> int:
    """The first sample labelled as the regression."""
    assert series.regression is not None
    return int(np.argmax(series.regression))


def phase_instants(series: Series, first: int, interval: float) -> np.ndarray:
    """Every grid instant (after the record's first sample) at ``first`` plus or minus whole
    intervals: one phase of the check grid."""
    every = round(interval / series.step)
    index = np.arange(first % every, series.values.shape[1], every)
    index = index[index >= 1]
    return series.start + index * series.step


def detection(
    series: Series,
    policy: EffectivePolicy,
    analyses: dict[str, Analysis],
    counts: dict[str, int | None],
    *,
    interval: float,
) -> dict[str, list[float | None]]:
    """Seconds from the breach to each detector's rollback, at every phase of the check grid
    (the first check at 0, 1, ... s after the breach); None: not detected."""
    kb = breach_index(series)
    breach = float(series.times[kb])
    out: dict[str, list[float | None]] = {"rollguard": [], **{name: [] for name in analyses}}
    for phase in range(round(interval / series.step)):
        first = kb + phase
        replay = run_recorded(policy, series, eval_times=phase_instants(series, first, interval))
        out["rollguard"].append(replay.detection_delay_seconds)
        for name, analysis in analyses.items():
            count = counts[name]
            outcome = None if count is None else analysis(series, float(series.times[first]), count)
            out[name].append(outcome.at - breach if outcome and outcome.alarm else None)
    return out


def rollguard_false_rollbacks(
    series: Series, policy: EffectivePolicy, *, interval: float
) -> list[int]:
    """rollguard's false rollbacks on a baseline record, at every phase of the grid."""
    clean = dataclasses.replace(series, regression=np.zeros(series.values.shape[1], dtype=np.bool_))
    return [
        run_recorded(
            policy, clean, eval_times=phase_instants(series, phase, interval)
        ).false_rollbacks
        or 0
        for phase in range(round(interval / series.step))
    ]


def checks_over_limit(series: Series, limit: float, *, interval: float) -> tuple[int, int]:
    """(checks above the limit or without a value, checks) every interval from the record's
    first data, at phase 0."""
    present = np.flatnonzero(series.mask[0])
    if not present.size:
        return 0, 0
    values = [
        _value_at(series, t) for t in _ticks(series, float(series.times[present[0]]), interval)
    ]
    return sum(v is None or v > limit for v in values), len(values)


# --- percentiles over trials --------------------------------------------------------------------


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def tail_label(n: int) -> str:
    """The highest tail N values support: p99 from 100, p95 from 20, else the maximum."""
    return "p99" if n >= 100 else "p95" if n >= 20 else "max"


def summary(xs: list[float], scale: float = 1.0) -> dict[str, Any]:
    """N, p50 and the tail ``tail_label`` allows, each value times ``scale``."""
    if not xs:
        return {"n": 0}
    label = tail_label(len(xs))
    tail = max(xs) if label == "max" else pct(xs, float(label[1:]))
    return {"n": len(xs), "p50": pct(xs, 50) * scale, label: tail * scale}


def goal(figure: dict[str, Any], key: str, bound: float, *, needs: int) -> dict[str, Any]:
    """A goal ``figure[key] <= bound``: met, missed, or not measured when fewer than ``needs``
    trials support that percentile."""
    n = figure.get("n", 0)
    if n < needs or key not in figure:
        return {"goal": bound, "measured": None, "met": None, "n": n,
                "why": f"{key} needs at least {needs} trials"}  # fmt: skip
    return {"goal": bound, "measured": figure[key], "met": figure[key] <= bound, "n": n}


def writes(requests: list[Request], namespace: str) -> dict[str, int]:
    """The operator's writes in ``namespace``, by what they wrote."""
    counts = {"decision": 0, "deployment": 0, "events": 0, "modeldeployment": 0, "other": 0}
    for r in requests:
        if r.method in ("GET", "HEAD") or f"/namespaces/{namespace}/" not in r.path:
            continue
        kind = next((k for k in ("rollbackdecisions", "deployments", "events", "modeldeployments")
                     if f"/{k}" in r.path), "other")  # fmt: skip
        counts[{"rollbackdecisions": "decision", "deployments": "deployment",
                "modeldeployments": "modeldeployment"}.get(kind, kind)] += 1  # fmt: skip
    return counts


def decision_writes(requests: list[Request], namespace: str) -> dict[str, int]:
    """The writes to decisions in ``namespace``, by method and what they wrote."""
    counts: dict[str, int] = {}
    for r in requests:
        if (
            r.method in ("GET", "HEAD")
            or f"/namespaces/{namespace}/rollbackdecisions" not in r.path
        ):
            continue
        tail = r.path.split("/rollbackdecisions", 1)[1].strip("/").split("/")
        what = "status" if tail[-1] == "status" else ("object" if tail[0] else "collection")
        counts[f"{r.method} {what}"] = counts.get(f"{r.method} {what}", 0) + 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/latency.py", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="trials (20: p95; p99 needs 100)")
    parser.add_argument(
        "--recent-samples",
        type=int,
        default=5,
        help="the policy's evaluation.recentSamples (5); 0 tests the whole window only",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the breach phases (1)")
    parser.add_argument(
        "--rate-window", default="10s", help="the range of the query's rate() (10s)"
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=INTERVAL,
        help="evaluation.interval and the canary rules' check interval, whole seconds (5)",
    )
    parser.add_argument(
        "--analysis-seconds",
        type=float,
        default=ANALYSIS_SECONDS,
        help="length of a canary analysis: count / iterations x interval (120)",
    )
    parser.add_argument("--out", type=Path, default=OUT, help=f"result file ({OUT.name})")
    args = parser.parse_args(argv)
    interval = float(args.interval)
    if args.trials < 1 or interval < 1 or interval != int(interval):
        parser.error("--trials must be at least 1 and --interval a whole number of seconds")
    checks = max(1, round(args.analysis_seconds / interval))  # Argo count, Flagger iterations
    POLICY["evaluation"]["interval"] = f"{interval:g}s"
    query = POLICY["signals"][0]["query"]
    POLICY["signals"][0]["query"] = query.replace("[10s]", f"[{args.rate_window}]")
    rng = np.random.default_rng(args.seed)
    if args.recent_samples:
        POLICY["evaluation"]["recentSamples"] = args.recent_samples
    policy = parse_policy(
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RollbackPolicy",
         "metadata": {"name": "svc"}, "spec": POLICY}, source="bench")  # fmt: skip
    limit = signal_limit(policy.signals[0])
    analyses: dict[str, Analysis] = {
        "argo": lambda s, at, n: argo_analysis(
            s, at, interval=interval, limit=limit, count=checks, failure_limit=n
        ),
        "flagger": lambda s, at, n: flagger_analysis(
            s, at, interval=interval, limit=limit, iterations=checks, threshold=n
        ),
    }
    count_ranges = {"argo": range(checks), "flagger": range(1, 4 * checks + 1)}
    # Stopped with SIGTERM too, the environment and the operator are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="rollguard-bench-"))
    environment = Environment(work_dir=work / "env", bin_dir=build_controlplane())
    env = environment.start()
    operator = None
    proxy = ApiProxy(env.api_server, Path(env.work_dir) / "pki").start()
    try:
        kubectl = kubectl_for(env)
        (work / "op").mkdir()
        operator = start_operator(env, kubectl, work / "op", api_proxy=proxy)
        api = api_client_for(env, "admin")
        source = PrometheusSource(url=env.prometheus_url)
        baselines = {p: Service(api, f"bench-{p}", p) for p in ("noisy", "spiky")}
        reference = Service(api, "bench-reference", "healthy", mode="DryRun")
        noisy_from = time.time()
        trials: list[dict[str, Any]] = []
        for i in range(args.trials):
            svc = Service(api, f"bench-{i}", "healthy")
            _wait("Healthy", lambda s=svc: s.phase() == "Healthy", timeout=240, every=0.5)
            # A steady baseline in the query windows, then the breach at a random phase of the
            # evaluation grid, as a real regression would come.
            time.sleep(20 + float(rng.uniform(0.0, interval)))
            t0, mark = time.time(), time.monotonic()
            svc.set_profile("errors")
            _wait("the errors revision", lambda s=svc: s.deployment().metadata.generation == 2)
            _wait("the rollback patch", lambda s=svc: s.deployment().metadata.generation == 3,
                  every=0.05)  # fmt: skip
            t_patch = time.time()
            name = _wait("the decision", svc.decisions)[0]["metadata"]["name"]
            _wait("Succeeded", lambda s=svc: (s.decisions()[0].get("status") or {}).get("phase")
                  == "Succeeded", every=0.25)  # fmt: skip
            t_done = time.time()
            _wait("exported", lambda s=svc: s.decisions()[0]["status"]["audit"].get("exported"))
            seen = proxy.since(mark)
            cost = writes(seen, svc.ns)
            lines = [a for a in operator.audit_lines()
                     if a.get("namespace") == svc.ns and a.get("name") == name]  # fmt: skip
            stamp = {a["event"]: a["ts"] for a in lines}
            own = None
            if "RollbackRecommended" in stamp and "RollbackExecuted" in stamp:
                from datetime import datetime  # noqa: PLC0415

                own = (datetime.fromisoformat(stamp["RollbackExecuted"])
                       - datetime.fromisoformat(stamp["RollbackRecommended"])).total_seconds()  # fmt: skip
            series = fetch(source=source, policy=policy, namespace=svc.ns, deployment="svc",
                           start=t0 - 60, end=t_patch + 30, step=1.0)  # fmt: skip
            truth = series.times >= t0
            offline = run_recorded(policy, dataclasses.replace(series, regression=truth))
            trials.append({
                "t0": t0, "patch_after": t_patch - t0, "succeeded_after": t_done - t0,
                "overhead_seconds": t_patch - t0 - SUSTAINED,
                "operator_trigger_to_patch_seconds": own,
                "offline_rollguard_detection": offline.detection_delay_seconds,
                "writes": cost,
                "decision_writes": decision_writes(seen, svc.ns),
            })  # fmt: skip
            print(f"trial {i + 1}/{args.trials}: patched {t_patch - t0:.1f}s after the breach, "
                  f"Succeeded after {t_done - t0:.1f}s", file=sys.stderr)  # fmt: skip
        # The comparison's record: a breach that nothing rolls back (DryRun), 2 minutes long.
        t_ref = time.time()
        reference.set_profile("errors")
        time.sleep(REFERENCE_SECONDS)
        ref_series = fetch(source=source, policy=policy, namespace=reference.ns, deployment="svc",
                           start=t_ref - 60, end=t_ref + REFERENCE_SECONDS, step=1.0)  # fmt: skip
        ref_series = dataclasses.replace(ref_series, regression=ref_series.times >= t_ref)
        records = {p: fetch(source=source, policy=policy, namespace=b.ns, deployment="svc",
                            start=noisy_from, end=time.time(), step=1.0)
                   for p, b in baselines.items()}  # fmt: skip
    finally:
        if operator is not None:
            operator.stop()
        proxy.stop()
        environment.stop()
    print("replaying the records ...", file=sys.stderr)
    false_rollbacks = {
        p: rollguard_false_rollbacks(r, policy, interval=interval) for p, r in records.items()
    }
    over = {p: checks_over_limit(r, limit, interval=interval) for p, r in records.items()}
    counts = {
        name: calibrate(list(records.values()), analysis, count_ranges[name], interval=interval)
        for name, analysis in analyses.items()
    }
    comparison = detection(ref_series, policy, analyses, counts, interval=interval)
    overheads = [t["overhead_seconds"] for t in trials]
    own_ms = [
        t["operator_trigger_to_patch_seconds"] * 1000
        for t in trials
        if t["operator_trigger_to_patch_seconds"] is not None
    ]
    overhead_intervals = summary(overheads, 1 / interval)
    trigger_ms = summary(own_ms)
    tail = tail_label(len(trials))
    result = {
        "settings": {"trials": len(trials), "evaluation_interval": interval,
                     "sustained_for": SUSTAINED, "scrape_interval": SCRAPE,
                     "rule_check_interval": interval, "limit": limit,
                     "recent_samples": args.recent_samples or None,
                     "rate_window": args.rate_window, "seed": args.seed,
                     "analysis_seconds": args.analysis_seconds, "argo_count": checks,
                     "argo_consecutive_error_limit": ARGO_CONSECUTIVE_ERROR_LIMIT,
                     "flagger_iterations": checks,
                     "reference_breach_seconds": REFERENCE_SECONDS},
        "percentiles": f"p50 and {tail} over {len(trials)} trials (p99 needs 100 trials, "
                       "p95 20; below that the maximum)",
        "overhead_intervals": overhead_intervals,
        "overhead_scrapes": summary(overheads, 1 / SCRAPE),
        "operator_trigger_to_patch_ms": trigger_ms,
        "goals": {
            "overhead_p50_intervals": goal(overhead_intervals, "p50",
                                           GOALS["overhead_p50_intervals"], needs=1),
            "overhead_p95_intervals": goal(overhead_intervals, "p95",
                                           GOALS["overhead_p95_intervals"], needs=20),
            "trigger_to_patch_p99_ms": goal(trigger_ms, "p99",
                                            GOALS["trigger_to_patch_p99_ms"], needs=100),
        },
        "writes_per_decision_p50": {k: pct([t["writes"][k] for t in trials], 50)
                                    for k in trials[0]["writes"]},
        "baseline_record_seconds": {p: float(r.times[-1] - r.times[0])
                                    for p, r in records.items()},
        "baseline_checks_over_limit": over,
        "baseline_false_alarms": {
            "rollguard_false_rollbacks_per_phase": false_rollbacks,
            "argo_failure_limit": counts["argo"],
            "flagger_threshold": counts["flagger"],
        },
        "comparison_detection_seconds": comparison,
        "trials": trials,
    }  # fmt: skip
    write_bench_result(args.out, result)
    print(f"breach-to-rollback over N = {len(trials)} trials (interval {interval:g}s, "
          f"sustainedFor {SUSTAINED:g}s, scrape {SCRAPE:g}s, recentSamples "
          f"{args.recent_samples or 'off'}, rate[{args.rate_window}]):")  # fmt: skip
    for t in trials:
        print(f"  patched {t['patch_after']:5.1f}s  Succeeded {t['succeeded_after']:5.1f}s  "
              f"overhead {t['overhead_seconds']:5.1f}s  | its series replayed offline: "
              f"{_s(t['offline_rollguard_detection'])}")  # fmt: skip
    o, g = overhead_intervals, result["goals"]
    print(f"detection overhead (N = {o['n']}): p50 {o['p50']:.2f}, {tail} {o[tail]:.2f} "
          f"evaluation intervals; p50 {result['overhead_scrapes']['p50']:.1f} scrape intervals; "
          f"goal p50 <= 1.5: {_verdict(g['overhead_p50_intervals'])}, "
          f"p95 <= 2.5: {_verdict(g['overhead_p95_intervals'])}")  # fmt: skip
    if trigger_ms.get("n"):
        m = trigger_ms
        print(f"operator, decision created -> patch (N = {m['n']}): p50 {m['p50']:.0f} ms, "
              f"{tail_label(m['n'])} {m[tail_label(m['n'])]:.0f} ms; goal p99 <= 300 ms: "
              f"{_verdict(g['trigger_to_patch_p99_ms'])}")  # fmt: skip
    w = result["writes_per_decision_p50"]
    print(f"API writes per decision (p50): {w['decision']:.0f} to the decision, "
          f"{w['deployment']:.0f} Deployment patch, {w['events']:.0f} Events; and "
          f"{w['modeldeployment']:.0f} ModelDeployment status writes meanwhile")  # fmt: skip
    seconds = result["baseline_record_seconds"]
    listed = ", ".join(f"{p} {n[0]} of {n[1]}" for p, n in over.items())
    print(f"baselines, {min(seconds.values()):.0f}s each ({interval:g} s checks over the limit: "
          f"{listed}): rollguard false rollbacks over every phase "
          f"{ {p: sum(x) for p, x in false_rollbacks.items()} }; for none, Argo-style needs "
          f"failureLimit {_n(counts['argo'])} (count {checks}), Flagger-style threshold "
          f"{_n(counts['flagger'])} (iterations {checks})")  # fmt: skip
    print(f"detection on one {REFERENCE_SECONDS:.0f}s breach left in place (DryRun), all three "
          f"checking every {interval:g}s, at each of the {round(interval)} phases: "
          + "; ".join(f"{name} {_range(xs)}" for name, xs in comparison.items()))  # fmt: skip
    print(f"wrote {args.out}")
    return 0


def _verdict(g: dict[str, Any]) -> str:
    if g["met"] is None:
        return f"not measured ({g['why']}; N = {g['n']})"
    return "met" if g["met"] else "MISSED"


def _n(x: int | None) -> str:
    return "none works" if x is None else str(x)


def _range(xs: list[float | None]) -> str:
    found = [x for x in xs if x is not None]
    missed = f", {len(xs) - len(found)} missed" if len(found) < len(xs) else ""
    if not found:
        return f"never{missed}"
    return f"{min(found):.0f}-{max(found):.0f}s (median {pct(found, 50):.0f}s{missed})"


def _s(x: float | None) -> str:
    return "   -  " if x is None else f"{x:5.1f}s"


if __name__ == "__main__":
    sys.exit(main())
