"""The operator's cost at fleet scale: 500, 1,000 and 2,000 ModelDeployments on one replica.

Run: ``make bench`` (or ``PYTHONPATH=tools .venv/bin/python bench/scale.py [--sizes
500,1000,2000] [--queries model|mesh] [--out FILE]``). ``--queries mesh`` runs the policy with
three signals in mesh and model-server shapes (Istio workload labels, a pod-name regex, an
envoy cluster name; ``MESH_SIGNALS``) and writes ``bench/results/scale-mesh.json``.
Starts a fresh local environment (control plane with kwok, Prometheus scraping every 5 s,
the workload simulator serving live metrics for every Deployment), and the operator as
deploy/'s ServiceAccount, reaching the API server through a counting proxy
(``devenv.apiproxy``) and Prometheus through a counting one (``devenv.faultproxy``). Prints
the figures and writes ``bench/results/scale.json``. Not a test: nothing is asserted.

The fleet grows in steps to each size: Deployments of one replica (healthy profile), each
with a ModelDeployment bound round-robin to ``--policies`` RollbackPolicies (interval 15 s,
window 2 min, one error-ratio signal). Once every ModelDeployment has been evaluated, the
operator is watched for ``--cycles`` evaluation intervals:

- cycle time: ``rollguard_cycle_duration_seconds`` (mean, and the upper bound of the highest
  bucket that was hit), against the goal of 20% of the interval;
- CPU: the operator process's user + system time over the window, in cores;
- memory: its peak RSS (VmHWM);
- PromQL queries and API requests per interval (the proxies' counts; watches excluded), and
  the PromQL queries Prometheus answered with an error (its own timeout), which are retried;
- event-loop stalls: ``rollguard_event_loop_lag_seconds`` observations over 100 ms, and
  garbage-collection pauses (``rollguard_gc_pause_seconds``), one suspect of the stalls.

All sizes are measured in one run, on one operator process watching the growing fleet (its
uptime at each measurement is recorded: the operator freezes its heap 90 s after startup).
The result file holds exactly what this run measured, with the commit and the date, and the
goals at 2,000 (cycle mean <= 20% of the interval, <= 0.5 core, <= 300 MiB peak RSS, no stall
over 100 ms, PromQL queries per interval one per signal and policy at every size) each marked
met or not; a size left out of ``--sizes`` is not measured, and neither are its goals.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from kubernetes import client

import devenv.testing as kit
from devenv.apiproxy import ApiProxy
from devenv.faultproxy import FaultProxy
from devenv.launcher import Environment, build_controlplane
from devenv.operatorproc import OperatorProcess, start_operator

GROUP, VERSION = "rollguard.dev", "v1alpha1"
OUT = Path(__file__).parent / "results" / "scale.json"
NAMESPACE = "fleet"
INTERVAL = 15.0
SCRAPE = 5.0
POLICY = kit.fast_policy(interval="15s", window="2m", sustained_for="30s")
GOAL_SIZE = 2000
# --queries mesh: the same policy with the signals in the shapes meshes, proxies and model
# servers expose (the simulator serves those families too), each one batched.
MESH_SIGNALS = {
    "error_rate": (
        'sum(rate(istio_requests_total{reporter="destination",'
        'destination_workload_namespace="$namespace",destination_workload="$deployment",'
        'response_code=~"5.."}[10s])) / sum(rate(istio_requests_total{reporter="destination",'
        'destination_workload_namespace="$namespace",destination_workload="$deployment"}[10s]))'
    ),
    "latency_p99": (
        "histogram_quantile(0.99, sum by (le) (rate(model_pod_request_duration_seconds_bucket"
        '{namespace="$namespace",pod=~"$deployment-[a-z0-9]+-[a-z0-9]+"}[10s])))'
    ),
    "edge_errors": (
        "sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name="
        '"${namespace}_${deployment}-canary_80",envoy_response_code=~"5.."}[10s]))'
    ),
}
GOALS = {
    "cycle_mean_seconds": 0.2 * INTERVAL,
    "cpu_cores": 0.5,
    "peak_rss_mib": 300.0,
    "loop_stalls_over_100ms": 0,
}


def _metrics(operator: OperatorProcess) -> str:
    with urllib.request.urlopen(operator.metrics_url, timeout=10) as answer:
        return str(answer.read().decode())


def _samples(text: str, name: str) -> dict[str, float]:
    """``name``'s samples by their label string (``""`` without labels)."""
    found: dict[str, float] = {}
    for m in re.finditer(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", text, re.M):
        found[m.group(1) or ""] = float(m.group(2))
    return found


def _total(text: str, name: str) -> float:
    return sum(_samples(text, name).values())


def _buckets(text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts of a histogram, summed over its other labels, by ``le``."""
    out: dict[float, float] = {}
    for labels, value in _samples(text, f"{name}_bucket").items():
        le = re.search(r'le="([^"]+)"', labels)
        if le:
            bound = float("inf") if le.group(1) == "+Inf" else float(le.group(1))
            out[bound] = out.get(bound, 0.0) + value
    return out


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _uptime_seconds(pid: int) -> float:
    """Seconds since the process started."""
    started = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    booted = float(Path("/proc/uptime").read_text().split()[0])
    return booted - started / os.sysconf("SC_CLK_TCK")


def mesh_policy() -> dict[str, Any]:
    """POLICY with MESH_SIGNALS (error_rate keeps its limits; the others only watched)."""
    error = {**POLICY["signals"][0], "query": MESH_SIGNALS["error_rate"]}
    watched = [
        {"name": "latency_p99", "query": MESH_SIGNALS["latency_p99"], "objective": {"max": 5.0},
         "critical": 50.0},
        {"name": "edge_errors", "query": MESH_SIGNALS["edge_errors"], "objective": {"max": 1e6},
         "critical": 1e7},
    ]  # fmt: skip
    return {**POLICY, "signals": [error, *watched]}


def goals(results: list[dict[str, Any]], expected_queries: float) -> dict[str, Any]:
    """Each goal met or not, from the figures measured; goals at a size not measured are
    left out."""
    out: dict[str, Any] = {}
    at = next((r for r in results if r["model_deployments"] == GOAL_SIZE), None)
    if at is not None:
        for key, bound in GOALS.items():
            value = at[key]
            out[f"{key}_at_{GOAL_SIZE}"] = {
                "goal": bound,
                "measured": value,
                "met": value is not None and value <= bound,
            }
    queries = {r["model_deployments"]: r["promql_queries_per_interval"] for r in results}
    out["promql_queries_per_interval_one_per_signal_and_policy"] = {
        "goal": expected_queries,
        "measured": queries,
        "met": all(abs(q - expected_queries) <= 0.5 for q in queries.values()),
    }
    return out


class Fleet:
    def __init__(self, api: client.ApiClient, policies: int, policy: dict[str, Any]) -> None:
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.policies = policies
        self.size = 0
        client.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
        for p in range(policies):
            self._create("rollbackpolicies", "RollbackPolicy", f"policy-{p}", policy)

    def _create(self, plural: str, kind: str, name: str, spec: dict[str, Any]) -> None:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name},
                "spec": spec}  # fmt: skip
        self.custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, body)

    def grow(self, size: int) -> None:
        for i in range(self.size, size):
            name = f"model-{i:04d}"
            self.apps.create_namespaced_deployment(
                NAMESPACE, kit.deployment_manifest(name, replicas=1)
            )
            self._create("modeldeployments", "ModelDeployment", name, {
                "deploymentRef": {"name": name},
                "policyRef": {"name": f"policy-{i % self.policies}"},
                "model": {"name": name, "version": "v1"},
                "approvedRevisions": [{"revision": 1}],
            })  # fmt: skip
        self.size = size

    def evaluated(self) -> int:
        items = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "modeldeployments"
        )["items"]
        return sum(1 for i in items if (i.get("status") or {}).get("lastEvaluation"))


def measure(
    operator: OperatorProcess, api_proxy: ApiProxy, prometheus: FaultProxy, cycles: int
) -> dict[str, Any]:
    assert operator.process is not None
    pid = operator.process.pid
    uptime = _uptime_seconds(pid)
    before = _metrics(operator)
    cpu0, t0, mark = _cpu_seconds(pid), time.monotonic(), time.monotonic()
    queries0 = sum(prometheus.requests.values())
    failed0 = sum(n for code, n in prometheus.answers.items() if code >= 300)
    time.sleep(cycles * INTERVAL)
    after = _metrics(operator)
    elapsed = time.monotonic() - t0
    cpu = _cpu_seconds(pid) - cpu0
    requests = [r for r in api_proxy.since(mark) if not r.watch]
    intervals = elapsed / INTERVAL
    name = "rollguard_cycle_duration_seconds"
    count = _total(after, f"{name}_count") - _total(before, f"{name}_count")
    total = _total(after, f"{name}_sum") - _total(before, f"{name}_sum")
    b0, b1 = _buckets(before, name), _buckets(after, name)
    hit = [le for le in sorted(b1) if b1[le] - b0.get(le, 0.0) > 0]
    # The highest bucket whose count grew bounds the slowest cycle from above.
    slowest = next((le for le in sorted(b1) if b1[le] - b0.get(le, 0.0) >= count), None)
    lag = "rollguard_event_loop_lag_seconds"
    l0, l1 = _buckets(before, lag), _buckets(after, lag)
    ticks = l1.get(float("inf"), 0.0) - l0.get(float("inf"), 0.0)
    under = l1.get(0.1, 0.0) - l0.get(0.1, 0.0)
    worst_lag = next((le for le in sorted(l1) if l1[le] - l0.get(le, 0.0) >= ticks), None)
    gc_name = "rollguard_gc_pause_seconds"
    g0, g1 = _buckets(before, gc_name), _buckets(after, gc_name)
    pauses = g1.get(float("inf"), 0.0) - g0.get(float("inf"), 0.0)
    gc_short = g1.get(0.1, 0.0) - g0.get(0.1, 0.0)
    worst_gc = next((le for le in sorted(g1) if g1[le] - g0.get(le, 0.0) >= pauses), None)
    return {
        "operator_uptime_seconds": round(uptime),
        "seconds": round(elapsed, 1),
        "cycles": int(count),
        "cycle_mean_seconds": round(total / count, 3) if count else None,
        "cycle_max_bucket_seconds": slowest,
        "cycle_buckets_hit": hit,
        "cpu_cores": round(cpu / elapsed, 3),
        "rss_mib": round(_status_kib(pid, "VmRSS") / 1024, 1),
        "peak_rss_mib": round(_status_kib(pid, "VmHWM") / 1024, 1),
        "promql_queries_per_interval": round(
            (sum(prometheus.requests.values()) - queries0) / intervals, 1
        ),
        # Answered with an error (503: Prometheus' own query timeout): retried by the operator.
        "promql_failed_per_interval": round(
            (sum(n for code, n in prometheus.answers.items() if code >= 300) - failed0) / intervals,
            1,
        ),
        "api_requests_per_interval": round(len(requests) / intervals, 1),
        "api_writes_per_interval": round(
            sum(1 for r in requests if r.method not in ("GET", "HEAD")) / intervals, 1
        ),
        "loop_timer_ticks": int(ticks),
        "loop_stalls_over_100ms": int(ticks - under),
        "loop_lag_max_bucket_seconds": worst_lag,
        "gc_pauses": int(pauses),
        "gc_pauses_over_100ms": int(pauses - gc_short),
        "gc_pause_max_bucket_seconds": worst_gc,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/scale.py", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,1000,2000", help="fleet sizes (500,1000,2000)")
    parser.add_argument("--policies", type=int, default=4, help="RollbackPolicies (4)")
    parser.add_argument("--cycles", type=int, default=4, help="intervals measured per size (4)")
    parser.add_argument(
        "--queries", choices=("model", "mesh"), default="model",
        help="signal queries: the model server's labels (model), or Istio-, pod-name- and "
        "envoy-style ones (mesh, written to scale-mesh.json)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help=f"result file ({OUT.name})")
    args = parser.parse_args(argv)
    mesh = args.queries == "mesh"
    policy = mesh_policy() if mesh else POLICY
    out = args.out or (OUT.with_name("scale-mesh.json") if mesh else OUT)
    # Stopped with SIGTERM too, the environment and the operator are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="rollguard-scale-"))
    environment = Environment(
        work_dir=work / "env",
        bin_dir=build_controlplane(),
        scrape=f"{SCRAPE:g}s",
        sim_families=("istio", "pod", "envoy") if mesh else (),
    )
    env = environment.start()
    api_proxy = ApiProxy(env.api_server, Path(env.work_dir) / "pki").start()
    prometheus = FaultProxy(env.prometheus_url).start()
    operator = None
    results: list[dict[str, Any]] = []
    try:
        kubectl = kit.kubectl_for(env)
        (work / "op").mkdir()
        operator = start_operator(
            env, kubectl, work / "op", api_proxy=api_proxy, prometheus_url=prometheus.url,
            extra=[f"--scrape-interval={SCRAPE:g}"],
        )  # fmt: skip
        fleet = Fleet(kit.api_client_for(env, "admin"), args.policies, policy)
        for size in sizes:
            started = time.monotonic()
            fleet.grow(size)
            created = time.monotonic() - started
            print(f"{size}: created in {created:.0f}s", file=sys.stderr)
            kit.poll(
                f"{size} evaluated", lambda n=size: fleet.evaluated() >= n, timeout=1200, every=2.0
            )
            evaluated = time.monotonic() - started
            print(f"{size}: all evaluated after {evaluated:.0f}s", file=sys.stderr)
            figures = {"model_deployments": size, "created_seconds": round(created, 1),
                       "all_evaluated_seconds": round(evaluated, 1),
                       **measure(operator, api_proxy, prometheus, args.cycles)}  # fmt: skip
            results.append(figures)
            print(json.dumps(figures), file=sys.stderr)
    finally:
        if operator is not None:
            operator.stop()
        api_proxy.stop()
        prometheus.stop()
        environment.stop()
    result = {
        "settings": {"evaluation_interval": INTERVAL, "policies": args.policies,
                     "queries": args.queries,
                     "signal_queries": [s["query"] for s in policy["signals"]],
                     "signals_per_policy": len(policy["signals"]), "scrape_interval": SCRAPE,
                     "cycles_measured": args.cycles, "sizes": sizes},
        "goals": goals(results, float(args.policies * len(policy["signals"]))),
        "sizes": results,
    }  # fmt: skip
    kit.write_bench_result(out, result)
    print(f"{'mdeps':>6} {'cycle mean':>10} {'cycle max<=':>11} {'cores':>6} {'peak RSS':>9} "
          f"{'queries/int':>11} {'failed/int':>10} {'API req/int':>11} {'writes/int':>10} {'stalls>100ms':>12}")  # fmt: skip
    for r in results:
        print(f"{r['model_deployments']:>6} {r['cycle_mean_seconds']!s:>10} "
              f"{r['cycle_max_bucket_seconds']!s:>11} {r['cpu_cores']:>6} "
              f"{r['peak_rss_mib']:>8}M {r['promql_queries_per_interval']:>11} "
              f"{r['promql_failed_per_interval']:>10} "
              f"{r['api_requests_per_interval']:>11} {r['api_writes_per_interval']:>10} "
              f"{r['loop_stalls_over_100ms']:>12}")  # fmt: skip
    for name, g in result["goals"].items():
        print(f"goal {name}: <= {g['goal']}, measured {g['measured']}: "
              f"{'met' if g['met'] else 'MISSED'}")  # fmt: skip
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
