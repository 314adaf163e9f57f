"""Fixtures that run the real operator (`rollguard run`) against the local environment, with
the ServiceAccount and RBAC from deploy/, never as admin."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devenv.launcher import REPO, EnvInfo
from devenv.processes import free_port
from devenv.testing import Kubectl, apply_deploy, service_account_kubeconfig


@dataclass
class OperatorProcess:
    """A running `rollguard run`; ``restart`` kills it (SIGKILL by default) and starts it anew."""

    argv: list[str]
    env: dict[str, str]
    log: Path
    audit: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.process = subprocess.Popen(
            self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)

    def restart(self, sig: int = signal.SIGKILL) -> None:
        self.stop(sig)
        self.start()

    def audit_lines(self) -> list[dict[str, Any]]:
        import json

        if not self.audit.exists():
            return []
        return [json.loads(line) for line in self.audit.read_text().splitlines() if line.strip()]

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def start_operator(
    env: EnvInfo, kubectl: Kubectl, work: Path, *, extra: list[str] | None = None
) -> OperatorProcess:
    apply_deploy(kubectl, REPO)
    kubeconfig = service_account_kubeconfig(
        env,
        kubectl,
        namespace="rollguard-system",
        name="rollguard",
        path=work / "operator.kubeconfig",
    )
    audit = work / "audit.jsonl"
    argv = [
        sys.executable, "-m", "rollguard.cli", "run",
        f"--prometheus-url={env.prometheus_url}",
        f"--metrics-port={free_port()}",
        f"--audit-log={audit}",
        "--scrape-interval=1",
        "--decision-poll=1",
        *(extra or []),
    ]  # fmt: skip
    proc = OperatorProcess(
        argv=argv,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        log=work / "operator.log",
        audit=audit,
    )
    proc.start()
    return proc


def wait_for(
    what: str,
    probe: Callable[[], Any],
    *,
    timeout: float = 90.0,
    interval: float = 0.5,
    operator: OperatorProcess | None = None,
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"\noperator log:\n{operator.tail()}" if operator else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")
        time.sleep(interval)
