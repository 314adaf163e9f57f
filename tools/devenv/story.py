"""The fraud-model story, step by step: deploy the high-risk example healthy, roll out a bad
release, and follow rollguard from the decision to the validated rollback and the audit
chain. ``make demo`` narrates it (devenv.demo); the end-to-end suite (tests/e2e) runs the same
steps and asserts on what each returns.

Every wait is bounded; a step that times out raises ``StoryError`` with what it waited for
and what it saw last."""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devenv.launcher import REPO, EnvInfo
from devenv.receivers import Sink
from devenv.testing import Kubectl, poll

NAMESPACE = "fraud-detection"
NAME = "fraud-scorer"
FINAL = ("Succeeded", "Failed", "Rejected", "Expired", "DryRun", "Superseded")
Say = Callable[[str], None]


class StoryError(RuntimeError):
    """A step did not happen in time; the message says what was seen."""


def _quiet(_: str) -> None:
    pass


@dataclass
class Story:
    env: EnvInfo
    kubectl: Kubectl
    say: Say = _quiet
    timeout: float = 300.0
    t0: float = 0.0
    decision: str = ""
    seen: dict[str, Any] = field(default_factory=dict)
    channel: Sink | None = None  # the receiver `oncall` of the operator's receivers file

    # -- helpers ---------------------------------------------------------------------------

    def get(self, *what: str, context: str = "admin") -> dict[str, Any]:
        out = self.kubectl("get", *what, "-n", NAMESPACE, "-o", "json", context=context).stdout
        obj: dict[str, Any] = json.loads(out)
        return obj

    def show(self, *args: str) -> str:
        """Run a kubectl command for the reader and print it with its output."""
        self.say(f"$ kubectl {' '.join(args)}")
        out = self.kubectl(*args).stdout.rstrip()
        self.say(out)
        return out

    def rollguard(self, *args: str, context: str = "admin", check: bool = True) -> str:
        """Run the rollguard CLI as ``context`` and print it with its output."""
        self.say(
            f"$ rollguard {' '.join(args)}" + ("" if context == "admin" else f"  # as {context}")
        )
        env = {**os.environ, "KUBECONFIG": self.env.kubeconfig}
        result = subprocess.run(
            [sys.executable, "-m", "rollguard.cli", *args, "--context", context],
            capture_output=True, text=True, env=env, check=False, timeout=120,
        )  # fmt: skip
        out = (result.stdout + result.stderr).rstrip()
        self.say(out)
        if check and result.returncode != 0:
            raise StoryError(f"rollguard {' '.join(args)} failed: {out}")
        return out

    def wait(self, what: str, probe: Callable[[], Any], *, every: float = 1.0) -> Any:
        try:
            return poll(what, probe, timeout=self.timeout, every=every)
        except TimeoutError as err:
            raise StoryError(str(err)) from err

    def mdep(self) -> dict[str, Any]:
        return self.get("modeldeployment", NAME)

    def phase(self) -> str:
        return str((self.mdep().get("status") or {}).get("phase") or "")

    def decisions(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get("rollbackdecisions")["items"]
        return sorted(items, key=lambda d: d["metadata"]["creationTimestamp"])

    def decision_obj(self) -> dict[str, Any]:
        return self.get("rollbackdecision", self.decision)

    def decision_phase(self) -> str:
        return str((self.decision_obj().get("status") or {}).get("phase") or "")

    def deployment(self) -> dict[str, Any]:
        return self.get("deployment", NAME)

    # -- the steps -------------------------------------------------------------------------

    def reset(self) -> None:
        """Remove what an earlier run left, so the story starts from a clean namespace."""
        if self.kubectl("get", "namespace", NAMESPACE, check=False).returncode == 0:
            self.say(f"removing namespace {NAMESPACE} left by an earlier run")
            self.kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--timeout=120s")
        if self._recent_samples():
            # Queries look back over their rate() windows: the earlier run's series must age
            # out of them, or the new Deployment would be judged on the old one's metrics.
            self.say("waiting for the earlier run's metrics to age out of the query windows")
            self.wait("old metrics to age out", lambda: not self._recent_samples(), every=5.0)

    def _recent_samples(self) -> bool:
        query = f'count(count_over_time(model_requests_total{{namespace="{NAMESPACE}"}}[3m]))'
        url = f"{self.env.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        with urllib.request.urlopen(url, timeout=10) as response:
            return bool(json.load(response)["data"]["result"])

    def deploy_healthy(self) -> dict[str, Any]:
        """Apply the fraud example (demo timings) and wait until rollguard judges it Healthy."""
        self.kubectl("create", "namespace", NAMESPACE)
        self.show("apply", "-k", str((REPO / "examples" / "demo").relative_to(REPO)))
        self.wait("revision 1 of fraud-scorer to be available", self._available)
        # A fresh Deployment's counters make rate() ramp up over its first range: wait for a
        # steady baseline (score below clearBelow) before the bad release.
        mdep: dict[str, Any] = self.wait(
            "rollguard to judge fraud-scorer Healthy with a steady baseline",
            self._healthy,
            every=2.0,
        )
        self.show("-n", NAMESPACE, "get", "rollbackpolicy,modeldeployment", "-o", "wide")
        return mdep

    def _available(self) -> bool:
        status = self.deployment().get("status") or {}
        return bool(status.get("availableReplicas") == 3 and status.get("updatedReplicas") == 3)

    def _healthy(self) -> dict[str, Any] | None:
        mdep = self.mdep()
        status = mdep.get("status") or {}
        score = (status.get("lastEvaluation") or {}).get("score")
        steady = status.get("phase") == "Healthy" and score is not None and score < 0.05
        return mdep if steady else None

    def bad_release(self) -> None:
        """Roll out release 1.5.0, which answers 12% of requests with a 5xx."""
        self.t0 = time.time()
        patch = str((REPO / "examples" / "demo" / "bad-release.yaml").relative_to(REPO))
        self.show("-n", NAMESPACE, "patch", "deployment", NAME, "--patch-file", patch)

    def await_decision(self) -> dict[str, Any]:
        """Follow the impact score until rollguard makes a decision."""
        shown = ""

        def probe() -> dict[str, Any] | None:
            nonlocal shown
            found = [
                d for d in self.decisions() if d["spec"]["recommended"]["action"] == "Rollback"
            ]
            if found:
                return found[-1]
            status = self.mdep().get("status") or {}
            score = (status.get("lastEvaluation") or {}).get("scoreText")  # two decimals
            line = f"  {time.time() - self.t0:5.0f}s  phase {status.get('phase')}, impact score {score}"
            if line.split("s", 1)[1] != shown:
                shown = line.split("s", 1)[1]
                self.say(line)
            return None

        decision = self.wait("a RollbackDecision", probe, every=2.0)
        self.decision = decision["metadata"]["name"]
        self.seen["detected_after"] = time.time() - self.t0
        self.wait("the decision's first transition", self.decision_phase)
        self.show("-n", NAMESPACE, "get", "rollbackdecisions", "-o", "wide")
        return self.decision_obj()

    def explain(self) -> str:
        return self.rollguard("explain", self.decision, "-n", NAMESPACE)

    def notified(self) -> str:
        """What the on-call channel was told of the decision (the Slack-format message)."""
        channel = self.channel
        if channel is None:
            raise StoryError("no on-call channel to read")

        def told() -> str | None:
            for posted in channel.posted:
                text = posted.body.get("text", "") if isinstance(posted.body, dict) else ""
                if self.decision in text:
                    return html.unescape(str(text))  # Slack's markup escapes <, > and &
            return None

        text: str = self.wait("the on-call channel's message", told)
        self.say("\n".join(f"    | {line}" for line in text.splitlines()))
        return text

    def forged_approvals_are_refused(self) -> tuple[str, str]:
        """mallory may not approve at all; alice may not approve in someone else's name."""
        mallory = self.rollguard(
            "approve", self.decision, "-n", NAMESPACE, "--reason", "looks fine to me",
            context="mallory", check=False,
        )  # fmt: skip
        forged = json.dumps(
            {"spec": {"approval": {"decision": "Approve", "by": "bob", "reason": "bob said so"}}}
        )
        self.say(
            f"$ kubectl -n {NAMESPACE} patch rbd {self.decision} --type=merge -p '{forged}'  # as alice"
        )
        result = self.kubectl(
            "-n", NAMESPACE, "patch", "rollbackdecision", self.decision, "--type=merge",
            "-p", forged, context="alice", check=False,
        )  # fmt: skip
        alice_as_bob = (result.stdout + result.stderr).strip()
        self.say(alice_as_bob)
        if result.returncode == 0:
            raise StoryError("alice could write an approval in bob's name")
        return mallory, alice_as_bob

    def approve(self) -> str:
        return self.rollguard(
            "approve", self.decision, "-n", NAMESPACE,
            "--reason", "1.5.0 fails 12% of scoring calls; back to 1.4.2", context="alice",
        )  # fmt: skip

    def await_rollback(self) -> dict[str, Any]:
        """Wait until the Deployment runs the approved revision's template again."""

        def rolled_back() -> dict[str, Any] | None:
            d = self.deployment()
            env = d["spec"]["template"]["spec"]["containers"][0].get("env") or []
            profile = next((e.get("value") for e in env if e["name"] == "SIM_PROFILE"), None)
            return d if profile == "healthy" else None

        deployment: dict[str, Any] = self.wait("the Deployment to be rolled back", rolled_back)
        self.seen["patched_after"] = time.time() - self.t0
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        revision = deployment["metadata"]["annotations"].get("deployment.kubernetes.io/revision")
        self.say(f"  fraud-scorer runs {image} again (Deployment revision {revision})")
        return deployment

    def await_final(self) -> dict[str, Any]:
        """Follow the decision through validation to its final phase."""
        last = ""

        def final() -> dict[str, Any] | None:
            nonlocal last
            obj = self.decision_obj()
            phase = (obj.get("status") or {}).get("phase") or ""
            if phase != last:
                self.say(
                    f"  {time.time() - self.t0:5.0f}s  decision {phase}: {(obj.get('status') or {}).get('message', '')}"
                )
                last = phase
            return obj if phase in FINAL else None

        decision: dict[str, Any] = self.wait(
            "the decision to reach a final phase", final, every=2.0
        )
        self.show("-n", NAMESPACE, "get", "rollbackdecisions,modeldeployments", "-o", "wide")
        return decision

    def outcome(self) -> dict[str, Any]:
        status = self.decision_obj().get("status") or {}
        outcome: dict[str, Any] = status.get("outcome") or {}
        self.say(json.dumps({"validation": status.get("validation"), "outcome": outcome}, indent=2))
        return outcome

    def audit(self) -> str:
        return self.rollguard("audit", "verify", "-n", NAMESPACE)

    def review(self) -> str:
        """alice records the post-rollback review; the operator exports it to the audit log."""
        out = self.rollguard(
            "review", self.decision, "-n", NAMESPACE, "--verdict", "achieved",
            "--regression", "real", "--notes",
            "1.5.0 broke the feature-store client; rollback restored scoring within minutes",
            context="alice",
        )  # fmt: skip
        self.wait(
            "the operator to export the review",
            lambda: ((self.decision_obj().get("status") or {}).get("audit") or {}).get(
                "reviewExported"
            ),
        )
        return out

    def journal(self) -> str:
        return self.rollguard("journal", "-n", NAMESPACE)

    def calibrate(self) -> str:
        return self.rollguard("calibrate", "-n", NAMESPACE)
