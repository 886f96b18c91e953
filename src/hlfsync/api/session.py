"""The dashboard's sign-in: the access token kept in a cookie, and CSRF tokens for its forms.

The cookie is HttpOnly (no script reads it), SameSite=Strict (no other site sends it) and Secure,
except on plain http to 127.0.0.1/localhost, where browsers would drop a Secure cookie and the
traffic never leaves the machine. Each form carries a CSRF token derived from the session's
token (HMAC with the JWT secret), checked on every POST.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from fastapi import Request, Response

from hlfsync.api import auth
from hlfsync.api.problems import Problem

COOKIE = "hlfsync_session"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class SignInRequired(Exception):  # noqa: N818 - a redirect, not an error
    """No valid session: the dashboard sends the browser to the sign-in page."""


def sign_in_url(base_url: str, token: str) -> str:
    """The link `hlfsync demo` prints: opening it signs the browser in."""
    return f"{base_url.rstrip('/')}/dashboard/login?token={token}"


def caller(request: Request, secret: str, audience: str) -> tuple[auth.Caller, str]:
    """The signed-in caller and their token; SignInRequired without a valid session."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise SignInRequired
    try:
        return auth.verify(token, secret=secret, audience=audience), token
    except Problem as exc:  # an expired or forged session: sign in again
        raise SignInRequired from exc


def csrf_token(secret: str, token: str) -> str:
    return hmac.new(secret.encode(), b"csrf:" + token.encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: str, token: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token(secret, token), presented or "")


def keep(response: Response, request: Request, token: str, claims: dict[str, Any]) -> None:
    """Put the token in the session cookie, for as long as the token itself is valid."""
    remaining = max(int(claims["exp"] - time.time()), 0)
    response.set_cookie(
        COOKIE,
        token,
        max_age=remaining,
        path="/dashboard",
        secure=not _local_http(request),
        httponly=True,
        samesite="strict",
    )


def forget(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path="/dashboard", secure=not _local_http(request), httponly=True,
        samesite="strict",
    )  # fmt: skip


def _local_http(request: Request) -> bool:
    return request.url.scheme == "http" and (request.url.hostname or "") in LOCAL_HOSTS
