"""`FcmNotifier`: data-only pushes through the FCM HTTP v1 API, with service-account OAuth tokens.

Owns the OAuth token (google-auth, refreshed in a worker thread and cached until near expiry) and
the send call. Never logs or raises with an access token, a device token or the key file's
contents; retries nothing itself except one resend after a token refresh on a 401.

The token request runs in a worker thread, never on the event loop, and google-auth's own retry
loop (real `time.sleep`s of seconds on 5xx/429) is cut short by `_NoQuietRetry`: the dispatcher
holds deliveries and retries durably instead. A token failure is `auth` (credentials refused) or
`paused` (token endpoint unavailable); neither is about the message, so neither spends an attempt.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import structlog

from hlfsync.core.errors import AuthFailure, Permanent, SyncFailure, Transient
from hlfsync.notify import fcm_wire, google_token
from hlfsync.notify.base import DeliveryOutcome, DeliveryResult
from hlfsync.notify.log import fingerprint
from hlfsync.outbound import errors
from hlfsync.outbound.tls import requests_session
from hlfsync.outbound.transport import unbound

log = structlog.get_logger(__name__)

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
# google-auth calls a token stale 3 min 45 s before expiry; refresh a little earlier than that.
EXPIRY_MARGIN_S = 240.0
TOKEN_TIMEOUT_S = 10.0


class TokenAnswer(Exception):  # noqa: N818 - carries an answer out of google-auth, not a bug
    """A non-200 answer from the token endpoint, raised before google-auth can retry it."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class _NoQuietRetry:
    """Wraps google-auth's transport so a failed token request comes straight back to us.

    google-auth retries 5xx/429 token answers itself with `time.sleep` between tries; our retries
    are durable and classified by `google_token`, so the first non-200 answer ends the refresh.
    """

    def __init__(self, inner: Callable[..., Any]) -> None:
        self._inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        response = self._inner(*args, **kwargs)
        if response.status != 200:
            data = response.data
            raise TokenAnswer(int(response.status), data if isinstance(data, bytes) else b"")
        return response


class GoogleAccessTokens:
    """OAuth access tokens for a service account, shared by concurrent callers.

    One fetch at a time: callers that arrive while a fetch is running wait for it and share its
    token or its failure, so fifty deliveries make one token request, not fifty (or 150).
    """

    def __init__(
        self,
        credentials_path: str | Path,
        *,
        ca_bundle: str | Path | None = None,
        token_uri: str | None = None,
        credentials_factory: Callable[[], Any] | None = None,
        session_factory: Callable[[], Any] | None = None,
    ) -> None:
        self._path = str(credentials_path)
        self._verify: str | bool = str(ca_bundle) if ca_bundle else True
        self._token_uri = token_uri
        self._credentials_factory = credentials_factory or self._load
        self._session_factory = session_factory
        self._credentials: Any = None
        self._session: Any = None
        self._token = ""
        self._refresh_at = 0.0
        self._inflight: asyncio.Future[tuple[str, float]] | None = None
        self.fetches = 0

    def __repr__(self) -> str:
        return "GoogleAccessTokens()"

    async def token(self) -> str:
        """A valid access token; one refresh at a time. Raises AuthFailure or Transient."""
        if self._token and time.monotonic() < self._refresh_at:
            return self._token
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(asyncio.to_thread(self._refresh))
            self._inflight.add_done_callback(self._settle)
        # shield: one caller being cancelled must not cancel the fetch the others wait for.
        token, _lifetime_s = await asyncio.shield(self._inflight)
        return token

    def _settle(self, fetch: asyncio.Future[tuple[str, float]]) -> None:
        self._inflight = None
        if fetch.cancelled() or fetch.exception() is not None:
            return
        token, lifetime_s = fetch.result()
        self._token, self._refresh_at = token, time.monotonic() + lifetime_s
        log.info("fcm.token", expires_in_s=round(lifetime_s))

    def invalidate(self, stale: str | None = None) -> None:
        if stale is None or stale == self._token:
            self._token, self._refresh_at = "", 0.0

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    def _load(self) -> Any:
        from google.oauth2 import service_account

        load: Any = service_account.Credentials.from_service_account_file  # untyped upstream
        credentials = load(self._path, scopes=[SCOPE])
        return credentials.with_token_uri(self._token_uri) if self._token_uri else credentials

    def _refresh(self) -> tuple[str, float]:
        """Runs in a worker thread: load the key file once, refresh, classify what went wrong."""
        from google.auth import exceptions
        from google.auth.transport.requests import Request

        try:
            if self._credentials is None:
                self._credentials = self._credentials_factory()
        except (OSError, ValueError, KeyError) as exc:
            raise AuthFailure(f"FCM credentials file unusable ({type(exc).__name__})") from None
        if self._session is None:
            factory = self._session_factory or (lambda: requests_session(self._verify, None))
            self._session = factory()
        self.fetches += 1
        try:
            # google-auth's own default timeout is 120 s; a worker thread should not wait that long.
            request = functools.partial(
                _NoQuietRetry(Request(self._session)), timeout=TOKEN_TIMEOUT_S
            )
            self._credentials.refresh(request)
        except TokenAnswer as answer:
            raise google_token.classify(answer.status, answer.body) from None
        except exceptions.RefreshError as exc:
            raise _from_refresh_error(exc) from None
        except exceptions.TransportError as exc:
            raise Transient(f"FCM token endpoint unreachable ({type(exc).__name__})") from None
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            # google-auth indexes the token endpoint's answer without checking its shape (a JSON
            # list, a 200 without a token): like any odd answer from a hop it may pass, so retry.
            raise Transient(
                f"FCM token endpoint answer unreadable ({type(exc).__name__})"
            ) from None
        token, expiry = self._credentials.token, self._credentials.expiry
        if not isinstance(token, str) or not token:
            raise AuthFailure("FCM token endpoint answered without an access token")
        lifetime_s = 3600.0
        if isinstance(expiry, datetime):
            now = datetime.now(UTC).replace(tzinfo=None)  # google-auth keeps naive UTC
            lifetime_s = (expiry.replace(tzinfo=None) - now).total_seconds()
        return token, max(lifetime_s - EXPIRY_MARGIN_S, lifetime_s / 2, 0.0)


def _from_refresh_error(exc: Exception) -> SyncFailure:
    """A RefreshError google-auth raised itself (not an answer we saw): its first words only."""
    text = str(exc.args[0]) if exc.args else "refresh refused"
    code = google_token.one_line(text.split(":", 1)[0], 60)
    if text.lstrip().startswith("<"):
        return Transient("FCM token endpoint answered a page, not an OAuth answer")
    if getattr(exc, "retryable", False):
        return Transient(f"FCM token request failed: {code}")
    return AuthFailure(f"FCM token request refused: {code}")


class FcmNotifier:
    """A `Notifier` over FCM HTTP v1. Takes ownership of `http`."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        project_id: str,
        credentials_path: str | Path,
        endpoint: str = "https://fcm.googleapis.com",
        ca_bundle: str | Path | None = None,
        *,
        token_uri: str | None = None,
        tokens: GoogleAccessTokens | None = None,
    ) -> None:
        self._http = http
        self._url = fcm_wire.send_url(endpoint, project_id)
        self._tokens = tokens or GoogleAccessTokens(
            credentials_path, ca_bundle=ca_bundle, token_uri=token_uri
        )

    def __repr__(self) -> str:
        return f"FcmNotifier(url={self._url!r})"

    async def send(
        self, token: str, data: dict[str, str], *, collapse_key: str | None = None
    ) -> DeliveryResult:
        """One data-only push; a 401 gets one token refresh and one resend.

        `collapse_key` names the incident: a device that was offline gets the last push of each
        key, not a pile of them.
        """
        problem = fcm_wire.data_problem(data) or (None if token else "empty device token")
        if problem is not None:
            return DeliveryResult.rejected(f"refused before sending: {problem}")
        body = fcm_wire.message_body(token, data, collapse_key=collapse_key)
        result = await self._attempt(body, refresh=True)
        # A delivered push's line is the dispatcher's `alert_delivered` (with this device's
        # fingerprint): one line a push at info, not two, on a night of 100,000 of them.
        emit = log.debug if result.outcome is DeliveryOutcome.DELIVERED else log.info
        emit(
            "fcm.send",
            outcome=result.outcome.value,
            status=result.status,
            kind=data.get("type"),
            device=fingerprint(token),
            reason=result.reason,
        )
        return result

    async def check(self) -> DeliveryResult:
        """Fetch a fresh access token, send nothing: `delivered` when Google grants one.

        For the health check; a cached token would hide a key revoked since it was issued.
        """
        self._tokens.invalidate()
        try:
            await self._tokens.token()
        except SyncFailure as failure:
            return _from_token_failure(failure)
        return DeliveryResult.delivered(None)

    async def aclose(self) -> None:
        await self._http.aclose()
        self._tokens.close()

    async def _attempt(self, body: bytes, *, refresh: bool) -> DeliveryResult:
        try:
            access = await self._tokens.token()
        except SyncFailure as failure:
            return _from_token_failure(failure)
        try:
            response = unbound(
                await self._http.post(
                    self._url,
                    content=body,
                    headers={
                        "Authorization": f"Bearer {access}",
                        "Content-Type": "application/json",
                    },
                )
            )
        except httpx.HTTPError as exc:
            return _from_failure(errors.classify_exception(exc))
        if refresh and fcm_wire.wants_token_refresh(response.status_code, response.content):
            self._tokens.invalidate(access)
            return await self._attempt(body, refresh=False)
        return fcm_wire.classify(response.status_code, response.headers, response.content)


def _from_token_failure(failure: SyncFailure) -> DeliveryResult:
    """No token: nothing about this message is known yet, so the delivery is held either way."""
    if isinstance(failure, AuthFailure):
        return DeliveryResult.auth(failure.summary(), failure.status)
    return DeliveryResult.paused(
        failure.summary(), retry_after_s=getattr(failure, "retry_after_s", None)
    )


def _from_failure(failure: SyncFailure) -> DeliveryResult:
    if isinstance(failure, AuthFailure):
        return DeliveryResult.auth(failure.summary(), failure.status)
    if isinstance(failure, Permanent):
        return DeliveryResult.rejected(failure.summary(), failure.status)
    return DeliveryResult.retry(
        failure.summary(), retry_after_s=getattr(failure, "retry_after_s", None)
    )
