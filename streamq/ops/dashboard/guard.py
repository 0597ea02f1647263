"""What keeps the dashboard to its own page: the Host check against DNS rebinding, the checks
that stop another site from making a browser retry or purge (CSRF), and the headers that keep
job data inert in the page (a strict Content-Security-Policy).

It wraps the whole app (an ASGI middleware), so no route can forget it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ("ACTION_HEADER", "SECURITY_HEADERS", "Guard", "is_loopback", "loopback_names")

#: The header every state-changing request carries: a page of another origin cannot send it
#: without a CORS preflight, which the dashboard never approves.
ACTION_HEADER = "x-streamq-dashboard"

#: On every response. The page's own script and style only: no inline script, no other origin,
#: no frames, no forms; data reaches the page through fetch() and is set as text.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = tuple(
    (name.encode(), value.encode())
    for name, value in (
        (
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
            " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        ("cache-control", "no-store"),
    )
)

#: Sec-Fetch-Site values of requests the page itself makes (or a person typing the address).
_OWN_SITE = frozenset({"same-origin", "none"})
_SAFE_METHODS = frozenset({"GET", "HEAD"})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def loopback_names(bound_host: str) -> frozenset[str]:
    """The Host names a page served on a loopback address may be asked for under."""
    return frozenset({"localhost", "127.0.0.1", "::1", bound_host.strip("[]").lower()})


def host_name(host_header: str) -> str:
    """``example.com:8080`` -> ``example.com``; ``[::1]:8080`` -> ``::1``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    """Refuses, with 403 and a JSON error, a request for a Host the server does not answer to
    (when ``allowed_hosts`` is given), a cross-site request for the API, and a state-changing
    request without the action header, a JSON body or a same-origin Origin."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Collection[str] | None = None) -> None:
        self.app = app
        self.allowed_hosts = None if allowed_hosts is None else frozenset(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is not None:
            await JSONResponse({"error": refusal}, status_code=403)(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def refusal(self, scope: Scope) -> str | None:
        """Why the request is refused, or None."""
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if self.allowed_hosts is not None and host_name(host) not in self.allowed_hosts:
            return (
                f"this dashboard answers to {', '.join(sorted(self.allowed_hosts))} only, not"
                f" Host {host!r}"
            )
        path: str = scope["path"]
        if not path.startswith("/api/"):
            return None
        site = headers.get("sec-fetch-site")
        if site is not None and site not in _OWN_SITE:
            return f"cross-site request refused (Sec-Fetch-Site: {site})"
        if scope["method"] in _SAFE_METHODS:
            return None
        if headers.get(ACTION_HEADER) != "1":
            return f"a request that changes something must carry the header {ACTION_HEADER}: 1"
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return (
                "a request that changes something must send JSON (content-type: application/json)"
            )
        origin = headers.get("origin")
        if origin is not None and origin != f"{scope.get('scheme', 'http')}://{host}":
            return f"cross-origin request refused (Origin: {origin})"
        return None
