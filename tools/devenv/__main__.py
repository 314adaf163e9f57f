"""``python -m devenv up|down|status|serve``: the local environment from the command line.

``make dev-up`` runs ``up``, which starts a detached ``serve`` process (the supervisor of every
component) and returns once ``.dev/env.json`` is written; ``make dev-down`` runs ``down``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from devenv.launcher import REPO, EnvInfo, Environment, build_controlplane, probe_stopped
from devenv.operatorproc import stop_detached

DEFAULT_DIR = REPO / ".dev"


def _serve(work_dir: Path, seed: int) -> int:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    bin_dir = build_controlplane()
    env = Environment(work_dir=work_dir, bin_dir=bin_dir, seed=seed)
    try:
        env.start()
        (work_dir / "devenv.pid").write_text(f"{os.getpid()}\n")
        while not stop.wait(1.0):
            dead = [c.name for c in env.children if not c.alive()]
            if dead:
                print(f"[devenv] {', '.join(dead)} exited; stopping everything", file=sys.stderr)
                return 1
        return 0
    finally:
        env.stop()
        (work_dir / "devenv.pid").unlink(missing_ok=True)
        (work_dir / "env.json").unlink(missing_ok=True)
        print("[devenv] stopped", file=sys.stderr)


def _running_pid(work_dir: Path) -> int | None:
    try:
        pid = int((work_dir / "devenv.pid").read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _up(work_dir: Path, seed: int, timeout: float) -> int:
    if _running_pid(work_dir):
        print(f"[devenv] already running; see {work_dir / 'env.json'}", file=sys.stderr)
        return 0
    # Build in the foreground so the progress is visible; `serve` then finds the cache warm.
    build_controlplane()
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "env.json").unlink(missing_ok=True)
    log = (work_dir / "devenv.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "devenv", "serve", f"--dir={work_dir}", f"--seed={seed}"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, env={**os.environ, "PYTHONPATH": str(REPO / "tools")},
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    while not (work_dir / "env.json").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            print((work_dir / "devenv.log").read_text()[-4000:], file=sys.stderr)
            print("[devenv] failed to start; log above", file=sys.stderr)
            if proc.poll() is None:
                proc.terminate()
            return 1
        time.sleep(0.2)
    info = EnvInfo.load(work_dir / "env.json")
    print(f"[devenv] up: export KUBECONFIG={info.kubeconfig}")
    print(f"[devenv] Prometheus {info.prometheus_url}  simulator {info.simulator_url}")
    return 0


def _down(work_dir: Path) -> int:
    stop_detached(work_dir / "operator.pid")  # the demo's operator, if any
    pid = _running_pid(work_dir)
    info_path = work_dir / "env.json"
    info = EnvInfo.load(info_path) if info_path.exists() else None
    if pid is None:
        print("[devenv] not running", file=sys.stderr)
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _running_pid(work_dir) == pid and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.2)
    busy = probe_stopped(info) if info else []
    if busy:
        print(f"[devenv] still answering after stop: {', '.join(busy)}", file=sys.stderr)
        return 1
    print("[devenv] down", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devenv", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "serve"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="working directory (.dev)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the workload simulator")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for up")
    args = parser.parse_args(argv)
    work_dir: Path = args.dir.resolve()
    if args.command == "serve":
        return _serve(work_dir, args.seed)
    if args.command == "up":
        return _up(work_dir, args.seed, args.timeout)
    if args.command == "down":
        return _down(work_dir)
    pid = _running_pid(work_dir)
    if pid is None:
        print("not running")
        return 1
    print(json.dumps(json.loads((work_dir / "env.json").read_text()), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
