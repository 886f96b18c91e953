"""Where a request is seen from: the public address and the proxies trusted to say otherwise.

ASGI middleware that sets each request's scheme, host and client before anything reads them, so
links (`next`, redirects) and the session cookie's `Secure` flag never come from what a client
put in `Host`. With HLFSYNC_PUBLIC_URL set, every request is seen at that origin. Without it,
`X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Forwarded-For` count only when the connection
comes from HLFSYNC_TRUSTED_PROXIES (uvicorn's own handling is switched off in server.py: it
trusts 127.0.0.1 by default and ignores `X-Forwarded-Host`).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from hlfsync import settings as settings_mod

Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def trusted(networks: Networks, host: str | None) -> bool:
    """Whether a peer address is one of the trusted proxies (None: any peer is)."""
    if host is None:
        return False
    if networks is None:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


def _last(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The value the nearest proxy gave: the last of a comma-separated header."""
    for key, value in reversed(headers):
        if key == name:
            return value.decode("latin-1").split(",")[-1].strip() or None
    return None


def _client(headers: list[tuple[bytes, bytes]], networks: Networks) -> str | None:
    """The first address, from the right, of X-Forwarded-For that is not a trusted proxy."""
    for key, value in headers:
        if key == b"x-forwarded-for":
            hops = [h.strip() for h in value.decode("latin-1").split(",") if h.strip()]
            for hop in reversed(hops):
                if not trusted(networks, hop):
                    return hop
            return hops[0] if hops else None
    return None


def _with_host(headers: list[tuple[bytes, bytes]], host: str) -> list[tuple[bytes, bytes]]:
    kept = [(k, v) for k, v in headers if k != b"host"]
    return [(b"host", host.encode("latin-1")), *kept]


class PublicAddress:
    """Rewrites scope scheme/host/client from the public URL or a trusted proxy, never a client."""

    def __init__(self, app: ASGIApp, *, public_url: str | None, trusted_proxies: str) -> None:
        self.app = app
        self.public = urlsplit(public_url) if public_url else None
        self.networks = settings_mod.parse_trusted(trusted_proxies)
        self.any_proxy = bool(trusted_proxies.strip())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        scope = dict(scope)
        headers: list[tuple[bytes, bytes]] = list(scope["headers"])
        peer = scope.get("client")
        if self.any_proxy and peer and trusted(self.networks, peer[0]):
            proto = _last(headers, b"x-forwarded-proto")
            if proto in ("http", "https"):
                scope["scheme"] = proto
            host = _last(headers, b"x-forwarded-host")
            if host and _plausible_host(host):
                headers = _with_host(headers, host)
            client = _client(headers, self.networks)
            if client:
                scope["client"] = (client, 0)
        if self.public is not None:
            scope["scheme"] = self.public.scheme
            headers = _with_host(headers, self.public.netloc)
        scope["headers"] = headers
        await self.app(scope, receive, send)


def _plausible_host(host: str) -> bool:
    """A host[:port] with nothing a URL would read as more (user info, a path, spaces)."""
    return all(c.isalnum() or c in ".-:[]" for c in host) and len(host) <= 255


def is_local_http(scheme: str, server: tuple[str, int] | None, public_url: str | None) -> bool:
    """Plain http on this machine only, where a browser would drop a Secure cookie: judged from
    the public URL, else from the address the connection came in on (never from Host)."""
    if public_url:
        parts = urlsplit(public_url)
        return parts.scheme == "http" and (parts.hostname or "") in LOOPBACK
    return scheme == "http" and server is not None and server[0] in LOOPBACK
