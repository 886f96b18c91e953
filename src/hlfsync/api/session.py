"""The dashboard's sign-in: the access token kept in a cookie, and CSRF tokens for its forms.

The cookie is HttpOnly (no script reads it), SameSite=Strict (no other site sends it) and Secure,
except on plain http to 127.0.0.1/localhost, where browsers would drop a Secure cookie and the
traffic never leaves the machine; "plain http to this machine" is judged from the public URL or
the connection, never from `Host` (see proxy.py). Each form carries a CSRF token derived from
the session's token (HMAC with the JWT secret), checked on every POST.

The sign-in form itself is guarded against login CSRF (another site signing a browser in as
someone else): its POST must carry a token matching a SameSite=Strict cookie set with the form,
and an `Origin`, when the browser gives a real one, must be ours.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

from fastapi import Request, Response

from hlfsync.api import auth, proxy
from hlfsync.api.problems import Problem

COOKIE = "hlfsync_session"
LOGIN_COOKIE = "hlfsync_login"
LOGIN_PATH = "/dashboard/login"
LOGIN_FORM_TTL_S = 3600


class SignInRequired(Exception):  # noqa: N818 - a redirect, not an error
    """No valid session: the dashboard sends the browser to the sign-in page."""


def sign_in_url(base_url: str, code: str) -> str:
    """The link `hlfsync demo` prints: a one-time code (signin.issue), never a token."""
    return f"{base_url.rstrip('/')}{LOGIN_PATH}?code={code}"


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


def login_form(secret: str) -> tuple[str, str]:
    """A fresh sign-in form's cookie value and the token the form must send back with it."""
    nonce = secrets.token_urlsafe(24)
    return nonce, login_token(secret, nonce)


def keep_login_form(response: Response, request: Request, nonce: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE, nonce, max_age=LOGIN_FORM_TTL_S, path=LOGIN_PATH,
        secure=_secure(request), httponly=True, samesite="strict",
    )  # fmt: skip


def login_allowed(request: Request, secret: str, presented: str | None) -> bool:
    """Whether a sign-in POST comes from our own form: the form's token matches its cookie, and
    the Origin, if the browser names one (a `no-referrer` page sends "null"), is ours."""
    origin = request.headers.get("origin")
    if origin not in (None, "null") and origin != _own_origin(request):
        return False
    nonce = request.cookies.get(LOGIN_COOKIE)
    if not nonce or not presented:
        return False
    return hmac.compare_digest(login_token(secret, nonce), presented)


def login_token(secret: str, nonce: str) -> str:
    return hmac.new(secret.encode(), b"login:" + nonce.encode(), hashlib.sha256).hexdigest()


def _own_origin(request: Request) -> str:
    # request.url is the public address (proxy.PublicAddress), never a client's Host as is.
    return f"{request.url.scheme}://{request.url.netloc}"


def keep(
    response: Response, request: Request, token: str, claims: dict[str, Any], ttl_s: float
) -> None:
    """Put the token in the session cookie, for as long as the token (and the session) lasts."""
    remaining = max(min(int(claims["exp"] - time.time()), int(ttl_s)), 0)
    response.set_cookie(
        COOKIE,
        token,
        max_age=remaining,
        path="/dashboard",
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )
    response.delete_cookie(LOGIN_COOKIE, path=LOGIN_PATH, secure=_secure(request), httponly=True,
                           samesite="strict")  # fmt: skip


def forget(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path="/dashboard", secure=_secure(request), httponly=True,
        samesite="strict",
    )  # fmt: skip


def _secure(request: Request) -> bool:
    public_url = request.app.state.hlfsync.settings.public_url
    return not proxy.is_local_http(request.url.scheme, request.scope.get("server"), public_url)
