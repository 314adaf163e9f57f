"""Child processes of the local environment: started in their own process group, tied to the
launcher's life (they die with it, even on SIGKILL), and stopped without leaving strays.

Called by the launcher only.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: the kernel sends SIGTERM to the child when the
    # launcher dies, however it dies, so no control-plane process outlives a killed test run.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


# Below Linux's ephemeral range (32768-60999): a port picked there can be taken as the local
# end of some outgoing connection between being picked and being bound by its server.
_PORTS = range(20000, 32700)


def _ports() -> range:
    """The ports to pick from: ``_PORTS``, or under pytest-xdist the worker's own share of it,
    so that two workers starting their environments at once never pick the same free port."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    if not worker.startswith("gw") or count < 2:
        return _PORTS
    share = len(_PORTS) // count
    start = _PORTS.start + int(worker[2:]) % count * share
    return range(start, start + share)


def can_bind(port: int) -> bool:
    """Whether a server could bind ``port`` on every interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A TCP port, outside the ephemeral range, that nothing is bound to right now."""
    rng = random.SystemRandom()
    ports = _ports()
    for _ in range(200):
        port = rng.choice(ports)
        if can_bind(port):
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@dataclass
class Child:
    """One running component."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    ports: tuple[int, ...] = ()
    _log: IO[bytes] | None = field(default=None, repr=False)

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, *, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; waits for the process to be gone."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None


def start(
    name: str,
    argv: Sequence[str | Path],
    *,
    log_dir: Path,
    ports: tuple[int, ...] = (),
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Child:
    """Start ``argv`` with its output in ``log_dir/name.log``."""
    log_path = log_dir / f"{name}.log"
    log = log_path.open("ab")
    process = subprocess.Popen(
        [str(a) for a in argv],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        start_new_session=True,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no locks taken
    )
    return Child(name=name, process=process, log_path=log_path, ports=ports, _log=log)


class NotReadyError(RuntimeError):
    """A component did not become ready in time."""


def wait_until(
    what: str,
    probe: Callable[[], bool],
    *,
    timeout: float,
    children: Sequence[Child] = (),
    interval: float = 0.1,
) -> None:
    """Poll ``probe`` until it is true; fail fast when one of ``children`` has exited."""
    deadline = time.monotonic() + timeout
    while True:
        for child in children:
            if not child.alive():
                raise NotReadyError(
                    f"{child.name} exited with code {child.process.returncode} while waiting for "
                    f"{what}; last log lines:\n{child.tail()}"
                )
        try:
            if probe():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {c.name}:\n{c.tail()}" for c in children)
            raise NotReadyError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
        time.sleep(interval)
