"""`rollguard dashboard`: where it listens, the warning off loopback, the namespaces it falls
back to, and bad ports refused with a one-line message."""

from __future__ import annotations

from typing import Any

import pytest

from rollguard import commands
from rollguard.cli import dashboard, main


class Stopped:
    """A server that stops at once, as on Ctrl-C."""

    server_address = ("127.0.0.1", 43210)
    closed = False

    def serve_forever(self) -> None:
        raise KeyboardInterrupt

    def server_close(self) -> None:
        Stopped.closed = True


class Caller:
    def whoami(self) -> tuple[str, list[str]]:
        return "alice", []


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(commands, "cluster_for", lambda **_: Caller())
    monkeypatch.setattr(dashboard, "context_namespace", lambda **_: "team-a")

    def serve(**kwargs: Any) -> Stopped:
        seen.update(kwargs)
        return Stopped()

    monkeypatch.setattr(dashboard, "serve", serve)
    return seen


def test_it_listens_on_loopback_by_default_as_the_caller(
    started: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dashboard"]) == 0
    out, err = capsys.readouterr()
    assert started["address"] == "127.0.0.1" and started["port"] == 8765
    assert started["namespaces"] == ["team-a"]  # the context's namespace
    assert out.strip() == "Serving the rollguard dashboard on http://127.0.0.1:43210/ as alice"
    assert err == "" and Stopped.closed


def test_another_address_is_allowed_with_a_warning(
    started: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dashboard", "--address", "0.0.0.0", "-n", "ml", "-n", "ops"]) == 0
    err = capsys.readouterr().err
    assert "warning: listening on 0.0.0.0: anyone who reaches it acts as alice" in err
    assert started["namespaces"] == ["ml", "ops"]


def test_a_port_out_of_range_is_refused(
    started: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dashboard", "--port", "70000"]) == 2
    assert capsys.readouterr().err.strip() == "error: --port: must be 0 to 65535, got 70000"
    assert started == {}
