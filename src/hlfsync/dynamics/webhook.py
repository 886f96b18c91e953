"""`webhook-v1`: listing changes as signed JSON events POSTed to one URL (HMAC-SHA256).

Owns the event shape, the signature (and `verify_signature` for receivers) and the webhook calls.
Answers are classified by `outbound.errors`; the secret never leaves `_sign`, and the URL (which
may carry a key in its query) is never logged, only its host.

Signature: `X-HLF-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.".encode() + body)>`
with `X-HLF-Timestamp: <unix seconds>`; receivers should also refuse stale timestamps (`is_fresh`).
The health check (`who_am_i`) POSTs a signed `{"type": "ping", ...}` event: it proves URL, TLS and
secret in one call, and receivers need only the one endpoint. `listings()` raises
`Permanent(code="unsupported")`: an empty answer would look like "nobody is listed" and make
reconciliation re-queue every mentor. Any 2xx counts as accepted, whatever its body: receivers
commonly answer `200 OK` in plain text, and the idempotency key makes a resend harmless.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

import httpx
import structlog

from hlfsync.core.errors import Permanent, SyncFailure
from hlfsync.dynamics.port import (
    ContactListing,
    HealthCheck,
    Identity,
    ListingChange,
    WriteProbe,
)
from hlfsync.outbound import errors
from hlfsync.outbound.transport import unbound

log = structlog.get_logger(__name__)

CONTRACT = "webhook-v1"
EVENT_TYPES = {"remove": "mentor.listing.removed", "restore": "mentor.listing.restored"}
TIMESTAMP_HEADER = "X-HLF-Timestamp"
SIGNATURE_HEADER = "X-HLF-Signature"
CORRELATION_HEADER = "X-Correlation-ID"
DEFAULT_TOLERANCE_S = 300.0


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: str | bytes, timestamp: int | str, body: bytes) -> str:
    """The `X-HLF-Signature` value for `body` sent at `timestamp`."""
    mac = hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(secret: str | bytes, timestamp: int | str, body: bytes, header: str) -> bool:
    """True when `header` is the signature of `body` at `timestamp`; compared in constant time."""
    expected = sign(secret, timestamp, body).encode()
    return hmac.compare_digest(expected, header.strip().encode("utf-8", "replace"))


def is_fresh(timestamp: int | str, now_s: float, tolerance_s: float = DEFAULT_TOLERANCE_S) -> bool:
    """True when `timestamp` is within `tolerance_s` of `now_s`: a replayed event is refused."""
    try:
        return abs(now_s - int(timestamp)) <= tolerance_s
    except (TypeError, ValueError):
        return False


def event_body(change: ListingChange) -> bytes:
    """The JSON event for `change`: compact, keys sorted, so the signed bytes are reproducible."""
    occurred_at = change.occurred_at
    if occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=UTC)
    event = {
        "type": EVENT_TYPES[change.operation],
        "mentor_id": str(change.mentor_id),
        "contact_id": str(change.contact_id),
        "occurred_at": occurred_at.isoformat(),
        "idempotency_key": change.idempotency_key,
    }
    return json.dumps(event, separators=(",", ":"), sort_keys=True).encode()


class WebhookClient:
    """A `DynamicsClient` that POSTs signed events. Takes ownership of `http`."""

    contract = CONTRACT
    max_batch = 1  # the contract has no batch: one POST per event

    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str,
        secret: str | bytes,
        *,
        timeout_s: float | None = None,
        now_s: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("the webhook secret must not be empty")
        self._http = http
        self._url = url
        self._secret = _key(secret)
        self._host = httpx.URL(url).host
        self._timeout: httpx.Timeout | None = httpx.Timeout(timeout_s) if timeout_s else None
        self._now_s = now_s

    def __repr__(self) -> str:
        return f"WebhookClient(host={self._host!r})"

    async def apply(self, change: ListingChange) -> None:
        """POST the event; any 2xx means the receiver took it (it dedupes by idempotency key)."""
        if change.contact_id is None:
            raise Permanent("webhook-v1 needs the mentor's Dynamics contact id")
        await self._post(event_body(change), change.idempotency_key, change.correlation_id)

    async def apply_many(self, changes: Sequence[ListingChange]) -> list[Exception | None]:
        """One POST per change, in order; the contract has no batch."""
        results: list[Exception | None] = []
        for change in changes:
            try:
                await self.apply(change)
            except SyncFailure as failure:
                results.append(failure)
            else:
                results.append(None)
        return results

    async def who_am_i(self) -> Identity:
        """A signed `ping` event: the receiver's 2xx proves URL, TLS and secret."""
        key = f"ping-{uuid.uuid4()}"
        occurred_at = datetime.fromtimestamp(self._now_s(), UTC).isoformat()
        body = json.dumps(
            {"idempotency_key": key, "occurred_at": occurred_at, "type": "ping"},
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        await self._post(body, key, str(uuid.uuid4()))
        return Identity(user_id=f"webhook:{self._host}")

    def credential_checks(self) -> list[HealthCheck]:
        return []  # the signed ping (WhoAmI) is the whole of it

    def contract_checks(self) -> list[HealthCheck]:
        return []

    def take_write_probe(self) -> WriteProbe | None:
        return None

    async def probe(self) -> str:
        """The signed ping proves the endpoint exists and takes our events."""
        identity = await self.who_am_i()
        return f"webhook answered ({identity.user_id})"

    async def listings(self, page_size: int) -> AsyncIterator[list[ContactListing]]:
        """Unsupported: raises Permanent(code="unsupported") on the first iteration."""
        raise Permanent("webhook-v1 has no read API", code="unsupported")
        yield []  # pragma: no cover - makes this an async generator, as the Protocol expects

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, body: bytes, idempotency_key: str, correlation_id: str) -> None:
        timestamp = str(int(self._now_s()))
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            "Idempotency-Key": idempotency_key,
            CORRELATION_HEADER: correlation_id,
        }
        request = self._http.build_request(
            "POST",
            self._url,
            headers=headers,
            content=body,
            timeout=self._timeout if self._timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )
        started = time.perf_counter()
        try:
            response = unbound(await self._http.send(request, follow_redirects=False))
        except httpx.HTTPError as exc:
            failure = errors.classify_exception(exc)
            log.warning(
                "webhook.call.failed",
                host=self._host,
                correlation_id=correlation_id,
                failure=failure.summary(),
            )
            raise failure from None
        log.debug(
            "webhook.call",
            host=self._host,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            correlation_id=correlation_id,
        )
        answer = errors.classify_response(response.status_code, response.headers, response.content)
        if answer is not None:
            # One URL for every mentor: a 404/410 says the endpoint is gone, not one contact.
            raise errors.endpoint_gone(answer)
