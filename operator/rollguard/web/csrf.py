"""What keeps other web pages from acting through the dashboard. PURE: it judges headers and
form fields and says why a request is refused; ``rollguard.web.server`` answers.

Three checks, each enough against a different attack:

- Host: the name the browser used must be ``localhost`` or an IP literal, on the dashboard's
  port. A DNS name an attacker controls and re-points at 127.0.0.1 (DNS rebinding) fails it.
- Origin, else Referer: when the browser sends either, it must be the dashboard's own origin.
- Double submit: a random token of this process in a hidden form field and in a
  ``SameSite=Strict`` cookie named after the port (cookies do not tell ports apart); both are
  compared with ``hmac.compare_digest``.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

TOKEN_FIELD = "csrf_token"


def _split_host(host: str) -> tuple[str, int | None] | None:
    """``host[:port]`` (``[v6]:port`` for IPv6) as name and port; None when malformed."""
    try:
        parts = urlsplit(f"//{host}")
        return (parts.hostname or "", parts.port)
    except ValueError:
        return None


def _is_local_name(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Guard:
    """The checks of one dashboard process, listening on ``port``."""

    port: int
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def cookie_name(self) -> str:
        return f"rollguard_csrf_{self.port}"

    def cookie(self) -> str:
        """The Set-Cookie value that carries the token."""
        return f"{self.cookie_name}={self.token}; Path=/; HttpOnly; SameSite=Strict"

    def host_refusal(self, host: str | None) -> str | None:
        """Why a request's Host header is refused; None when it is the dashboard's."""
        split = _split_host(host or "")
        if split is None or not split[0]:
            return "the request names no valid Host"
        name, port = split
        if port is None and self.port == 80:
            port = 80  # a browser leaves the default port out of Host
        if port != self.port or not _is_local_name(name):
            return (
                f"Host {host} is not this dashboard (localhost or an IP address, port {self.port})"
            )
        return None

    def origin_refusal(self, headers: Mapping[str, str]) -> str | None:
        """Why a POST's Origin (else Referer) is refused; None when it is the dashboard's own
        origin, or the browser sent neither. The Host header must have passed already."""
        own = f"http://{headers.get('Host', '')}"
        origin = headers.get("Origin")
        if origin is not None:
            return None if origin == own else f"Origin {origin} is not {own}"
        referer = headers.get("Referer")
        if referer is None:
            return None
        parts = urlsplit(referer)
        came_from = f"{parts.scheme}://{parts.netloc}"
        return None if came_from == own else f"Referer {came_from} is not {own}"

    def token_refusal(self, *, form_token: str | None, cookie_header: str | None) -> str | None:
        """Why a POST's token is refused; None when the form field and the cookie both carry
        this process's token."""
        if not form_token:
            return f"the form has no {TOKEN_FIELD}"
        cookie = SimpleCookie()
        try:
            cookie.load(cookie_header or "")
        except CookieError:
            return "the Cookie header is malformed"
        morsel = cookie.get(self.cookie_name)
        if morsel is None:
            return f"the request has no {self.cookie_name} cookie"
        expected = self.token.encode()
        form_ok = hmac.compare_digest(form_token.encode(), expected)
        cookie_ok = hmac.compare_digest(morsel.value.encode(), expected)
        if not (form_ok and cookie_ok):
            return "the form token does not match this dashboard's"
        return None
