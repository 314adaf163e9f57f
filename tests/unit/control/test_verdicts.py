"""The verdict endpoint: the JSON a deployment tool gates on (healthy only in a healthy phase,
evaluated, with a known score and not stale), the store the status writes keep, and the routes
of the metrics port's WSGI app (read-only; a standby or a replica that has not evaluated yet
says so with 503, an unknown ModelDeployment is 404)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from operator_harness import ERROR_RATE, run_operator

from rollguard.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus, Phase
from rollguard.control.health import Health, PolicyView, _app
from rollguard.control.verdicts import (
    HEALTHY_PHASES,
    VERDICTS,
    Record,
    Replica,
    Verdicts,
    answer,
    verdict,
)
from rollguard.core.times import to_seconds
from rollguard.files.series import parse_series

AT = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
NOW = to_seconds(AT) + 3.0
T0 = 1_699_999_200  # a multiple of every interval: evaluation instants are on it
STEP = 15  # seconds between samples, and the high tier's evaluation interval
POLICY: dict[str, Any] = {
    "riskTier": "high",
    "signals": [ERROR_RATE],  # a constant value v scores (v - 0.01) / 0.1
    "impact": {"categories": [{"name": "revenue", "weight": 1, "signals": {"error_rate": 1}}]},
    "triggers": [{"action": "Rollback", "minScore": 0.5, "sustainedFor": "0s"}],
    "authorization": {
        "autoApprove": {"maxScore": 1.0, "actions": ["Rollback"], "maxRevisionsBack": 1}
    },
}


def _status(
    phase: str | None = "Healthy",
    *,
    score: float | None = 0.12,
    ready: str = "True",
    at: datetime = AT,
    value: float = 0.004,
) -> ModelDeploymentStatus:
    return ModelDeploymentStatus.model_validate(
        {
            "phase": phase,
            "message": f"impact score {score}",
            "target": "Deployment/fraud",
            "currentRevision": 4,
            "lastDecision": "fraud-3f2a",
            "policyHash": "sha256:abc",
            "lastEvaluation": {
                "time": at.isoformat(),
                "score": score,
                "scoreText": None if score is None else f"{score:.2f}",
                "signals": [
                    {
                        "name": "error-rate",
                        "status": "Ok",
                        "value": value,
                        "lower": 0.003,
                        "upper": 0.005,
                        "samples": 20,
                        "severity": 0.0,
                    }
                ],
            },
            "conditions": [
                {
                    "type": "Ready",
                    "status": ready,
                    "reason": "Evaluated" if ready == "True" else "TargetNotFound",
                    "lastTransitionTime": AT.isoformat(),
                }
            ],
        }
    )


# -- the verdict ------------------------------------------------------------------------------


def test_a_healthy_evaluation_is_a_healthy_verdict_with_every_field() -> None:
    out = verdict("ml", "fraud", Record(_status()), now=NOW)
    assert out == {
        "namespace": "ml",
        "name": "fraud",
        "phase": "Healthy",
        "healthy": True,
        "ready": True,
        "score": 0.12,
        "scoreText": "0.12",
        "signals": [
            {
                "name": "error-rate",
                "status": "Ok",
                "value": 0.004,
                "upper": 0.005,
                "lower": 0.003,
                "severity": 0.0,
            }
        ],
        "policyHash": "sha256:abc",
        "evaluatedAt": "2024-05-01T12:00:00Z",
        "ageSeconds": 3.0,
        "target": "Deployment/fraud",
        "currentRevision": 4,
        "lastDecision": "fraud-3f2a",
        "message": "impact score 0.12",
    }  # no "stale": the interval is not known after one evaluation


@pytest.mark.parametrize("phase", get_args(Phase))
def test_only_healthy_and_cooldown_pass(phase: str) -> None:
    out = verdict("ml", "fraud", Record(_status(phase)), now=NOW)
    assert out["healthy"] is (phase in ("Healthy", "Cooldown"))
    assert out["phase"] == phase
    assert set(HEALTHY_PHASES) == {"Healthy", "Cooldown"}


def test_an_unknown_score_or_a_not_ready_model_deployment_is_not_healthy() -> None:
    inconclusive = verdict("ml", "f", Record(_status("Inconclusive", score=None)), now=NOW)
    assert (inconclusive["healthy"], inconclusive["score"]) == (False, None)
    # Its target went missing: the phase of the last evaluation stays, but it is no longer
    # evaluated.
    left_out = verdict("ml", "f", Record(_status("Healthy", ready="False")), now=NOW)
    assert (left_out["healthy"], left_out["ready"], left_out["phase"]) == (False, False, "Healthy")
    never = verdict("ml", "f", Record(ModelDeploymentStatus()), now=NOW)
    assert never["healthy"] is False
    assert (never["phase"], never["evaluatedAt"], never["signals"]) == (None, None, [])


def test_a_signal_in_breach_is_not_healthy_before_the_phase_turns_degraded() -> None:
    """Within a trigger point's dwell time the phase is still Healthy; a gate must not pass."""
    status = _status("Healthy", score=0.72, value=0.05)
    evaluation = status.last_evaluation
    assert evaluation is not None
    breached = evaluation.signals[0].model_copy(update={"status": "Breach"})
    status = status.model_copy(
        update={"last_evaluation": evaluation.model_copy(update={"signals": [breached]})}
    )
    answer = verdict("ml", "f", Record(status), now=NOW)
    assert (answer["phase"], answer["healthy"]) == ("Healthy", False)
    assert answer["signals"][0]["status"] == "Breach"


def test_a_verdict_older_than_three_intervals_is_stale_and_not_healthy() -> None:
    store = Verdicts()
    store.record("ml", "f", _status(at=AT - timedelta(seconds=15)))
    store.record("ml", "f", _status(at=AT))
    record = store.snapshot()[("ml", "f")]
    assert record.interval == 15.0
    fresh = verdict("ml", "f", record, now=to_seconds(AT) + 45)
    assert (fresh["stale"], fresh["healthy"]) == (False, True)
    old = verdict("ml", "f", record, now=to_seconds(AT) + 46)
    assert (old["stale"], old["healthy"], old["ageSeconds"]) == (True, False, 46.0)


def test_numbers_json_cannot_carry_are_null() -> None:
    out = verdict("ml", "f", Record(_status(value=float("nan"))), now=NOW)
    assert out["signals"][0]["value"] is None
    json.dumps(out, allow_nan=False)


# -- the store --------------------------------------------------------------------------------


def test_the_store_keeps_the_written_phase_and_forgets_what_is_no_longer_bound() -> None:
    store = Verdicts()
    store.record("ml", "a", _status(), owner="ml/p", phase="Escalated")
    store.record("ml", "b", _status(), owner="ml/p")
    store.record("ml", "c", _status(), owner="ml/other")
    assert store.snapshot()[("ml", "a")].status.phase == "Escalated"
    store.keep("ml/p", {("ml", "b")})
    assert sorted(store.snapshot()) == [("ml", "b"), ("ml", "c")]
    # A status written without a known policy (its policy is missing) keeps the owner.
    store.record("ml", "b", _status(ready="False"))
    assert store.snapshot()[("ml", "b")].owner == "ml/p"
    # The same evaluation again (a not-ready write) keeps the interval.
    store.record("ml", "c", _status(at=AT + timedelta(seconds=30)))
    store.record("ml", "c", _status(at=AT + timedelta(seconds=30), ready="False"))
    assert store.snapshot()[("ml", "c")].interval == 30.0
    store.forget("ml", "c")
    assert ("ml", "c") not in store.snapshot()


def test_the_operators_cycles_record_every_evaluation_even_unwritten_ones() -> None:
    VERDICTS.forget("ml", "model")
    seen: list[dict[str, Any]] = []

    def look(now: float, _: object) -> None:
        record = VERDICTS.snapshot().get(("ml", "model"))
        if record is not None:
            seen.append(verdict("ml", "model", record, now=now))

    # Healthy for 10 minutes, then bad: one automatic rollback that fails validation (the
    # recorded data does not react) and escalates.
    values = [0.0] * 40 + [0.11] * 41
    rows = "".join(f"{T0 + k * STEP},error_rate,{v!r}\n" for k, v in enumerate(values))
    series = parse_series(
        "timestamp,signal,value\n" + rows, source="s.csv", json_format=False, signals=["error_rate"]
    )
    run = run_operator(POLICY, series, act=look)
    record = VERDICTS.snapshot()[("ml", "model")]
    final = verdict("ml", "model", record, now=run.eval_times[-1])
    stored = run.model_deployment["status"]
    assert (final["phase"], final["healthy"]) == (stored["phase"], False) == ("Escalated", False)
    assert final["lastDecision"] == stored["lastDecision"]
    assert final["policyHash"] == stored["policyHash"]
    assert (record.owner, record.interval) == ("ml/policy", 15.0)
    # The newest evaluation, even when its status write was skipped (nothing material
    # changed), so never older than one interval.
    assert to_seconds(datetime.fromisoformat(final["evaluatedAt"])) == run.eval_times[-1]
    assert all(v["ageSeconds"] == STEP and v["stale"] is False for v in seen[1:])
    # Inconclusive until the first window fills, healthy until the data turns bad, then
    # never again: a rollback, its validation, and the escalation when validation fails.
    first_good = next(i for i, v in enumerate(seen) if v["healthy"])
    assert {v["phase"] for v in seen[:first_good]} == {"Inconclusive"}
    first_bad = next(i for i, v in enumerate(seen) if i > first_good and not v["healthy"])
    assert all(v["healthy"] for v in seen[first_good:first_bad])
    turned = to_seconds(datetime.fromisoformat(seen[first_bad]["evaluatedAt"]))
    assert T0 + 600 < turned < T0 + 600 + 120  # once the 2-minute window turned bad enough
    later = {v["phase"] for v in seen[first_bad:]}
    assert not any(v["healthy"] for v in seen[first_bad:])
    assert (
        {"RollingBack", "Escalated"}
        <= later
        <= {"Degraded", "RollingBack", "Validating", "Escalated"}
    )


# -- the answers and the routes ---------------------------------------------------------------

BOUND = {("ml", "p"): (("ml", "fraud"), ("ml", "new"))}


def _replica(state: str = "ready", records: dict[tuple[str, str], Record] | None = None) -> Replica:
    if records is None:
        records = {("ml", "fraud"): Record(_status())}
    return Replica(state, "why not", BOUND, records, NOW)


def test_answers_say_why_there_is_no_verdict() -> None:
    assert answer(_replica(), "/verdicts/ml/fraud")[0] == 200
    code, body = answer(_replica("standby"), "/verdicts/ml/fraud")
    assert code == 503 and body["error"].startswith("this replica is on standby")
    code, body = answer(_replica("paused"), "/verdicts")
    assert (code, body["state"]) == (503, "paused") and "why not" in body["error"]
    code, body = answer(_replica("refused"), "/verdicts/ml/fraud")
    assert code == 200  # it cannot create decisions, but it evaluates
    code, body = answer(_replica(), "/verdicts/ml/new")
    assert code == 503 and "has not been evaluated yet" in body["error"]
    code, body = answer(_replica(), "/verdicts/ml/nope")
    assert code == 404 and "no ModelDeployment ml/nope" in body["error"]
    code, body = answer(Replica("ready", "", {}, {}, NOW), "/verdicts/ml/nope")
    assert code == 503 and "no RollbackPolicy yet" in body["error"]
    assert answer(_replica(), "/verdicts/ml")[0] == 404
    # A record of a ModelDeployment no policy binds any longer is not served.
    gone = {("ml", "old"): Record(_status())}
    assert answer(_replica(records=gone), "/verdicts/ml/old")[0] == 404
    code, body = answer(
        _replica(records={**gone, ("ml", "fraud"): Record(_status())}), "/verdicts/"
    )
    assert code == 200
    assert [v["name"] for v in body["verdicts"]] == ["fraud"]
    assert body["notEvaluatedYet"] == 1


def _call(app: Any, path: str, method: str = "GET") -> tuple[str, dict[str, str], bytes]:
    got: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        got["status"], got["headers"] = status, dict(headers)

    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "test",
        "SERVER_PORT": "8080",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
    }
    body = b"".join(app(environ, start_response))
    return got["status"], got["headers"], body


def _wsgi(state: str | None = None) -> Any:
    health = Health()
    if state == "standby":
        health.stream_paused("stream", ["rollguard@None"])
    store = Verdicts()
    store.record("ml", "fraud", _status(), owner="ml/p")
    watched = {("ml", "p"): PolicyView(valid=True, bound=(("ml", "fraud"),), targets=())}
    return _app(health, store=store, watched=watched, clock=lambda: NOW)


def test_the_routes_serve_json_verdicts_read_only() -> None:
    app = _wsgi()
    status, headers, body = _call(app, "/verdicts/ml/fraud")
    assert status == "200 OK"
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"
    out = json.loads(body)
    assert (out["healthy"], out["phase"], out["score"]) == (True, "Healthy", 0.12)
    status, headers, head = _call(app, "/verdicts/ml/fraud", "HEAD")
    assert (status, head, int(headers["Content-Length"])) == ("200 OK", b"", len(body))
    status, _, body = _call(app, "/verdicts")
    assert status == "200 OK" and [v["name"] for v in json.loads(body)["verdicts"]] == ["fraud"]
    status, _, body = _call(app, "/verdicts/ml/unknown")
    assert status == "404 Not Found" and "error" in json.loads(body)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for path in ("/verdicts/ml/fraud", "/verdicts", "/metrics"):
            status, headers, body = _call(app, path, method)
            assert status == "405 Method Not Allowed", (method, path)
            assert headers["Allow"] == "GET, HEAD"
    # The metrics and readiness are still served.
    assert _call(app, "/readyz")[2] == b"ready\n"
    assert b"rollguard_operator_state" in _call(app, "/metrics")[2]


def test_a_standby_without_api_access_answers_503_and_stays_ready() -> None:
    app = _wsgi("standby")
    status, _, body = _call(app, "/verdicts/ml/fraud")
    assert status == "503 Service Unavailable"
    out = json.loads(body)
    assert out["state"] == "standby" and out["error"].startswith("this replica is on standby")
    assert _call(app, "/readyz")[0] == "200 OK"


def test_a_standby_answers_from_the_status_the_acting_replica_wrote() -> None:
    """Through the Service about half the requests reach the standby: it answers the same
    verdict, read from the ModelDeployment's status, instead of an error."""
    health = Health()
    health.stream_paused("stream", ["rollguard@None"])
    written = {("ml", "fraud"): _status("Degraded", score=0.9), ("ml", "new"): _status(None)}
    new = written[("ml", "new")]
    written[("ml", "new")] = new.model_copy(update={"last_evaluation": None})
    reads: list[tuple[str, str]] = []

    def reader(namespace: str, name: str) -> ModelDeploymentStatus | None:
        reads.append((namespace, name))
        return written.get((namespace, name))

    app = _app(health, store=Verdicts(), watched={}, clock=lambda: NOW, reader=reader)
    status, _, body = _call(app, "/verdicts/ml/fraud")
    out = json.loads(body)
    assert status == "200 OK"
    assert (out["phase"], out["healthy"], out["source"]) == ("Degraded", False, "status")
    assert _call(app, "/verdicts/ml/ghost")[0] == "404 Not Found"
    assert _call(app, "/verdicts/ml/new")[0] == "503 Service Unavailable"
    assert reads == [("ml", "fraud"), ("ml", "ghost"), ("ml", "new")]
    # The list needs what this replica binds: a standby still says it does not evaluate.
    assert _call(app, "/verdicts")[0] == "503 Service Unavailable"


# -- the Argo Rollouts example ----------------------------------------------------------------

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "argo-rollouts"


def test_the_argo_example_asks_the_deployed_service_for_the_healthy_field() -> None:
    [service] = [
        d
        for d in yaml.safe_load_all((REPO / "deploy" / "operator.yaml").read_text())
        if d["kind"] == "Service"
    ]
    [port] = service["spec"]["ports"]
    template = yaml.safe_load((EXAMPLE / "analysis-template.yaml").read_text())
    [metric] = template["spec"]["metrics"]
    web = metric["provider"]["web"]
    host = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    assert web["url"] == (
        f"http://{host}:{port['port']}/verdicts/{{{{args.namespace}}}}/"
        "{{args.model-deployment}}"
    )
    assert (web["jsonPath"], metric["successCondition"]) == ("{$.healthy}", "result == true")
    assert "healthy" in verdict("ml", "f", Record(_status()), now=NOW)
    # The Rollout's analysis step passes both arguments; its ModelDeployment guards it.
    rollout = yaml.safe_load((EXAMPLE / "rollout.yaml").read_text())
    [step] = [
        s["analysis"] for s in rollout["spec"]["strategy"]["canary"]["steps"] if "analysis" in s
    ]
    assert step["templates"] == [{"templateName": template["metadata"]["name"]}]
    assert [a["name"] for a in step["args"]] == [a["name"] for a in template["spec"]["args"]]
    mdep = yaml.safe_load((EXAMPLE / "modeldeployment.yaml").read_text())
    spec = ModelDeploymentSpec.model_validate(mdep["spec"])
    assert (spec.target.kind, spec.target.name) == ("Rollout", rollout["metadata"]["name"])
    assert {"value": mdep["metadata"]["name"], "name": "model-deployment"} in step["args"]
