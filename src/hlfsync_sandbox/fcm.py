"""FCM HTTP v1 `messages:send`: validation as strict as Firebase's, and an outbox to inspect.

Owns what FCM accepts and refuses (auth, project, message shape, unregistered tokens). Messages
that pass are recorded in `state.fcm_messages`; nothing is delivered anywhere.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hlfsync_sandbox import tokens, wire
from hlfsync_sandbox.state import FcmMessage, SandboxState

MESSAGE_FIELDS = frozenset(
    {"name", "data", "notification", "android", "webpush", "apns", "fcm_options"}
)
TARGETS = ("token", "topic", "condition")
RESERVED_DATA_KEYS = frozenset({"from", "notification", "message_type"})
# Registration tokens are URL-safe base64 with a `:` (about 150-180 characters); anything with
# other characters or absurdly long is refused as FCM does. Short test tokens still pass.
REGISTRATION_TOKEN = re.compile(r"[A-Za-z0-9_:\-]{1,4096}")


def send(state: SandboxState, project: str, headers: Mapping[str, str], body: bytes) -> wire.Reply:
    """Validate and record one message, answering as `fcm.googleapis.com` would."""
    denied = tokens.check_google(state, headers)
    if denied is not None:
        return denied
    try:
        payload, message = _parse(state, project, body)
    except wire.Refusal as refusal:
        return refusal.reply
    token = message["token"]
    if token in state.unregistered:
        return wire.google_error(404, "Requested entity was not found.", fcm_code="UNREGISTERED")
    if payload.get("validate_only") or payload.get("validateOnly"):
        return wire.json_reply(200, {"name": f"projects/{project}/messages/fake_message_id"})
    now = state.clock()
    name = f"projects/{project}/messages/0:{int(now * 1e6)}%{secrets.token_hex(8)}"
    data = message.get("data") or {}
    state.fcm_messages.append(FcmMessage(token, dict(data), now, name, message))
    return wire.json_reply(200, {"name": name})


def _parse(state: SandboxState, project: str, body: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    if project != state.fcm_project_id:
        # Google answers a project the credentials have no rights on with a plain 403
        # PERMISSION_DENIED (SENDER_ID_MISMATCH is for a token registered to another project).
        raise wire.Refusal(
            wire.google_error(
                403,
                f"Permission 'cloudmessaging.messages.create' denied on resource "
                f"'//cloudresourcemanager.googleapis.com/projects/{project}' (or it may not "
                "exist).",
            )
        )
    try:
        payload = json.loads(body)
    except ValueError:
        raise _invalid("Invalid JSON payload received. Unexpected token.") from None
    if not isinstance(payload, dict):
        raise _invalid("Invalid JSON payload received. Expected an object.")
    for name in payload:
        if name not in ("message", "validate_only", "validateOnly"):
            raise _invalid(f'Invalid JSON payload received. Unknown name "{name}".')
    message = payload.get("message")
    if not isinstance(message, dict):
        raise _invalid("Request contains an invalid argument: message is required.")
    _check_message(message)
    token = message.get("token")
    if token is None:
        raise _invalid("The sandbox only emulates messages sent to a registration token.")
    if not isinstance(token, str) or not REGISTRATION_TOKEN.fullmatch(token):
        raise wire.Refusal(
            wire.google_error(
                400,
                "The registration token is not a valid FCM registration token",
                fcm_code="INVALID_ARGUMENT",
                field="message.token",
            )
        )
    return payload, message


def _check_message(message: dict[str, Any]) -> None:
    targets = [name for name in TARGETS if name in message]
    if len(targets) != 1:
        raise _invalid(
            "Exactly one of message.token, message.topic or message.condition is needed."
        )
    for name in message:
        if name not in MESSAGE_FIELDS and name not in TARGETS:
            raise _invalid(f"Invalid JSON payload received. Unknown name \"{name}\" at 'message'.")
    data = message.get("data")
    if data is None:
        return
    if not isinstance(data, dict):
        raise _invalid(
            "Invalid value at 'message.data' (type.googleapis.com/google.protobuf.Struct)"
        )
    for index, (key, value) in enumerate(data.items()):
        if not isinstance(value, str):
            shown = json.dumps(value)
            raise _invalid(f"Invalid value at 'message.data[{index}].value' (TYPE_STRING), {shown}")
        if key in RESERVED_DATA_KEYS or key.startswith(("google", "gcm")):
            raise _invalid(f"Invalid data payload key: {key}")


def _invalid(message: str) -> wire.Refusal:
    return wire.Refusal(wire.google_error(400, message, fcm_code="INVALID_ARGUMENT"))


def routes(state: SandboxState) -> list[Route]:
    async def messages_send(request: Request) -> Response:
        body = await request.body()
        reply = send(state, request.path_params["project"], request.headers, body)
        return reply.response()

    return [Route("/v1/projects/{project}/messages:send", messages_send, methods=["POST"])]
