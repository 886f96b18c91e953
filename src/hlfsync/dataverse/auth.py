"""OAuth 2.0 client-credentials tokens for Dataverse, through msal, shared by every caller.

Owns token fetching, caching and the mapping of token failures to `core.errors`. Never logs a token
or the client secret, and never puts either in an exception.

msal is synchronous (requests), so it runs in a worker thread behind one `asyncio.Lock`: concurrent
callers share one token request. msal's `acquire_token_for_client` answers from its own token
cache while the token has more than five minutes left (see msal/application.py,
`_acquire_token_silent_from_cache_and_possibly_refresh_it`); `token()` keeps the last answer in
memory on top of that, so the hot path costs no thread hop. Local authorities (the sandbox, `https://127.0.0.1:PORT/<tenant>`)
need `instance_discovery=False`: msal then skips its call to login.microsoftonline.com and reads
`{authority}/v2.0/.well-known/openid-configuration` from the host itself. The authority must be
https with a tenant segment; msal refuses anything else.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import structlog

from hlfsync.core.errors import AuthFailure, SyncFailure, Transient
from hlfsync.outbound.errors import one_line
from hlfsync.outbound.tls import requests_session

log = structlog.get_logger(__name__)

# msal treats a token with less than five minutes left as expired; so do we.
EXPIRY_MARGIN_S = 300.0
# Hosts msal knows; for any other host instance discovery must be off or msal asks Microsoft.
MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.microsoftonline.us",
        "login.usgovcloudapi.net",
        "login.partner.microsoftonline.cn",
        "login.chinacloudapi.cn",
    }
)
# OAuth 2.0 error codes that say "try again later" rather than "your credentials are wrong".
_TRANSIENT_OAUTH_ERRORS = frozenset({"temporarily_unavailable", "server_error"})
_AADSTS = re.compile(r"AADSTS\d+")


class Tokens(Protocol):
    """What `DataverseClient` needs from a token source; tests pass a fake."""

    async def token(self) -> str:
        """A bearer token for the organisation. Raises AuthFailure or Transient."""

    def invalidate(self, stale: str | None = None) -> None:
        """Forget `stale` (or whatever is cached), so the next `token()` asks the authority."""

    def close(self) -> None:
        """Release the authority connection."""


@dataclass(frozen=True, slots=True)
class _Cached:
    token: str = ""
    refresh_at: float = 0.0  # time.monotonic() after which we ask msal again

    def __repr__(self) -> str:  # the token must not reach a log through a repr
        return f"_Cached(refresh_at={self.refresh_at:.0f})"


def is_microsoft_authority(authority: str) -> bool:
    return (urlsplit(authority).hostname or "").lower() in MICROSOFT_AUTHORITY_HOSTS


def _aadsts(result: dict[str, Any]) -> str | None:
    codes = result.get("error_codes")
    if isinstance(codes, list) and codes:
        return f"AADSTS{codes[0]}"
    match = _AADSTS.search(str(result.get("error_description") or ""))
    return match.group(0) if match else None


def _is_json_error(exc: BaseException) -> bool:
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, json.JSONDecodeError):
            return True
        current = current.__cause__ or current.__context__
    return False


class TokenProvider:
    """Client-credentials tokens for `resource` (the org URL) from `authority`."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        authority: str,
        resource: str,
        ca_bundle: str | Path | None = None,
        timeout_s: float = 10.0,
        http_client: object | None = None,
        app_factory: Callable[..., Any] | None = None,
    ) -> None:
        self._client_id = client_id
        self._secret = client_secret
        self._authority = authority.rstrip("/")
        self._scopes = [f"{resource.rstrip('/')}/.default"]
        self._verify: str | bool = str(ca_bundle) if ca_bundle else True
        self._timeout_s = timeout_s
        self._http_client = http_client  # a requests-like session; tests pass a fake
        self._app_factory = app_factory
        self._app: Any = None
        self._http_cache: dict[Any, Any] = {}  # msal's throttle cache, ours so we can clear it
        self._cached = _Cached()
        self._lock = asyncio.Lock()
        self.fetches = 0  # token requests that reached msal's network path; for tests and metrics

    def __repr__(self) -> str:
        return f"TokenProvider(authority={self._authority!r}, client_id={self._client_id!r})"

    async def token(self) -> str:
        """A valid token: from memory, else one msal call shared by every concurrent caller."""
        cached = self._cached
        if cached.token and time.monotonic() < cached.refresh_at:
            return cached.token
        async with self._lock:
            cached = self._cached  # another caller may have refreshed while we waited
            if cached.token and time.monotonic() < cached.refresh_at:
                return cached.token
            token, expires_in_s, source = await asyncio.to_thread(self._acquire)
            lifetime_s = max(expires_in_s - EXPIRY_MARGIN_S, expires_in_s / 2)
            self._cached = _Cached(token=token, refresh_at=time.monotonic() + lifetime_s)
            log.info("dataverse.token", source=source, expires_in_s=expires_in_s)
            return token

    def invalidate(self, stale: str | None = None) -> None:
        """Drop the cached token unless a newer one already replaced `stale`."""
        if stale is not None and self._cached.token != stale:
            return  # a concurrent caller already refreshed; keep the new token
        self._cached = _Cached()
        # A 401 after a rotated secret must reach the authority again, not msal's
        # 60-second memory of an earlier refusal, nor its cache of the revoked token.
        self._forget_answers()
        log.info("dataverse.token.invalidated")

    def _forget_answers(self) -> None:
        """Drop what msal keeps of the authority's answers: its discovery document (kept a day),
        its refusals (a minute) and its tokens (their lifetime). After an answer we could not
        use, the next attempt must ask the authority, not be served the same answer again."""
        self._http_cache.clear()
        if self._app is not None:
            cache = self._app.token_cache
            for entry in list(cache.search(cache.CredentialType.ACCESS_TOKEN)):
                cache.remove_at(entry)

    def close(self) -> None:
        if self._app is not None:
            self._app.http_client.close()

    def _build_app(self) -> Any:
        import msal

        factory = self._app_factory or msal.ConfidentialClientApplication
        local = not is_microsoft_authority(self._authority)
        http_client = self._http_client or requests_session(self._verify, self._timeout_s)
        return factory(
            self._client_id,
            client_credential=self._secret,
            authority=self._authority,
            verify=self._verify,  # used by msal only when it builds its own session
            timeout=self._timeout_s,
            http_client=http_client,
            http_cache=self._http_cache,
            instance_discovery=False if local else None,
            token_cache=msal.TokenCache(),
        )

    def _acquire(self) -> tuple[str, float, str]:
        """Runs in a worker thread: build the app if needed, ask msal, classify what it says."""
        import requests
        from msal.exceptions import MsalServiceError

        try:
            if self._app is None:
                self._app = self._build_app()  # reads the authority's OpenID configuration
            self.fetches += 1
            result = self._app.acquire_token_for_client(scopes=self._scopes)
        except requests.RequestException as exc:
            raise Transient(f"token authority unreachable ({type(exc).__name__})") from None
        except MsalServiceError:
            raise Transient("token authority answered with a server error") from None
        except ValueError as exc:
            # msal raises ValueError for a non-JSON answer (a proxy page: may pass) and for an
            # authority it cannot discover (unknown tenant, wrong URL: a person must fix it).
            self._forget_answers()
            if _is_json_error(exc):
                raise Transient("token authority answered with something other than JSON") from None
            raise AuthFailure("token authority configuration could not be read") from None
        except (KeyError, TypeError, AttributeError) as exc:
            # msal indexes the discovery document and the token answer without checking their
            # shape ({} or a JSON list): the authority is not speaking OAuth, a person must look.
            self._forget_answers()
            raise AuthFailure(
                f"token authority answered in an unexpected shape ({type(exc).__name__})"
            ) from None
        if not isinstance(result, dict):
            self._forget_answers()
            raise AuthFailure("token authority answered in an unexpected shape")
        return self._read(cast("dict[str, Any]", result))

    def _read(self, result: dict[str, Any]) -> tuple[str, float, str]:
        token = result.get("access_token")
        if isinstance(token, str) and token:
            expires_in = result.get("expires_in")
            expires_in_s = float(expires_in) if isinstance(expires_in, int | float) else 3600.0
            return token, expires_in_s, str(result.get("token_source", "identity_provider"))
        self._forget_answers()  # msal may have cached an answer that holds no usable token
        raise self._refusal(result)

    def _refusal(self, result: dict[str, Any]) -> SyncFailure:
        error = str(result.get("error") or "no access_token in the answer")
        code = _aadsts(result)
        description = str(result.get("error_description") or "").splitlines()
        first = one_line(description[0], 160) if description else ""
        detail = f"token request refused: {error}" + (f" ({first})" if first else "")
        detail = detail.replace(self._secret, "***") if self._secret else detail
        if error in _TRANSIENT_OAUTH_ERRORS:
            return Transient(detail, code=code)
        return AuthFailure(detail, code=code)
