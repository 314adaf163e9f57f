"""The dashboard's cross-site checks: Host (DNS rebinding), Origin and Referer, and the double
submitted token."""

from __future__ import annotations

import pytest

from rollguard.web.csrf import Guard

GUARD = Guard(port=8765, token="t" * 43)
COOKIE = f"rollguard_csrf_8765={'t' * 43}"


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8765", "localhost:8765", "[::1]:8765", "10.1.2.3:8765"]
)
def test_hosts_that_name_the_machine_by_address_pass(host: str) -> None:
    assert GUARD.host_refusal(host) is None


@pytest.mark.parametrize(
    "host", ["evil.example:8765", "127.0.0.1:9999", "127.0.0.1", "", None, "[bad:8765"]
)
def test_other_hosts_are_refused(host: str | None) -> None:
    assert GUARD.host_refusal(host)


def test_origin_or_referer_must_be_the_dashboards_own() -> None:
    host = {"Host": "127.0.0.1:8765"}
    assert GUARD.origin_refusal({**host, "Origin": "http://127.0.0.1:8765"}) is None
    assert GUARD.origin_refusal({**host, "Referer": "http://127.0.0.1:8765/decisions/a/b"}) is None
    assert GUARD.origin_refusal(host) is None  # neither sent: the token decides
    assert "Origin http://127.0.0.1:9000" in (
        GUARD.origin_refusal({**host, "Origin": "http://127.0.0.1:9000"}) or ""
    )
    assert GUARD.origin_refusal({**host, "Origin": "null"})
    assert GUARD.origin_refusal({**host, "Referer": "http://evil.example/x"})


def test_the_token_must_be_in_the_form_and_in_the_cookie() -> None:
    token = "t" * 43
    assert GUARD.token_refusal(form_token=token, cookie_header=COOKIE) is None
    assert GUARD.token_refusal(form_token=token, cookie_header=f"other=1; {COOKIE}") is None
    assert "no csrf_token" in (GUARD.token_refusal(form_token=None, cookie_header=COOKIE) or "")
    assert "no rollguard_csrf_8765 cookie" in (
        GUARD.token_refusal(form_token=token, cookie_header=None) or ""
    )
    assert GUARD.token_refusal(form_token="x" * 43, cookie_header=COOKIE)
    assert GUARD.token_refusal(form_token=token, cookie_header="rollguard_csrf_8765=wrong")
    # Another dashboard's cookie (another port) does not count.
    assert GUARD.token_refusal(form_token=token, cookie_header=f"rollguard_csrf_9000={token}")


def test_each_guard_has_its_own_random_token_and_a_strict_cookie() -> None:
    a, b = Guard(port=1), Guard(port=1)
    assert a.token != b.token and len(a.token) >= 32
    assert "SameSite=Strict" in a.cookie() and "HttpOnly" in a.cookie()
    assert a.cookie().startswith(f"rollguard_csrf_1={a.token};")
