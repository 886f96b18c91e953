"""Response values and the error bodies each emulated service speaks, byte for byte.

Owns what a reply looks like on the wire (Dataverse OData errors, Entra AADSTS errors, Google
RPC errors). It decides nothing: handlers and the fault engine choose the status and call these.
"""

from __future__ import annotations

import json
import math
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Literal

from starlette.responses import Response

Kind = Literal["dataverse", "token", "discovery", "fcm", "webhook", "other"]
JSON = "application/json; charset=utf-8"
ODATA_JSON = "application/json; odata.metadata=minimal"

# Dataverse error codes the sandbox answers with (hex HRESULT strings, as Dataverse sends them).
DV_NOT_FOUND = "0x80040217"  # "contact With Id = ... Does Not Exist"
DV_BAD_PAYLOAD = "0x80048d19"  # "Error identified in Payload provided by the user ..."
DV_BAD_SYNTAX = "0x80060888"  # "Bad Request - Error in query syntax." / unsupported request
DV_NO_SEGMENT = "0x8006088a"  # "Resource not found for the segment '...'."
DV_VERSION_MISMATCH = "0x80060882"  # If-Match etag does not match the row version
DV_ACCESS_DENIED = "0x80040220"  # missing privilege
DV_UNEXPECTED = "0x80040216"  # "An unexpected error occurred."
DV_THROTTLED = "0x80072322"  # service protection: number of requests exceeded the limit
DV_PLUGIN = "0x80040265"  # a plug-in or business rule refused the request ("ISV code aborted")
DV_EXECUTION_TIME = "0x80072321"  # service protection: combined execution time exceeded
DEFAULT_429_RETRY_AFTER_S = 5.0  # what an injected 429 without `retry_after` asks for

GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
# The FcmError code an injected fault carries. 401 and 403 carry none: an expired or revoked
# OAuth token is Google's plain 401 UNAUTHENTICATED, and a missing permission (a wrong project)
# its plain 403 PERMISSION_DENIED; THIRD_PARTY_AUTH_ERROR and SENDER_ID_MISMATCH are about APNs
# keys and tokens of another project (script them with a rule `body`).
FCM_ERROR_CODE = {
    400: "INVALID_ARGUMENT",
    404: "UNREGISTERED",
    429: "QUOTA_EXCEEDED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
# What Google's front end sends for a 502: a page, not JSON (clients must not quote it).
GOOGLE_502_PAGE = (
    b"<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n"
    b"  <title>Error 502 (Server Error)!!1</title>\n"
    b"  <p><b>502.</b> <ins>That\xe2\x80\x99s an error.</ins>\n"
    b"  <p>The server encountered a temporary error and could not complete your request."
    b"<p>Please try again in 30 seconds.  <ins>That\xe2\x80\x99s all we know.</ins>\n"
)
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"


@dataclass(slots=True)
class Reply:
    """One HTTP answer, independent of Starlette so `$batch` can embed it in a multipart body."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> Response:
        return Response(self.body, status_code=self.status, headers=self.headers)


class Refusal(Exception):  # noqa: N818 - a refusal is an answer, not an error of the sandbox
    """Raised by validation helpers with the error reply to send; caught by the handler."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def dumps(value: object) -> bytes:
    """Compact JSON, as the real services send it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def reason(status: int) -> str:
    """The reason phrase for a status line (`No Content`), or `Unknown` for odd codes."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def json_reply(status: int, value: object, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, dumps(value), {"content-type": JSON, **(headers or {})})


def odata_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Reply:
    """A Dataverse Web API error: `{"error": {"code": "0x...", "message": ...}}`."""
    body = dumps({"error": {"code": code, "message": message}})
    return Reply(
        status, body, {"content-type": ODATA_JSON, "odata-version": "4.0", **(headers or {})}
    )


def throttled_message(limit: float, window_s: float) -> str:
    return (
        f"Number of requests exceeded the limit of {limit:g} over time window of "
        f"{window_s:g} seconds."
    )


def execution_message(limit_ms: float, window_s: float) -> str:
    return (
        f"Combined execution time of incoming requests exceeded limit of {limit_ms:,.0f} "
        f"milliseconds over time window of {window_s:g} seconds. Decrease number of concurrent "
        "requests or reduce the duration of requests and try again later."
    )


def aad_error(status: int, error: str, aadsts: int, description: str) -> Reply:
    """An Entra ID token endpoint error, shaped like `login.microsoftonline.com` answers."""
    trace_id = secrets.token_hex(16)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    text = f"AADSTS{aadsts}: {description} Trace ID: {trace_id} Timestamp: {stamp}"
    body = {
        "error": error,
        "error_description": text,
        "error_codes": [aadsts],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": secrets.token_hex(16),
    }
    return json_reply(status, body, {"cache-control": "no-store, no-cache"})


def oauth_error(status: int, error: str, description: str) -> Reply:
    """A Google OAuth 2.0 token endpoint error (`invalid_grant` and friends)."""
    return json_reply(status, {"error": error, "error_description": description})


def google_error(
    status: int,
    message: str,
    *,
    fcm_code: str | None = None,
    headers: dict[str, str] | None = None,
    field: str | None = None,
) -> Reply:
    """A Google API error; FCM adds a `details` entry naming its own error code, and a
    `google.rpc.BadRequest` naming the invalid `field` when there is one."""
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": GOOGLE_STATUS.get(status, "UNKNOWN"),
    }
    details: list[dict[str, Any]] = []
    if fcm_code is not None:
        details.append({"@type": FCM_ERROR_TYPE, "errorCode": fcm_code})
    if field is not None:
        violation = {"field": field, "description": message}
        details.append({"@type": BAD_REQUEST_TYPE, "fieldViolations": [violation]})
    if details:
        error["details"] = details
    return json_reply(status, {"error": error}, headers)


def google_token_fault(status: int) -> Reply:
    """An injected fault at Google's OAuth token endpoint, in Google's shape, not Entra's."""
    if status == 502:
        return Reply(502, GOOGLE_502_PAGE, {"content-type": "text/html; charset=UTF-8"})
    if status >= 500:
        return oauth_error(status, "internal_failure", "Backend Error")
    known = {
        400: ("invalid_grant", "Invalid JWT Signature."),
        401: ("invalid_client", "The OAuth client was not found."),
        403: ("access_denied", "Requested client not authorized."),
        429: ("rate_limit_exceeded", "Rate Limit Exceeded"),
    }
    error, description = known.get(status, ("invalid_request", reason(status)))
    return oauth_error(status, error, description)


def fault_reply(kind: Kind, status: int, *, tenant_id: str) -> Reply:
    """The body a real service would most plausibly send with `status`, for injected faults."""
    if kind == "dataverse":
        return dataverse_status(status)
    if kind == "fcm":
        text = "The service is currently unavailable." if status == 503 else reason(status)
        return google_error(status, text, fcm_code=FCM_ERROR_CODE.get(status))
    if kind in ("token", "discovery"):
        if status == 401:
            return aad_error(401, "invalid_client", 7000215, "Invalid client secret provided.")
        if status >= 500:
            return aad_error(
                status, "temporarily_unavailable", 50_196, f"Tenant '{tenant_id}' unavailable."
            )
        return aad_error(status, "invalid_request", 900_144, reason(status))
    return json_reply(status, {"error": reason(status)})


def dataverse_status(status: int) -> Reply:
    if status == 429:
        return odata_error(429, DV_THROTTLED, throttled_message(6000, 300))
    if status == 404:
        return odata_error(404, DV_NOT_FOUND, "The requested record was not found.")
    if status == 403:
        return odata_error(403, DV_ACCESS_DENIED, "Principal user is missing prvWritecontact.")
    if status >= 500:
        return odata_error(status, DV_UNEXPECTED, "An unexpected error occurred.")
    if status in (405, 415):
        return odata_error(status, DV_BAD_SYNTAX, reason(status))
    # Another 4xx about one record: what a plug-in or business rule refusing it sends.
    return odata_error(status, DV_PLUGIN, f"{reason(status)}: the record failed validation.")


def retry_after_value(seconds: float) -> str:
    """`Retry-After` in whole seconds, as Dataverse sends it: a fraction rounds up."""
    return str(max(0, math.ceil(seconds)))
