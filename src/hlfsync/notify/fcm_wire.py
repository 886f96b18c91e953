"""FCM HTTP v1 wire format: the send body, data checks and the error table to `DeliveryResult`.

Pure functions: no I/O, no clock, no logging. Reasons quote FCM's error status and code and a
truncated message, never a token.

| FCM answer                                           | outcome      |
|------------------------------------------------------|--------------|
| 2xx with a message `name`                            | delivered    |
| 2xx without one (a proxy page?)                      | retry        |
| errorCode UNREGISTERED (404)                         | unregistered |
| INVALID_ARGUMENT about the registration token (a     | unregistered |
| `message.token` field violation, or FCM's "not a     | (retired)    |
| valid FCM registration token")                       |              |
| INVALID_ARGUMENT (400), SENDER_ID_MISMATCH (403)     | rejected     |
| THIRD_PARTY_AUTH_ERROR, or its older name            | rejected     |
| APNS_AUTH_ERROR (401): APNs/web-push keys of the     |              |
| Firebase project; our token is fine, resending       |              |
| cannot help                                          |              |
| QUOTA_EXCEEDED / 429 (Retry-After, else 60 s as FCM  | retry        |
| advises), UNAVAILABLE / INTERNAL / 408 / 5xx         |              |
| (Retry-After when given)                             |              |
| 401 UNAUTHENTICATED (after one token refresh), 403   | auth         |
| PERMISSION_DENIED                                    |              |
| other 3xx/4xx (404 NOT_FOUND: wrong project, ...)    | rejected     |
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from hlfsync.notify.base import DeliveryResult
from hlfsync.outbound import errors

FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
QUOTA_DEFAULT_RETRY_AFTER_S = 60.0
# FCM's ErrorCode docs: `collapse_key` is used by FCM but allowed in data (FCM overrides it).
RESERVED_KEYS = frozenset({"from", "message_type", "notification"})
THIRD_PARTY_AUTH = frozenset({"THIRD_PARTY_AUTH_ERROR", "APNS_AUTH_ERROR"})
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
# android.collapse_key has no documented limit; apns-collapse-id must not exceed 64 bytes.
COLLAPSE_KEY_LIMIT = 64
RESERVED_PREFIXES = ("google", "gcm")


def send_url(endpoint: str, project_id: str) -> str:
    return f"{endpoint.rstrip('/')}/v1/projects/{project_id}/messages:send"


def data_problem(data: Mapping[Any, Any]) -> str | None:
    """Why FCM would refuse `data` as a data-only payload, or None when it is fine."""
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, str):
            return f"data key {key!r} must map a string to a string"
        if key in RESERVED_KEYS or key.lower().startswith(RESERVED_PREFIXES):
            return f"data key {key!r} is reserved by FCM"
    return None


def message_body(
    device_token: str, data: Mapping[str, str], *, collapse_key: str | None = None
) -> bytes:
    """`{"message": {"token": ..., "data": {...}}}`: data-only, so the app decides what to show.

    With `collapse_key`, Android (`android.collapse_key`) and APNs (`apns-collapse-id`) keep only
    the newest push of that key for a device that was offline: one alert per incident, not a pile.
    """
    message: dict[str, Any] = {"token": device_token, "data": dict(data)}
    if collapse_key:
        key = collapse_key[:COLLAPSE_KEY_LIMIT]
        message["android"] = {"collapse_key": key}
        message["apns"] = {"headers": {"apns-collapse-id": key}}
    return json.dumps({"message": message}).encode()


def about_device_token(body: bytes) -> bool:
    """True when an INVALID_ARGUMENT answer says the registration token itself is bad."""
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        return False
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict):
        return False
    if "registration token" in str(error.get("message", "")).lower():
        return True
    details = error.get("details")
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict) or detail.get("@type") != BAD_REQUEST_TYPE:
            continue
        violations = detail.get("fieldViolations")
        for violation in violations if isinstance(violations, list) else []:
            if isinstance(violation, dict) and violation.get("field") == "message.token":
                return True
    return False


def parse_error(body: bytes) -> tuple[str | None, str | None, str | None]:
    """`(error.status, FcmError errorCode, message)` of an FCM v1 error body; None where absent."""
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        return None, None, None
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict):
        return None, None, None
    status = error.get("status") if isinstance(error.get("status"), str) else None
    message = errors.one_line(str(error["message"])) if error.get("message") else None
    code = None
    details = error.get("details")
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and detail.get("@type") == FCM_ERROR_TYPE:
            found = detail.get("errorCode")
            code = found if isinstance(found, str) else None
            break
    return status, code, message


def wants_token_refresh(status: int, body: bytes) -> bool:
    """A 401 about our OAuth token (not the project's APNs keys): refresh once and resend."""
    return status == 401 and parse_error(body)[1] not in THIRD_PARTY_AUTH


def classify(status: int, headers: httpx.Headers, body: bytes) -> DeliveryResult:  # noqa: PLR0911 - one return per table row
    """The outcome of one FCM answer (the table in this module's docstring)."""
    if 200 <= status < 300:
        name = _message_name(body)
        if name is None:
            return DeliveryResult.retry("FCM answered 2xx without a message name", status=status)
        return DeliveryResult.delivered(name)
    error_status, code, message = parse_error(body)
    label = code or error_status or f"HTTP {status}"
    reason = f"{label}: {message}" if message else label
    hint = errors.retry_after_s(headers) if "retry-after" in headers else None
    if code == "UNREGISTERED":
        return DeliveryResult.unregistered(reason, status)
    invalid = code == "INVALID_ARGUMENT" or (code is None and error_status == "INVALID_ARGUMENT")
    if invalid and about_device_token(body):
        return DeliveryResult.unregistered(reason, status)
    if code in {"INVALID_ARGUMENT", "SENDER_ID_MISMATCH"} or code in THIRD_PARTY_AUTH:
        return DeliveryResult.rejected(reason, status)
    if status == 429 or code == "QUOTA_EXCEEDED":
        quota_s = QUOTA_DEFAULT_RETRY_AFTER_S if hint is None else hint
        return DeliveryResult.retry(reason, retry_after_s=quota_s, status=status)
    if code in {"UNAVAILABLE", "INTERNAL"} or status == 408 or status >= 500 or status < 200:
        return DeliveryResult.retry(reason, retry_after_s=hint, status=status)
    if status in (401, 403):
        return DeliveryResult.auth(reason, status)
    return DeliveryResult.rejected(reason, status)


def _message_name(body: bytes) -> str | None:
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        return None
    name = doc.get("name") if isinstance(doc, dict) else None
    return name if isinstance(name, str) and name else None
