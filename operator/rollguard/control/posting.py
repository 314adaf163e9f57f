"""One HTTP POST to a receiver, and what went wrong in words that are safe to record.

A receiver's URL and headers are secrets: a failure is described by this module's own words
(``receiver answered HTTP 503``, ``connection refused``), never by an exception's text, which
may quote them. Redirects are not followed: a redirected request would carry its headers (a
token) to another host and drop its body, and a receiver that moved is a configuration to fix.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import urllib.error
import urllib.request
from typing import Any

from rollguard.control.receivers import Request

MAX_ANSWER = 65536  # bytes of an answer read (and dropped)


class DeliveryError(Exception):
    """A receiver did not take a message; the text is safe to record (no URL, no token)."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx reaches the caller as an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirects)


def post(request: Request, timeout: float) -> None:
    """POST ``request``; raises ``DeliveryError`` unless the receiver answers 2xx."""
    try:
        req = urllib.request.Request(request.url, data=request.body, method="POST")
        for name, value in request.headers.items():
            req.add_header(name, value)
        with _OPENER.open(req, timeout=timeout) as resp:
            resp.read(MAX_ANSWER)
    except urllib.error.HTTPError as err:
        raise DeliveryError(f"receiver answered HTTP {err.code}") from None
    except urllib.error.URLError as err:
        raise DeliveryError(cause(err.reason, timeout)) from None
    except (OSError, http.client.HTTPException, ValueError, OverflowError) as err:
        # ValueError: a header or URL the HTTP client refuses (its message quotes it).
        raise DeliveryError(cause(err, timeout)) from None


def cause(err: object, timeout: float) -> str:
    """What ``err`` means for a delivery, without its text."""
    if isinstance(err, TimeoutError | socket.timeout):
        return f"no answer within {timeout:g}s"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, ssl.SSLError):
        return "TLS handshake failed"
    if isinstance(err, socket.gaierror):
        return "host name not found"
    if isinstance(err, ConnectionError | http.client.HTTPException):
        return "connection broken"
    if isinstance(err, ValueError | OverflowError):
        return "the receiver's URL or headers cannot be sent (check the receivers file)"
    return f"could not connect ({type(err).__name__})"
