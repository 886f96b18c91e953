"""The control API under `/_sandbox/`: seed contacts, read logs, script faults, rotate secrets.

Owns the admin wire format (CONTRACT.md "Sandbox admin endpoints" plus additions documented in
docs/sandbox.md). Admin calls are not logged, not faulted and not authenticated: bind the sandbox
to localhost.
"""

from __future__ import annotations

import gc
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hlfsync_sandbox import contacts, faults, wire
from hlfsync_sandbox.state import SandboxState

PREFIX = "/_sandbox"


class CredentialsChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = Field(default=None, min_length=1)
    client_id: str | None = Field(default=None, min_length=1)
    client_secret: str | None = Field(default=None, min_length=1)
    webhook_secret: str | None = Field(default=None, min_length=1)


class SettingsChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity_set: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    listing_field: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    token_ttl_s: float | None = Field(default=None, gt=0)


class TokensExpire(BaseModel):
    model_config = ConfigDict(extra="forbid")

    audience: Literal["entra", "google"] | None = None


class UnregisteredTokens(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens: list[str]


class BadInput(Exception):  # noqa: N818 - reads as what it is: bad input
    """An admin request the sandbox cannot use; becomes a 422 with the reason."""


def _ok(value: object = None, status: int = 200) -> Response:
    return wire.json_reply(status, {"ok": True} if value is None else value).response()


async def _json(request: Request) -> Any:
    body = await request.body()
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except ValueError as exc:
        raise BadInput(f"body is not JSON: {exc}") from exc


def _parse_contacts(payload: Any) -> list[tuple[str, contacts.Contact]]:
    items = payload.get("contacts") if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise BadInput('expected a JSON list of contacts (or {"contacts": [...]})')
    rows = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadInput(f"contact #{index} is not an object")
        try:
            contactid = contacts.canonical_id(str(item["contactid"]))
        except (KeyError, ValueError) as exc:
            raise BadInput(f"contact #{index}: contactid must be a UUID") from exc
        listed = item.get("listed")
        if not isinstance(listed, bool):
            raise BadInput(f"contact #{index}: listed must be true or false")
        extra = {key: value for key, value in item.items() if key not in ("contactid", "listed")}
        rows.append((contactid, contacts.Contact(listed=listed, extra=extra)))
    return rows


def routes(state: SandboxState) -> list[Route]:
    async def list_contacts(request: Request) -> Response:
        rows = [
            {"contactid": contactid, "listed": row.listed, **row.extra, "version": row.version}
            for contactid, row in state.contacts
        ]
        return _ok(rows)

    async def put_contacts(request: Request) -> Response:
        count = state.contacts.replace(_parse_contacts(await _json(request)))
        # A seeded world lives as long as the run: out of the collector's sight, so a full
        # collection (100,000 contacts walked, a stall of a tenth of a second) does not hold
        # the calls being timed. Dataverse answers while it stores; the sandbox should too.
        gc.freeze()
        return _ok({"count": count})

    async def delete_contacts(request: Request) -> Response:
        state.contacts.clear()
        return _ok()

    async def list_requests(request: Request) -> Response:
        since_text = request.query_params.get("since")
        try:
            since = None if since_text is None else float(since_text)
        except ValueError as exc:
            raise BadInput("since must be Unix time in seconds") from exc
        selected = state.log.select(
            since, request.query_params.get("kind"), request.query_params.get("method")
        )
        return _ok([entry.to_json() for entry in selected])

    async def clear_requests(request: Request) -> Response:
        state.log.clear()
        return _ok()

    async def list_fcm(request: Request) -> Response:
        return _ok([message.to_json() for message in state.fcm_messages])

    async def clear_fcm(request: Request) -> Response:
        state.fcm_messages.clear()
        return _ok()

    async def unregister(request: Request) -> Response:
        change = UnregisteredTokens.model_validate(await _json(request))
        state.unregistered.update(change.tokens)
        return _ok({"unregistered": len(state.unregistered)})

    async def register_again(request: Request) -> Response:
        state.unregistered.clear()
        return _ok()

    async def get_faults(request: Request) -> Response:
        return _ok(state.faults.describe())

    async def set_faults(request: Request) -> Response:
        state.configure_faults(faults.FaultConfig.model_validate(await _json(request)))
        return _ok(state.faults.describe())

    async def clear_faults(request: Request) -> Response:
        state.configure_faults(faults.FaultConfig())
        return _ok()

    async def rotate(request: Request) -> Response:
        change = CredentialsChange.model_validate(await _json(request))
        rotated = state.rotate(**change.model_dump())
        return _ok({"rotated": rotated, "generation": state.credentials.generation})

    async def settings(request: Request) -> Response:
        if request.method == "POST":
            change = SettingsChange.model_validate(await _json(request))
            for name, value in change.model_dump(exclude_none=True).items():
                setattr(state.settings, name, value)
        current = state.settings
        return _ok(
            {
                "entity_set": current.entity_set,
                "listing_field": current.listing_field,
                "token_ttl_s": current.token_ttl_s,
                "alternate_keys": list(current.alternate_keys),
            }
        )

    async def expire_tokens(request: Request) -> Response:
        change = TokensExpire.model_validate(await _json(request))
        return _ok({"expired": state.tokens.expire(change.audience)})

    async def stats(request: Request) -> Response:
        return _ok(state.stats())

    async def reset(request: Request) -> Response:
        state.reset()
        return _ok()

    async def health(request: Request) -> Response:
        return _ok({"ok": True, "organization_id": state.organization_id})

    table = [
        ("/contacts", list_contacts, ["GET"]),
        ("/contacts", put_contacts, ["POST"]),
        ("/contacts", delete_contacts, ["DELETE"]),
        ("/requests", list_requests, ["GET"]),
        ("/requests", clear_requests, ["DELETE"]),
        ("/fcm", list_fcm, ["GET"]),
        ("/fcm", clear_fcm, ["DELETE"]),
        ("/fcm/unregistered", unregister, ["POST"]),
        ("/fcm/unregistered", register_again, ["DELETE"]),
        ("/faults", get_faults, ["GET"]),
        ("/faults", set_faults, ["POST"]),
        ("/faults", clear_faults, ["DELETE"]),
        ("/credentials", rotate, ["POST"]),
        ("/settings", settings, ["GET", "POST"]),
        ("/tokens/expire", expire_tokens, ["POST"]),
        ("/stats", stats, ["GET"]),
        ("/reset", reset, ["POST"]),
        ("/health", health, ["GET"]),
    ]
    return [Route(PREFIX + path, endpoint, methods=methods) for path, endpoint, methods in table]


async def bad_input(request: Request, exc: Exception) -> Response:
    """422 with the reason, for BadInput and pydantic errors raised by admin routes."""
    if isinstance(exc, ValidationError):
        details = exc.errors(include_url=False, include_context=False, include_input=False)
        return wire.json_reply(422, {"error": "invalid", "details": details}).response()
    return wire.json_reply(422, {"error": str(exc)}).response()
