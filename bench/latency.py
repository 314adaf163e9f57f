"""Breach-to-rollback latency on the real local environment, and the same recorded series
through canary-analysis rules in the style of Argo Rollouts and Flagger.

Run: ``make bench-latency`` (or ``.venv/bin/python bench/latency.py [--trials 5]``). Starts a
fresh local environment (control plane, Prometheus scraping every second, workload simulator)
and the operator as deploy/'s ServiceAccount; prints the figures and writes them to
``bench/results/latency.json``. Not a test: nothing is asserted.

Each trial: a fresh namespace with a healthy Deployment, its ModelDeployment and a policy
(interval 5 s, window 30 s, Rollback at score >= 0.5 sustained 10 s, inside the auto-approval
boundary); once it is judged Healthy the Deployment switches to the ``errors`` profile at t0.
Measured: the Deployment patched back (t_patch) and the decision ``Succeeded`` (t_done).
Detection overhead = t_patch - t0 - sustainedFor, in evaluation intervals and in scrape
intervals; and the operator's own latency from the decision's creation to the patch (its
RollbackRecommended and RollbackExecuted audit lines).

Decision cost: the operator reaches the API server through a counting proxy
(``devenv.apiproxy``, pass-through); each trial counts the operator's writes in the trial's
namespace from t0 until the decision is final and exported, by kind: the decision (create
and status), the Deployment patch, Events, and the ModelDeployment's status (per evaluation,
not per decision).

Comparison: a rollback cuts a trial's breach short, so a rule that needs more checks never
gets them on that record. The comparison uses a breach left in place instead: a DryRun
``reference`` service runs the ``errors`` profile for 2 minutes, and its error-ratio series
(1 s resolution, from Prometheus) is replayed through rollguard's decision core
(``run_recorded``) at every phase of the evaluation grid and through two rules on the same
query at every phase of their check grid: Argo-Rollouts style (a measurement every 10 s,
failed when above the threshold; an analysis run of 10 measurements fails when its failures
exceed ``failureLimit``) and Flagger style (a check every 10 s, rollback after ``threshold``
failed checks within 10). Their threshold is the policy's limit (objective + margin); their
count is the smallest that raises no alarm on a ``noisy`` and a ``spiky`` service recorded
alongside for the whole run (rollguard is replayed on both too): the same false-alarm rate,
zero. Each trial's own record is replayed through rollguard too, as a check of the live
figure. The policy tests its newest 5 samples too (``--recent-samples``); each breach comes
at a random phase of the evaluation grid (``--seed``).
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import tempfile
import time
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
from rollguard.domain.loading import parse_policy
from rollguard.domain.recorded import run_recorded
from rollguard.domain.series import Series
from rollguard.monitoring.backtest import fetch
from rollguard.monitoring.prometheus import PrometheusSource

GROUP, VERSION = "rollguard.dev", "v1alpha1"
OUT = Path(__file__).parent / "results" / "latency.json"
INTERVAL, SUSTAINED, SCRAPE, CHECK = 5.0, 10.0, 1.0, 10.0
REFERENCE_SECONDS = 120.0  # the breach the comparison replays
RUN = 10  # measurements per analysis run of the canary-style rules (100 s)
POLICY: dict[str, Any] = fast_policy(
    interval="5s", window="30s", sustained_for="10s", validation_window="10s"
)
POLICY["safety"]["maxActionsPerWindow"]["count"] = 5
LIMIT = 0.015  # objective 0.01 + margin 0.005


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
    k = round((t - series.start) / series.step)
    if not 0 <= k < series.values.shape[1] or not series.mask[0, k]:
        return None
    return float(series.values[0, k])


def argo_detection(series: Series, t0: float, failure_limit: int) -> float | None:
    """Argo Rollouts style: a measurement every CHECK seconds, failed when above LIMIT; an
    analysis run of RUN measurements fails when its failures exceed failureLimit (runs follow
    each other, as a background analysis restarted per step would). Seconds after t0, or None."""
    failures: list[bool] = []
    for t in np.arange(series.start + CHECK, series.times[-1] + 1e-9, CHECK):
        value = _value_at(series, float(t))
        failures = [*failures[-(RUN - 1) :], value is not None and value > LIMIT]
        if sum(failures) > failure_limit:
            return float(t) - t0
    return None


def flagger_detection(series: Series, t0: float, threshold: int) -> float | None:
    """Flagger style: a check every CHECK seconds (its minimum interval is 10 s); roll back
    after ``threshold`` failed checks within an analysis of RUN checks."""
    return argo_detection(series, t0, threshold - 1)


def shifted(series: Series, k: int) -> Series:
    """The record without its first ``k`` samples: the same data at another phase of an
    evaluation or check grid that starts with the record."""
    return dataclasses.replace(
        series,
        start=series.start + k * series.step,
        values=series.values[:, k:],
        mask=series.mask[:, k:],
        regression=None if series.regression is None else series.regression[k:],
    )


def calibrate(baselines: list[Series], detect: Any) -> int:
    """The smallest count with no alarm on any of the baseline records."""
    for count in range(RUN):
        if all(detect(record, 0.0, count) is None for record in baselines):
            return count
    return RUN  # never fires


# --- the run ------------------------------------------------------------------------------------


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


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/latency.py", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5, help="trials (5)")
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
        "--interval", type=float, default=INTERVAL, help="evaluation.interval, seconds (5)"
    )
    parser.add_argument("--out", type=Path, default=OUT, help=f"result file ({OUT.name})")
    args = parser.parse_args(argv)
    interval = float(args.interval)
    POLICY["evaluation"]["interval"] = f"{interval:g}s"
    query = POLICY["signals"][0]["query"]
    POLICY["signals"][0]["query"] = query.replace("[10s]", f"[{args.rate_window}]")
    rng = np.random.default_rng(args.seed)
    if args.recent_samples:
        POLICY["evaluation"]["recentSamples"] = args.recent_samples
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
        policy = parse_policy(
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RollbackPolicy",
             "metadata": {"name": "svc"}, "spec": POLICY}, source="bench")  # fmt: skip
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
                "series": series,
            })  # fmt: skip
            print(f"trial {i}: patched {t_patch - t0:.1f}s after the breach, "
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
        false_rollbacks = {p: run_recorded(policy, dataclasses.replace(
            r, regression=np.zeros(r.values.shape[1], dtype=np.bool_))).false_rollbacks
            for p, r in records.items()}  # fmt: skip
        checks_over_limit = {p: _checks_over_limit(r) for p, r in records.items()}
        failure_limit = calibrate(list(records.values()), argo_detection)
        threshold = calibrate(list(records.values()), flagger_detection)
        noisy_series = records["noisy"]
        for t in trials:
            t.pop("series")
        comparison = {
            "rollguard": [run_recorded(policy, shifted(ref_series, k)).detection_delay_seconds
                          for k in range(int(interval))],
            "argo": [argo_detection(shifted(ref_series, k), t_ref, failure_limit)
                     for k in range(int(CHECK))],
            "flagger": [flagger_detection(shifted(ref_series, k), t_ref, threshold)
                        for k in range(int(CHECK))],
        }  # fmt: skip
    finally:
        if operator is not None:
            operator.stop()
        proxy.stop()
        environment.stop()
    overheads = [t["overhead_seconds"] for t in trials]
    own = [
        t["operator_trigger_to_patch_seconds"]
        for t in trials
        if t["operator_trigger_to_patch_seconds"] is not None
    ]
    result = {
        "settings": {"evaluation_interval": interval, "sustained_for": SUSTAINED,
                     "scrape_interval": SCRAPE, "rule_check_interval": CHECK, "limit": LIMIT,
                     "recent_samples": args.recent_samples or None,
                     "rate_window": args.rate_window},
        "noisy_record_seconds": noisy_series.times[-1] - noisy_series.times[0],
        "baseline_checks_over_limit": checks_over_limit,
        "noisy_false_alarms": {"rollguard": false_rollbacks, "argo_failure_limit": failure_limit,
                               "flagger_threshold": threshold},
        "overhead_intervals": {"p50": pct(overheads, 50) / interval, "p95": pct(overheads, 95) / interval},
        "overhead_scrapes": {"p50": pct(overheads, 50) / SCRAPE, "p95": pct(overheads, 95) / SCRAPE},
        "operator_trigger_to_patch_ms": {"p50": pct(own, 50) * 1000, "p99": pct(own, 99) * 1000} if own else None,
        "writes_per_decision": {k: pct([t["writes"][k] for t in trials], 50)
                                for k in trials[0]["writes"]},
        "comparison_detection_seconds": comparison,
        "trials": trials,
    }  # fmt: skip
    write_bench_result(args.out, result)
    print(f"breach-to-rollback over {len(trials)} trials (interval {interval:g}s, sustainedFor "
          f"{SUSTAINED:g}s, scrape {SCRAPE:g}s, recentSamples "
          f"{args.recent_samples or 'off'}, rate[{args.rate_window}]):")  # fmt: skip
    for t in trials:
        print(f"  patched {t['patch_after']:5.1f}s  Succeeded {t['succeeded_after']:5.1f}s  "
              f"overhead {t['overhead_seconds']:5.1f}s  | its series replayed offline: "
              f"{_s(t['offline_rollguard_detection'])}")  # fmt: skip
    o = result["overhead_intervals"]
    print(f"detection overhead: p50 {o['p50']:.2f}, p95 {o['p95']:.2f} evaluation intervals "
          f"(goal 1.5 / 2.5); p50 {result['overhead_scrapes']['p50']:.1f} scrape intervals")  # fmt: skip
    if result["operator_trigger_to_patch_ms"]:
        m = result["operator_trigger_to_patch_ms"]
        print(f"operator, decision created -> patch: p50 {m['p50']:.0f} ms, p99 {m['p99']:.0f} ms")
    w = result["writes_per_decision"]
    print(f"API writes per decision (p50): {w['decision']:.0f} to the decision, "
          f"{w['deployment']:.0f} Deployment patch, {w['events']:.0f} Events; and "
          f"{w['modeldeployment']:.0f} ModelDeployment status writes meanwhile")  # fmt: skip
    over = ", ".join(f"{p} {n[0]} of {n[1]}" for p, n in checks_over_limit.items())
    print(f"baselines, {result['noisy_record_seconds']:.0f}s each (10 s checks over the limit: "
          f"{over}): rollguard false rollbacks {false_rollbacks}; for none, Argo-style needs "
          f"failureLimit {failure_limit}, Flagger-style threshold {threshold}")  # fmt: skip
    print(f"detection on one {REFERENCE_SECONDS:.0f}s breach left in place (DryRun), every phase "
          f"of each grid: " + "; ".join(f"{name} {_range(xs)}" for name, xs in comparison.items()))  # fmt: skip
    print(f"wrote {args.out}")
    return 0


def _checks_over_limit(series: Series) -> tuple[int, int]:
    """(checks above LIMIT, checks) at every CHECK seconds of a record."""
    values = [_value_at(series, float(t))
              for t in np.arange(series.start + CHECK, series.times[-1] + 1e-9, CHECK)]  # fmt: skip
    return sum(v is not None and v > LIMIT for v in values), len(values)


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
