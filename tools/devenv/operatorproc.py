"""The real operator (`rollguard run`) as a separate process against the local environment,
authenticated as the ServiceAccount from deploy/ (never as admin). Used by the integration
tests and by the demo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devenv.apiproxy import ApiProxy
from devenv.launcher import REPO, EnvInfo
from devenv.processes import can_bind, free_port, port_is_free
from devenv.testing import Kubectl, apply_deploy, service_account_kubeconfig

STOPPED_GRACE = 2.0  # seconds from Kopf's liveness endpoint closing to SIGKILL (see ``stop``)


@dataclass
class OperatorProcess:
    """A running `rollguard run`; ``restart`` kills it (SIGKILL by default) and starts it anew."""

    argv: list[str]
    env: dict[str, str]
    log: Path
    audit: Path
    process: subprocess.Popen[bytes] | None = None
    receivers: Path | None = None  # its --receivers file (absent: nobody is notified)

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, sig: int = signal.SIGTERM, *, timeout: float = 20.0) -> None:
        """Send ``sig`` and wait for the process to exit; SIGKILL after ``timeout`` seconds.

        After SIGTERM, Kopf stops its tasks (a replica withdraws its peering record on the
        way) and closes its liveness endpoint; the interpreter can then still hang at exit,
        joining the thread that waits on Kopf's stop flag. A process whose liveness endpoint
        has been closed for ``STOPPED_GRACE`` seconds has nothing left to do and is killed."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        if sig != signal.SIGKILL:
            deadline = time.monotonic() + timeout
            closed_since: float | None = None
            while self.process.poll() is None and time.monotonic() < deadline:
                if not port_is_free(self.liveness_port):
                    closed_since = None
                elif closed_since is None:
                    closed_since = time.monotonic()
                elif time.monotonic() - closed_since >= STOPPED_GRACE:
                    break
                time.sleep(0.1)
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=5)

    def restart(self, sig: int = signal.SIGKILL) -> None:
        """Stop the process with ``sig`` and start it again. A SIGKILLed replica's peering
        record stays until it expires (up to 60 s), and a replica of lower priority pauses
        until then; so after a SIGKILL the new process outranks the killed one (``--priority``
        one higher) and takes over at once. A replacement that must wait out its predecessor
        is what the crash drill (test_drills) tests, on purpose."""
        killed = self.priority
        self.stop(sig)
        if sig == signal.SIGKILL and killed is not None:
            self.set_priority(killed + 1)
        self.start()

    @property
    def priority(self) -> int | None:
        """The peering priority of the command line, None for ``auto`` or none given."""
        given = [a.split("=", 1)[1] for a in self.argv if a.startswith("--priority=")]
        return int(given[-1]) if given and given[-1] != "auto" else None

    def set_priority(self, priority: int | None) -> None:
        """From the next start: run with ``priority`` (None: the default, ``auto``)."""
        self.argv = [a for a in self.argv if not a.startswith("--priority=")]
        if priority is not None:
            self.argv.append(f"--priority={priority}")

    def audit_lines(self) -> list[dict[str, Any]]:
        if not self.audit.exists():
            return []
        return [json.loads(line) for line in self.audit.read_text().splitlines() if line.strip()]

    @property
    def metrics_url(self) -> str:
        port = next(a.split("=", 1)[1] for a in self.argv if a.startswith("--metrics-port="))
        return f"http://127.0.0.1:{port}/metrics"

    @property
    def liveness_port(self) -> int:
        """Kopf's liveness endpoint: the port after the metrics port."""
        return int(self.metrics_url.rsplit(":", 1)[1].split("/")[0]) + 1

    @property
    def liveness_url(self) -> str:
        return f"http://127.0.0.1:{self.liveness_port}/healthz"

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def two_free_ports() -> int:
    """A free port whose successor is free too (metrics, then liveness)."""
    for _ in range(50):
        port = free_port()
        if can_bind(port + 1):
            return port
    raise RuntimeError("no two adjacent free ports")


def start_operator(
    env: EnvInfo,
    kubectl: Kubectl,
    work: Path,
    *,
    extra: list[str] | None = None,
    prometheus_url: str | None = None,
    api_proxy: ApiProxy | None = None,
) -> OperatorProcess:
    """``api_proxy``: reach the API server through it (to count or throttle requests)."""
    apply_deploy(kubectl, REPO)
    kubeconfig = service_account_kubeconfig(
        env,
        kubectl,
        namespace="rollguard-system",
        name="rollguard",
        path=work / "operator.kubeconfig",
    )
    if api_proxy is not None:
        kubeconfig = api_proxy.kubeconfig(kubeconfig, work / "operator-proxied.kubeconfig")
    audit = work / "audit.jsonl"
    receivers = work / "receivers.yaml"
    argv = [
        sys.executable, "-m", "rollguard.cli", "run",
        f"--prometheus-url={prometheus_url or env.prometheus_url}",
        f"--metrics-port={two_free_ports()}",
        f"--audit-log={audit}",
        "--scrape-interval=1",
        "--decision-poll=1",
        "--keep-decisions=2",
        f"--receivers={receivers}",
        *(extra or []),
    ]  # fmt: skip
    proc = OperatorProcess(
        argv=argv,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        log=work / "operator.log",
        audit=audit,
        receivers=receivers,
    )
    proc.start()
    return proc


def stop_detached(pid_file: Path) -> None:
    """Stop an operator started in the background (the demo's), whose process group id is in
    ``pid_file``; nothing to do when there is none."""
    try:
        pid = int(pid_file.read_text())
        os.killpg(pid, signal.SIGTERM)
        for _ in range(100):
            os.killpg(pid, 0)  # raises once the group is gone
            time.sleep(0.2)
        os.killpg(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass
    pid_file.unlink(missing_ok=True)
