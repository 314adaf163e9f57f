"""Unit tests for the pure part of the workload simulator (no cluster, no sockets)."""

from __future__ import annotations

import logging
import math
import re
from collections import defaultdict

import pytest

from devenv.workload.exposition import escape_label_value
from devenv.workload.families import EXTRA_FAMILIES, parse_families, pod_names
from devenv.workload.fleet import Simulator
from devenv.workload.kinds import WorkloadInfo, extract_deployment
from devenv.workload.profile import BUCKETS, PROFILES, parse_profile
from devenv.workload.server import build_parser
from devenv.workload.watch import GoneError, handle_event

NS = "ml"


def info(
    name: str, profile: str | None = "healthy", replicas: int = 1, **extra: str
) -> WorkloadInfo:
    env: dict[str, str | None] | None = None
    if profile is not None:
        env = {"SIM_PROFILE": profile, **extra}
    return WorkloadInfo(NS, name, env, replicas)


def make_sim(*deps: WorkloadInfo, seed: int = 7) -> Simulator:
    sim = Simulator(seed=seed, tick_seconds=0.25)
    for d in deps:
        sim.apply(d)
    return sim


# --- a tiny exposition-format parser ---------------------------------------------------------

_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE = re.compile(
    rf"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    rf"(?:\{{(?P<labels>{_LABEL}(?:,{_LABEL})*)?\}})?"
    r" (?P<value>[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+|Inf|NaN))$"
)
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
_COMMENT = re.compile(r"^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$")

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _unescape(v: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), v)


def parse_exposition(text: str) -> tuple[Series, dict[str, str]]:
    """Parse and validate text format 0.0.4; returns samples and family types."""
    assert text.endswith("\n")
    samples: Series = {}
    types: dict[str, str] = {}
    seen_families: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            m = _COMMENT.match(line)
            assert m, line
            if m.group(1) == "TYPE":
                assert m.group(2) not in types, f"duplicate TYPE {line}"
                assert m.group(3) in ("counter", "gauge", "histogram", "summary", "untyped")
                types[m.group(2)] = m.group(3)
            continue
        m = _SAMPLE.match(line)
        assert m, f"bad sample line: {line!r}"
        name = m.group("name")
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types, f"sample without TYPE: {line}"
        # Samples of one family must be contiguous.
        if not seen_families or seen_families[-1] != family:
            assert family not in seen_families, f"family {family} not contiguous"
            seen_families.append(family)
        labels = tuple((k, _unescape(v)) for k, v in _LABEL_RE.findall(m.group("labels") or ""))
        key = (name, labels)
        assert key not in samples, f"duplicate series {line}"
        samples[key] = float(m.group("value"))
    return samples, types


def series_for(
    samples: Series, name: str, deployment: str
) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        labels: v
        for (n, labels), v in samples.items()
        if n == name and ("deployment", deployment) in labels
    }


def requests_by_code(sim: Simulator, deployment: str) -> dict[str, int]:
    dep = sim.get(NS, deployment)
    assert dep is not None
    return dict(zip(("200", "400", "500", "503"), dep.codes.tolist(), strict=True))


def five_xx_fraction(counts: dict[str, int]) -> float:
    total = sum(counts.values())
    return (counts["500"] + counts["503"]) / total if total else 0.0


def quantile_from_buckets(q: float, cumulative: list[int]) -> float:
    """Same linear interpolation as PromQL histogram_quantile()."""
    total = cumulative[-1]
    rank = q * total
    bounds = [*BUCKETS, math.inf]
    prev_bound, prev_count = 0.0, 0
    for bound, count in zip(bounds, cumulative, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return prev_bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound, count
    raise AssertionError("unreachable")


# --- profile parsing -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_known_profiles_parse_without_warnings(name: str) -> None:
    profile, warnings = parse_profile({"SIM_PROFILE": name})
    assert profile.name == name
    assert warnings == []


def test_profile_name_is_case_and_whitespace_tolerant() -> None:
    profile, warnings = parse_profile({"SIM_PROFILE": "  Errors\n"})
    assert profile.name == "errors"
    assert warnings == []


@pytest.mark.parametrize("raw", ["bogus", "", None])
def test_unknown_profile_falls_back_to_healthy_with_warning(raw: str | None) -> None:
    profile, warnings = parse_profile({"SIM_PROFILE": raw})
    assert profile == PROFILES["healthy"]
    assert len(warnings) == 1
    assert "SIM_PROFILE" in warnings[0]


def test_overrides_apply() -> None:
    profile, warnings = parse_profile(
        {
            "SIM_PROFILE": "latency",
            "SIM_RPS": "5",
            "SIM_ERROR_RATE": "0.3",
            "SIM_LATENCY_MS": "250",
        }
    )
    assert warnings == []
    assert profile.name == "latency"
    assert profile.rps_per_replica == 5.0
    assert profile.server_error_rate == 0.3
    assert profile.latency_median_s == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("SIM_RPS", "fast"),
        ("SIM_RPS", "-1"),
        ("SIM_RPS", "nan"),
        ("SIM_RPS", "inf"),
        ("SIM_ERROR_RATE", "12"),
        ("SIM_ERROR_RATE", "-0.1"),
        ("SIM_ERROR_RATE", "x"),
        ("SIM_LATENCY_MS", "0"),
        ("SIM_LATENCY_MS", "abc"),
        ("SIM_LATENCY_MS", None),
    ],
)
def test_bad_overrides_keep_defaults_and_warn(key: str, value: str | None) -> None:
    profile, warnings = parse_profile({"SIM_PROFILE": "errors", key: value})
    assert profile == PROFILES["errors"]
    assert len(warnings) == 1
    assert key in warnings[0]


def test_unknown_profile_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    sim = Simulator(seed=1)
    with caplog.at_level(logging.WARNING, logger="devenv.workload.server"):
        for replicas in (1, 1, 2, 1):
            sim.apply(info("fraud", "wat", replicas=replicas))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "ml/fraud" in warnings[0].getMessage()


def test_change_logging(caplog: pytest.LogCaptureFixture) -> None:
    sim = Simulator(seed=1)
    with caplog.at_level(logging.INFO, logger="devenv.workload.server"):
        sim.apply(info("fraud", "healthy"))
        sim.apply(info("fraud", "healthy"))  # status-only MODIFIED: no log line
        sim.apply(info("fraud", "errors"))
        sim.remove(NS, "fraud")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert "added" in messages[0]
    assert "Deployment ml/fraud now serves profile errors" in messages[1]
    assert "removed" in messages[2]


# --- extraction from API objects -------------------------------------------------------------


def _deployment(
    env: list[dict[str, object]] | None,
    replicas: int | None = 3,
    second_env: list[dict[str, object]] | None = None,
) -> dict[str, object]:
    containers: list[dict[str, object]] = [{"name": "model", "image": "x"}]
    if env is not None:
        containers[0]["env"] = env
    if second_env is not None:
        containers.append({"name": "sidecar", "env": second_env})
    spec: dict[str, object] = {"template": {"spec": {"containers": containers}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"metadata": {"namespace": "ml", "name": "fraud", "resourceVersion": "42"}, "spec": spec}


def test_extract_deployment_reads_first_container_only() -> None:
    got = extract_deployment(
        _deployment([{"name": "SIM_PROFILE", "value": "errors"}, {"name": "SIM_RPS", "value": "3"}])
    )
    assert got == WorkloadInfo("ml", "fraud", {"SIM_PROFILE": "errors", "SIM_RPS": "3"}, 3)

    got = extract_deployment(
        _deployment(None, second_env=[{"name": "SIM_PROFILE", "value": "errors"}])
    )
    assert got is not None
    assert got.env is None


def test_extract_deployment_defaults() -> None:
    got = extract_deployment(
        _deployment([{"name": "SIM_PROFILE", "valueFrom": {"fieldRef": {}}}], replicas=None)
    )
    assert got == WorkloadInfo("ml", "fraud", {"SIM_PROFILE": None}, 1)
    got = extract_deployment(_deployment([{"name": "SIM_PROFILE", "value": "x"}], replicas=0))
    assert got is not None
    assert got.replicas == 1
    assert extract_deployment({"metadata": {}}) is None
    assert extract_deployment({}) is None


def test_watch_events_drive_membership() -> None:
    sim = Simulator(seed=1)
    obj = _deployment([{"name": "SIM_PROFILE", "value": "healthy"}])
    assert handle_event(sim, {"type": "ADDED", "raw_object": obj}, "1") == "42"
    assert sim.get("ml", "fraud") is not None

    obj2 = _deployment([{"name": "SIM_PROFILE", "value": "errors"}])
    obj2["metadata"] = {"namespace": "ml", "name": "fraud", "resourceVersion": "43"}
    assert handle_event(sim, {"type": "MODIFIED", "raw_object": obj2}, "42") == "43"
    dep = sim.get("ml", "fraud")
    assert dep is not None
    assert dep.profile.name == "errors"

    bookmark = {"type": "BOOKMARK", "raw_object": {"metadata": {"resourceVersion": "50"}}}
    assert handle_event(sim, bookmark, "43") == "50"

    # Template edited to drop SIM_PROFILE: no longer simulated.
    obj3 = _deployment([{"name": "OTHER", "value": "1"}])
    handle_event(sim, {"type": "MODIFIED", "raw_object": obj3}, "50")
    assert sim.get("ml", "fraud") is None

    handle_event(sim, {"type": "ADDED", "raw_object": obj}, "50")
    handle_event(sim, {"type": "DELETED", "raw_object": obj}, "51")
    assert sim.get("ml", "fraud") is None

    with pytest.raises(GoneError):
        handle_event(sim, {"type": "ERROR", "raw_object": {"code": 410}}, "51")


def test_sync_removes_deployments_missing_from_relist() -> None:
    sim = make_sim(info("a"), info("b"), info("c"))
    sim.tick(10)
    before = requests_by_code(sim, "a")
    sim.sync([info("a"), info("b", None), info("d")])
    assert sorted(sim.state()[NS]) == ["a", "d"]
    assert requests_by_code(sim, "a") == before  # survived the re-list untouched


# --- counters --------------------------------------------------------------------------------


def test_all_code_series_exist_from_first_scrape() -> None:
    sim = make_sim(info("fraud"))
    samples, types = parse_exposition(sim.render())
    codes = series_for(samples, "model_requests_total", "fraud")
    assert {dict(k)["code"] for k in codes} == {"200", "400", "500", "503"}
    assert all(v == 0 for v in codes.values())
    assert types["model_requests_total"] == "counter"
    assert types["model_request_duration_seconds"] == "histogram"
    assert types["model_revenue_total"] == "counter"
    assert types["sim_profile_info"] == "gauge"


def test_counters_monotonic_across_profile_changes() -> None:
    sim = make_sim(info("fraud", replicas=3))
    previous: Series = {}
    for profile in ["healthy", "errors", "latency", "silent", "revenue-drop", "noisy", "healthy"]:
        sim.apply(info("fraud", profile, replicas=3))
        for _ in range(20):
            sim.tick(5)
            if profile == "silent":
                continue
            samples, _ = parse_exposition(sim.render())
            for key, value in samples.items():
                if key[0].startswith("model_") and key in previous:
                    assert value >= previous[key], key
            previous.update(samples)
    # Nothing was reset: 7 x 25 s at 60 rps is about 10.5k requests.
    assert sum(requests_by_code(sim, "fraud").values()) > 9_500


def test_recreated_deployment_starts_from_zero() -> None:
    sim = make_sim(info("fraud"))
    sim.tick(40)
    assert sum(requests_by_code(sim, "fraud").values()) > 0
    sim.remove(NS, "fraud")
    assert "fraud" not in sim.render()
    sim.apply(info("fraud"))
    assert sum(requests_by_code(sim, "fraud").values()) == 0
    dep = sim.get(NS, "fraud")
    assert dep is not None
    assert dep.revenue == 0.0
    assert dep.latency_sum == 0.0


# --- profiles behave as advertised -----------------------------------------------------------


def test_errors_profile_5xx_fraction_vs_healthy() -> None:
    sim = make_sim(info("good"), info("bad", "errors"))
    sim.tick(1000)
    good = requests_by_code(sim, "good")
    bad = requests_by_code(sim, "bad")
    assert sum(good.values()) == pytest.approx(5000, rel=0.1)  # 20 rps x 250 s
    assert five_xx_fraction(good) < 0.01
    assert five_xx_fraction(bad) > 0.05
    assert 0.08 < five_xx_fraction(bad) < 0.16
    assert 0.002 < good["400"] / sum(good.values()) < 0.03


def test_latency_profile_p99_several_times_healthy() -> None:
    sim = make_sim(info("good", replicas=5), info("slow", "latency", replicas=5))
    sim.tick(1000)
    good, slow = sim.get(NS, "good"), sim.get(NS, "slow")
    assert good is not None
    assert slow is not None
    p99_good = quantile_from_buckets(0.99, good.buckets_cum.tolist())
    p99_slow = quantile_from_buckets(0.99, slow.buckets_cum.tolist())
    p50_good = quantile_from_buckets(0.5, good.buckets_cum.tolist())
    assert 0.03 < p50_good < 0.05
    assert 0.09 < p99_good < 0.16
    assert p99_slow > 3 * p99_good
    assert p99_slow >= 0.5
    # _sum is consistent with the buckets: mean of a lognormal(40ms, p99 120ms) is ~45 ms.
    assert good.latency_sum / good.buckets_cum[-1] == pytest.approx(0.0448, rel=0.05)


def test_revenue_drop_profile() -> None:
    sim = make_sim(info("good", replicas=2), info("cheap", "revenue-drop", replicas=2))
    sim.tick(400)
    good, cheap = sim.get(NS, "good"), sim.get(NS, "cheap")
    assert good is not None
    assert cheap is not None
    per_req_good = good.revenue / int(good.codes[0])
    per_req_cheap = cheap.revenue / int(cheap.codes[0])
    assert per_req_good == pytest.approx(0.05, rel=0.05)
    assert per_req_cheap / per_req_good == pytest.approx(0.4, rel=0.1)
    # Technical metrics stay healthy.
    assert five_xx_fraction(requests_by_code(sim, "cheap")) < 0.01


def test_silent_profile_renders_nothing_for_that_deployment() -> None:
    sim = make_sim(info("quiet", "silent"), info("loud"))
    sim.tick(20)
    text = sim.render()
    samples, _ = parse_exposition(text)
    assert "quiet" not in text  # in no family at all
    assert series_for(samples, "model_requests_total", "loud")
    # Coming back keeps counting from where it was (counters never reset).
    sim.apply(info("quiet", "healthy"))
    samples, _ = parse_exposition(sim.render())
    assert sum(series_for(samples, "model_requests_total", "quiet").values()) > 0


def _error_history(name: str, profile: str) -> tuple[list[tuple[int, int]], int]:
    """1,000 simulated seconds of one deployment of 10 replicas: the cumulative (total, 5xx)
    after each tick, and how many bursts began."""
    sim = make_sim(info(name, profile, replicas=10))
    history: list[tuple[int, int]] = []
    bursts = 0
    was_in_burst = False
    for _ in range(4000):
        sim.tick()
        dep = sim.get(NS, name)
        assert dep is not None
        codes = dep.codes.tolist()
        history.append((sum(codes), codes[2] + codes[3]))
        bursts += dep.in_burst and not was_in_burst
        was_in_burst = dep.in_burst
    return history, bursts


def _worst_ratio(history: list[tuple[int, int]], ticks: int) -> float:
    """The highest 5xx fraction over any ``ticks`` consecutive ticks."""
    return max(
        (history[i][1] - history[i - ticks][1]) / (history[i][0] - history[i - ticks][0])
        for i in range(ticks, len(history))
    )


def test_noisy_profile_stays_inside_margins_over_30s_windows() -> None:
    history, bursts = _error_history("noisy", "noisy")
    assert bursts >= 5, "noisy should actually burst"
    assert _worst_ratio(history, int(30 / 0.25)) < 0.01
    overall = history[-1][1] / history[-1][0]
    assert 0.001 < overall < 0.004


def test_spiky_bursts_cross_a_limit_at_their_height_but_not_over_30s() -> None:
    dep_sim = make_sim(info("s", "spiky"))
    dep = dep_sim.get(NS, "s")
    assert dep is not None
    assert dep.draws.code_p_burst[2] + dep.draws.code_p_burst[3] == pytest.approx(0.04)
    history, _ = _error_history("s", "spiky")
    assert _worst_ratio(history, 40) > 0.015  # a 10 s rate() passes a 1.5% limit at some burst
    assert _worst_ratio(history, 120) < 0.02  # over 30 s the bursts stay diluted


def test_noisy_bursts_raise_latency_and_errors() -> None:
    dep_sim = make_sim(info("n", "noisy"))
    dep = dep_sim.get(NS, "n")
    assert dep is not None
    assert dep.draws.code_p_burst[2] + dep.draws.code_p_burst[3] == pytest.approx(0.006)
    assert dep.draws.lat_burst[1] @ dep.draws.lat_burst[0] == pytest.approx(
        1.3 * float(dep.draws.lat[1] @ dep.draws.lat[0]), rel=0.01
    )


# --- determinism -----------------------------------------------------------------------------


def _scenario(seed: int) -> str:
    sim = make_sim(info("a", replicas=2), info("b", "noisy", replicas=4), seed=seed)
    sim.tick(50)
    sim.apply(info("a", "errors", replicas=2))
    sim.apply(info("c", "latency"))
    sim.tick(50)
    return sim.render()


def test_same_seed_same_output() -> None:
    assert _scenario(3) == _scenario(3)
    assert _scenario(3) != _scenario(4)


def test_deployment_stream_independent_of_other_deployments() -> None:
    # Per-deployment generators: adding a neighbour must not perturb an existing series.
    alone = make_sim(info("a"))
    crowded = make_sim(info("zzz", "errors"), info("a"), info("b", "noisy"))
    alone.tick(100)
    crowded.tick(100)
    assert requests_by_code(alone, "a") == requests_by_code(crowded, "a")


# --- exposition format -----------------------------------------------------------------------


def test_label_value_escaping() -> None:
    assert escape_label_value('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    weird_ns = 'we"ird\\ns\n'
    sim = Simulator(seed=1)
    sim.apply(WorkloadInfo(weird_ns, 'de"p', {"SIM_PROFILE": "healthy"}, 1))
    sim.tick(4)
    text = sim.render()
    assert 'namespace="we\\"ird\\\\ns\\n",deployment="de\\"p"' in text
    samples, _ = parse_exposition(text)
    labels = [dict(labels) for _, labels in samples]
    assert {lab["namespace"] for lab in labels if "namespace" in lab} == {weird_ns}
    assert {lab["destination_workload"] for lab in labels if "destination_workload" in lab} == {
        'de"p'
    }
    assert {lab["envoy_cluster_name"] for lab in labels if "envoy_cluster_name" in lab} == {
        f'{weird_ns}_de"p-canary_80'
    }
    assert {lab["pod"].rsplit("-", 2)[0] for lab in labels if "pod" in lab} == {'de"p'}


def test_exposition_is_well_formed_and_histograms_consistent() -> None:
    sim = make_sim(*(info(f"d{i}", p, replicas=i % 3 + 1) for i, p in enumerate(sorted(PROFILES))))
    sim.tick(200)
    samples, types = parse_exposition(sim.render())
    assert set(types) == {*BASE_FAMILIES, *EXTRA_TYPES}
    hist: dict[str, list[tuple[float, float]]] = defaultdict(list)
    counts: dict[str, float] = {}
    sums: dict[str, float] = {}
    requests: dict[str, float] = defaultdict(float)
    profiles: dict[str, str] = {}
    for (name, labels), value in samples.items():
        lab = dict(labels)
        dep = lab.get("deployment", "")
        if name == "model_request_duration_seconds_bucket":
            assert set(lab) == {"namespace", "deployment", "le"}
            hist[dep].append((float(lab["le"]), value))
        elif name == "model_request_duration_seconds_count":
            counts[dep] = value
        elif name == "model_request_duration_seconds_sum":
            sums[dep] = value
        elif name == "model_requests_total":
            requests[dep] += value
        elif name == "sim_profile_info":
            assert value == 1
            profiles[dep] = lab["profile"]
    assert profiles == {f"d{i}": p for i, p in enumerate(sorted(PROFILES)) if p != "silent"}
    for dep, buckets in hist.items():
        les = [le for le, _ in buckets]
        assert les == [*BUCKETS, math.inf]
        values = [v for _, v in buckets]
        assert values == sorted(values)
        assert values[-1] == counts[dep] == requests[dep]
        assert 0.005 * counts[dep] < sums[dep] < 5 * counts[dep]


def test_le_labels_spelled_like_official_client() -> None:
    text = make_sim(info("a")).render()
    assert 'le="0.005"' in text
    assert 'le="1.0"' in text
    assert 'le="+Inf"' in text


def test_state_summary() -> None:
    sim = make_sim(info("a", "errors", replicas=3, SIM_RPS="10"), info("q", "silent"))
    state = sim.state()
    assert state[NS]["a"]["profile"] == "errors"
    assert state[NS]["a"]["replicas"] == 3
    assert state[NS]["a"]["rps"] == pytest.approx(30.0)
    assert state[NS]["q"]["profile"] == "silent"


def test_simulator_rejects_bad_tick() -> None:
    with pytest.raises(ValueError, match="tick"):
        Simulator(seed=0, tick_seconds=0)


# --- other exporters' shapes -----------------------------------------------------------------

BASE_FAMILIES = {
    "model_requests_total": "counter",
    "model_request_duration_seconds": "histogram",
    "model_revenue_total": "counter",
    "sim_profile_info": "gauge",
}
EXTRA_TYPES = {
    "istio_requests_total": "counter",
    "model_pod_request_duration_seconds": "histogram",
    "envoy_cluster_upstream_rq": "counter",
    "traefik_service_requests_total": "counter",
    "seldon_api_executor_server_requests_seconds_count": "counter",
}
POD_NAME = re.compile(r"^(?P<deployment>.+)-(?P<hash>[a-z0-9]{9,10})-(?P<suffix>[a-z0-9]{5})$")


def _by_code(samples: Series, name: str, **pinned: str) -> dict[str, float]:
    """Values of a per-code counter whose labels include ``pinned``, by their code label."""
    found: dict[str, float] = {}
    for (n, labels), value in samples.items():
        lab = dict(labels)
        if n == name and all(lab.get(k) == v for k, v in pinned.items()):
            code = lab.get("code") or lab.get("response_code") or lab["envoy_response_code"]
            found[code] = value
    return found


def _pods(samples: Series, namespace: str, deployment: str) -> dict[str, dict[str, float]]:
    """Per pod of ``deployment``: its bucket counts by ``le``, plus ``_sum`` and ``_count``."""
    pods: dict[str, dict[str, float]] = defaultdict(dict)
    for (n, labels), value in samples.items():
        lab = dict(labels)
        if not n.startswith("model_pod_request_duration_seconds") or lab["namespace"] != namespace:
            continue
        m = POD_NAME.match(lab["pod"])
        assert m, lab["pod"]
        if m["deployment"] != deployment:
            continue
        key = lab["le"] if n.endswith("_bucket") else n.rsplit("_", 1)[1]
        pods[lab["pod"]][key] = value
    return dict(pods)


def _fleet() -> Simulator:
    return make_sim(
        info("fraud", replicas=3),
        info("fraud-v2", "errors", replicas=2),
        info("slow", "latency", replicas=1),
        info("noisy", "noisy", replicas=4),
    )


def test_extra_families_parse_and_agree_with_model_requests() -> None:
    sim = _fleet()
    sim.tick(400)
    samples, types = parse_exposition(sim.render())
    assert types == {**BASE_FAMILIES, **EXTRA_TYPES}
    for name in ("fraud", "fraud-v2", "slow", "noisy"):
        dep = sim.get(NS, name)
        assert dep is not None
        codes = {c: float(v) for c, v in requests_by_code(sim, name).items()}
        assert sum(codes.values()) > 1000
        assert _by_code(samples, "model_requests_total", namespace=NS, deployment=name) == codes
        istio = _by_code(
            samples,
            "istio_requests_total",
            reporter="destination",
            destination_workload=name,
            destination_workload_namespace=NS,
            source_workload="unknown",
        )
        assert istio == codes
        envoy = _by_code(
            samples, "envoy_cluster_upstream_rq", envoy_cluster_name=f"{NS}_{name}-canary_80"
        )
        assert envoy == codes
        traefik = _by_code(
            samples,
            "traefik_service_requests_total",
            service=f"{NS}-{name}-canary-80@kubernetescrd",
        )
        assert traefik == codes
        seldon = _by_code(
            samples,
            "seldon_api_executor_server_requests_seconds_count",
            deployment_name=name,
            namespace=NS,
        )
        assert seldon == codes


def test_pods_sum_exactly_to_their_deployment() -> None:
    sim = _fleet()
    sim.tick(401)
    samples, _ = parse_exposition(sim.render())
    les = [*(repr(b) for b in BUCKETS), "+Inf"]
    for name, replicas in (("fraud", 3), ("fraud-v2", 2), ("slow", 1), ("noisy", 4)):
        dep = sim.get(NS, name)
        assert dep is not None
        pods = _pods(samples, NS, name)
        assert sorted(pods) == sorted(sim.state()[NS][name]["pods"])
        assert len(pods) == replicas
        cumulative = dep.buckets_cum.tolist()
        for i, le in enumerate(les):
            assert sum(pod[le] for pod in pods.values()) == cumulative[i], (name, le)
        assert sum(pod["count"] for pod in pods.values()) == cumulative[-1]
        assert sum(pod["sum"] for pod in pods.values()) == pytest.approx(dep.latency_sum)
        for pod in pods.values():
            assert pod["count"] == pod["+Inf"]
            assert [pod[le] for le in les] == sorted(pod[le] for le in les)
            # An even split: each pod's share is within one request of 1/r.
            assert abs(pod["count"] - cumulative[-1] / replicas) <= 1
            assert pod["sum"] / pod["count"] == pytest.approx(
                dep.latency_sum / cumulative[-1], rel=0.01
            )


def test_pod_counters_only_grow_and_stay_exact_across_scaling() -> None:
    sim = make_sim(info("fraud", replicas=3))
    previous: dict[tuple[str, str], float] = {}
    for replicas in (3, 5, 5, 1, 2, 4, 2):
        sim.apply(info("fraud", replicas=replicas))
        sim.tick(37)
        samples, _ = parse_exposition(sim.render())
        pods = _pods(samples, NS, "fraud")
        assert len(pods) == replicas
        dep = sim.get(NS, "fraud")
        assert dep is not None
        assert sum(p["count"] for p in pods.values()) == dep.buckets_cum[-1]
        assert sum(p["sum"] for p in pods.values()) == pytest.approx(dep.latency_sum)
        for pod, values in pods.items():
            for key, value in values.items():
                assert value >= previous.get((pod, key), 0.0), (replicas, pod, key)
                previous[pod, key] = value
    live = sim.state()[NS]["fraud"]["pods"]
    # The first pod lived throughout; the second was started after the scale-down to one.
    assert live[0] == pod_names(NS, "fraud", [0])[0]
    assert live[1] not in pod_names(NS, "fraud", range(5))


def test_pod_names_are_deterministic_and_shaped_like_a_deployments_pods() -> None:
    names = pod_names("ml", "fraud", range(50))
    assert names == pod_names("ml", "fraud", range(50))
    assert names[:3] == pod_names("ml", "fraud", range(3))
    assert len(set(names)) == 50
    hashes = set()
    for pod in names:
        m = POD_NAME.match(pod)
        assert m, pod
        assert m["deployment"] == "fraud"
        hashes.add(m["hash"])
    assert len(hashes) == 1  # one ReplicaSet
    # The same name in another namespace is another ReplicaSet.
    assert pod_names("ml-b", "fraud", [0])[0].rsplit("-", 2)[1] != hashes.pop()
    # The usual pod regex of one deployment does not reach a deployment it prefixes.
    fraud = re.compile(r"fraud-[a-z0-9]+-[a-z0-9]+")
    assert all(fraud.fullmatch(p) for p in pod_names("ml", "fraud", range(5)))
    assert not any(fraud.fullmatch(p) for p in pod_names("ml", "fraud-v2", range(5)))
    # Not tied to the seed: the hash comes from the namespace and the name only.
    assert make_sim(info("a"), seed=1).state()[NS]["a"]["pods"] == pod_names(NS, "a", [0])


def test_colliding_compound_names_share_one_series() -> None:
    sim = Simulator(seed=3)
    sim.apply(WorkloadInfo("a-b", "c", {"SIM_PROFILE": "errors"}, 1))
    sim.apply(WorkloadInfo("a", "b-c", {"SIM_PROFILE": "healthy"}, 1))
    sim.tick(100)
    samples, _ = parse_exposition(sim.render())  # no duplicate series
    one, other = sim.get("a-b", "c"), sim.get("a", "b-c")
    assert one is not None
    assert other is not None
    traefik = _by_code(
        samples, "traefik_service_requests_total", service="a-b-c-canary-80@kubernetescrd"
    )
    both = (one.codes + other.codes).tolist()
    assert traefik == dict(zip(("200", "400", "500", "503"), map(float, both), strict=True))
    # Envoy's underscore keeps them apart.
    envoy = _by_code(samples, "envoy_cluster_upstream_rq", envoy_cluster_name="a-b_c-canary_80")
    assert envoy == dict(zip(("200", "400", "500", "503"), map(float, one.codes), strict=True))


def test_extra_families_can_be_switched_off() -> None:
    def scenario(families: tuple[str, ...] | None) -> str:
        sim = Simulator(seed=5) if families is None else Simulator(seed=5, families=families)
        sim.apply(info("a", replicas=2))
        sim.apply(info("b", "noisy", replicas=3))
        sim.tick(50)
        sim.apply(info("b", "errors", replicas=1))
        sim.tick(50)
        return sim.render()

    everything = scenario(None)
    _, types = parse_exposition(everything)
    assert types == {**BASE_FAMILIES, **EXTRA_TYPES}
    base_only = scenario(())
    _, types = parse_exposition(base_only)
    assert types == BASE_FAMILIES
    # The model server's own series are the same either way.
    assert everything.startswith(base_only.rstrip("\n"))
    _, types = parse_exposition(scenario(("istio", "pod")))
    assert set(types) == {
        *BASE_FAMILIES,
        "istio_requests_total",
        "model_pod_request_duration_seconds",
    }
    with pytest.raises(ValueError, match="unknown families"):
        Simulator(seed=5, families=("istio", "linkerd"))


def test_families_option() -> None:
    assert build_parser().parse_args([]).families == frozenset(EXTRA_FAMILIES)
    assert parse_families("all") == frozenset(EXTRA_FAMILIES)
    assert parse_families("none") == parse_families("") == frozenset()
    assert parse_families(" Istio, pod ,") == {"istio", "pod"}
    with pytest.raises(ValueError, match="unknown family linkerd"):
        parse_families("istio,linkerd")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--families=linkerd"])
