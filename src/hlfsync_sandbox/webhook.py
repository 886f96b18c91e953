"""The `webhook-v1` receiver: signed listing events, applied once per idempotency key, and pings.

Owns the signature scheme (`sign`, HMAC-SHA256 over `f"{timestamp}.{body}"`) and the event rules.
A portal exposing a webhook instead of the Web API would behave like this.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hlfsync_sandbox import contacts, gateway, wire
from hlfsync_sandbox.requestlog import LogEntry
from hlfsync_sandbox.state import SandboxState

PATH = "/webhook"
SIGNATURE_HEADER = "x-hlf-signature"
TIMESTAMP_HEADER = "x-hlf-timestamp"
TOLERANCE_S = 300.0  # a delivery signed longer ago than this is refused as a replay
EVENTS = {"mentor.listing.removed": False, "mentor.listing.restored": True}
PING = "ping"  # hlfsync's health check: a signed event that changes nothing


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-HLF-Signature` value for `body` sent at `timestamp` (Unix seconds, as sent)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def receive(
    state: SandboxState, headers: Mapping[str, str], body: bytes, entry: LogEntry
) -> wire.Reply:
    """Verify, validate and apply one delivery, noting the contact in the request log entry."""
    try:
        _verify(state, headers, body)
        kind, contactid, key = _parse(body)
    except wire.Refusal as refusal:
        return refusal.reply
    if contactid is None:  # a ping: the signature checked out, and that is all it asks
        return wire.json_reply(200, {"status": "pong", "idempotency_key": key})
    entry.contactid = contactid
    fault = state.faults.decide("webhook", "POST", PATH, contactid, targeted_only=True)
    if fault is not None:
        raise gateway.Injected(fault)
    if state.contacts.get(contactid) is None:
        return wire.json_reply(404, {"error": "unknown_contact", "contact_id": contactid})
    if key in state.webhook_keys:
        return wire.json_reply(200, {"status": "duplicate", "idempotency_key": key})
    state.contacts.write(contactid, EVENTS[kind], {})
    state.webhook_keys.add(key)
    entry.listed = EVENTS[kind]
    return wire.json_reply(200, {"status": "applied", "idempotency_key": key})


def _verify(state: SandboxState, headers: Mapping[str, str], body: bytes) -> None:
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    try:
        sent_at = float(timestamp)
    except ValueError:
        raise _unauthorized("missing or malformed X-HLF-Timestamp") from None
    if abs(state.clock() - sent_at) > TOLERANCE_S:
        raise _unauthorized("stale X-HLF-Timestamp")
    expected = sign(state.credentials.webhook_secret, timestamp, body)
    if not hmac.compare_digest(headers.get(SIGNATURE_HEADER, "").encode(), expected.encode()):
        raise _unauthorized("bad X-HLF-Signature")
    if state.faults.config.auth == "reject":
        raise _unauthorized("credentials rejected")


def _parse(body: bytes) -> tuple[str, str | None, str]:
    """(event type, canonical contact id or None for a ping, idempotency key) of a valid event."""
    try:
        event = json.loads(body)
    except ValueError:
        raise _bad("body is not JSON") from None
    if not isinstance(event, dict):
        raise _bad("body must be a JSON object")
    kind = event.get("type")
    if kind == PING:
        key = event.get("idempotency_key")
        return PING, None, key if isinstance(key, str) else ""
    if kind not in EVENTS:
        raise _bad(f"unknown event type {kind!r}")
    for name in ("mentor_id", "contact_id", "occurred_at", "idempotency_key"):
        if not isinstance(event.get(name), str) or not event[name]:
            raise _bad(f"{name} must be a non-empty string")
    try:
        uuid.UUID(event["mentor_id"])
        contactid = contacts.canonical_id(event["contact_id"])
    except ValueError:
        raise _bad("mentor_id and contact_id must be UUIDs") from None
    return kind, contactid, event["idempotency_key"]


def _unauthorized(reason: str) -> wire.Refusal:
    return wire.Refusal(wire.json_reply(401, {"error": "invalid_signature", "reason": reason}))


def _bad(reason: str) -> wire.Refusal:
    return wire.Refusal(wire.json_reply(400, {"error": "invalid_event", "reason": reason}))


def routes(state: SandboxState) -> list[Route]:
    async def webhook(request: Request) -> Response:
        body = await request.body()
        drift = state.faults.config.drift
        if drift is not None and drift.webhook != "ok":
            # The receiver was moved or removed: the URL answers as a web server would.
            gone = drift.webhook == "gone"
            return wire.json_reply(
                410 if gone else 404, {"error": wire.reason(410 if gone else 404)}
            ).response()
        return receive(state, request.headers, body, gateway.entry(request)).response()

    return [Route(PATH, webhook, methods=["POST"])]
