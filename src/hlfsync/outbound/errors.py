"""The one table from HTTP answers and transport errors to `core.errors`, for every adapter.

Owns status codes, OData error codes, `Retry-After` and the reading of odd 2xx answers. Pure: no
I/O, no clock, no logging; it never quotes request headers, and quotes a response body only as a
truncated OData `error.message`.

| answer                                          | class       | why                            |
|-------------------------------------------------|-------------|--------------------------------|
| 2xx                                             | success     |                                |
| 429; or OData code 0x80072322 / 0x80072321 /    | Throttled   | service protection (requests,  |
| 0x80072326 (or decimal form) with any status    |             | execution time, concurrency)   |
| 401, 403                                        | AuthFailure | credentials/privilege: hold    |
| 405, 415; OData 0x8006088a (no such entity set),| Contract-   | the contract or configuration  |
| 0x80060888 (query syntax, "Could not find a     | Failure     | is wrong for everyone: hold,   |
| property named"), 0x80048d19 (payload refused:  |             | one alert, replay after a      |
| unknown property, wrong type)                   |             | probe passes                   |
| 404 0x80040217 ("Does Not Exist"), or a 404     | Permanent   | this one contact is gone (the  |
| without an OData code                           |             | client confirms a code-less 404|
|                                                 |             | with a known-good probe)       |
| 408, 5xx, a status outside 100-599              | Transient   | server or a hop failed; its    |
|                                                 |             | Retry-After is kept as a floor |
| 3xx                                             | Permanent   | a moved URL is configuration;  |
|                                                 |             | a token never follows redirects|
| other 4xx (404: no such contact, as If-Match: * | Permanent   | the request itself is wrong    |
| turns a would-be create into a 404)             |             |                                |
| timeout; connect, read, write, protocol, proxy  | Transient   | the call may not have arrived  |
| TLS verification failure, host name not found   | Contract-   | configuration: a certificate or|
|                                                 | Failure     | a DNS name is fixed by a person|
| invalid URL, unsupported scheme, redirect loop  | Permanent   | our configuration; never passes|
| write 2xx with a non-empty, non-JSON body       | Transient   | e.g. a proxy's HTML page: it   |
|                                                 |             | may not have applied; PATCH is |
|                                                 |             | idempotent, so resend is safe  |
| read 2xx: wrong type, empty, cut or bad JSON    | Transient   | no side effect; usually passes |
| read 2xx: valid JSON of the wrong shape         | Permanent   | `contract_violation`: retrying |
|                                                 |             | cannot make it speak contract  |
| $batch 2xx whose multipart we cannot parse      | Transient   | each change in it (client.py)  |

`Retry-After` is delta-seconds, an HTTP-date (measured against the answer's own `Date`, so no clock
is read) or a .NET `hh:mm:ss` span; `retry-after-ms` wins when present. Missing or garbage →
`DEFAULT_RETRY_AFTER_S` (5 s: Dataverse's typical wait, and msal's own default); anything longer
than `MAX_RETRY_AFTER_S` is capped so one odd header cannot park the service for days.
"""

from __future__ import annotations

import json
import math
import socket
import ssl
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

import httpx

from hlfsync.core.errors import (
    AuthFailure,
    ContractFailure,
    Permanent,
    SyncFailure,
    Throttled,
    Transient,
)

DEFAULT_RETRY_AFTER_S = 5.0
MAX_RETRY_AFTER_S = 3600.0
MESSAGE_LIMIT = 200  # characters of an OData error message we quote
HOST_NOT_FOUND = "host name not found"
INNER = "InnerException"

# Dataverse service protection limits, as the Web API reports them in `error.code` (hex) and the
# SDK for .NET in ErrorCode (decimal); see "Service protection API limits" on learn.microsoft.com.
SERVICE_PROTECTION_CODES: Mapping[str, str] = {
    "0x80072322": "number of requests",
    "-2147015902": "number of requests",
    "0x80072321": "combined execution time",
    "-2147015903": "combined execution time",
    "0x80072326": "concurrent requests",
    "-2147015898": "concurrent requests",
}

# OData codes that say our request does not fit the service's schema: wrong for every record.
CONTRACT_CODES: Mapping[str, str] = {
    "0x8006088a": "unknown entity set or segment",
    "0x80060888": "request does not fit the schema",
    "0x80048d19": "payload refused",
}
# Statuses that say the endpoint itself, not the record, refuses what we send.
CONTRACT_STATUSES: Mapping[int, str] = {405: "method not allowed", 415: "media type refused"}
RECORD_MISSING_CODE = "0x80040217"  # "<entity> With Id = ... Does Not Exist"

Headers = Mapping[str, str] | httpx.Headers


def _header(headers: Headers, name: str) -> str | None:
    if isinstance(headers, httpx.Headers):
        value: str | None = headers.get(name)
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def content_type(headers: Headers) -> str:
    """The media type alone, lower-cased: `application/json; odata...` → `application/json`."""
    return (_header(headers, "content-type") or "").split(";", 1)[0].strip().lower()


def is_json(headers: Headers) -> bool:
    """True for `application/json` and any `+json` type (problem+json and the like)."""
    kind = content_type(headers)
    return kind == "application/json" or kind.endswith("+json")


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """Whitespace folded to single spaces and cut to `limit` characters, marked when cut."""
    folded = " ".join(text.split())
    return folded if len(folded) <= limit else folded[: limit - 1] + "…"


def odata_error(headers: Headers, body: bytes) -> tuple[str | None, str | None]:
    """`(error.code, error.message)` from an OData error body; `(None, None)` if there is none."""
    if not is_json(headers) or not body:
        return None, None
    try:
        doc = json.loads(body)
    except ValueError:
        return None, None
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict):
        return None, None
    code: object = error.get("code")
    message: object = error.get("message")
    if isinstance(message, str) and INNER in message:
        # Dataverse wraps the cause after a help link; the cause (which property) is the news.
        message = message.split(INNER, 1)[1].strip(" :")
    return (
        str(code).strip() if code not in (None, "") else None,
        one_line(str(message)) if message not in (None, "") else None,
    )


def _finite(seconds: float) -> float | None:
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER_S)


def _parse_delay(value: str, headers: Headers) -> float | None:
    value = value.strip()
    try:
        return _finite(float(value))
    except ValueError:
        pass
    parts = value.split(":")
    if len(parts) == 3 and all(p.replace(".", "", 1).isdigit() for p in parts):
        hours, minutes, seconds = (float(p) for p in parts)
        return _finite(hours * 3600 + minutes * 60 + seconds)
    date_header = _header(headers, "date")
    if date_header is None:
        return None  # an HTTP-date needs a "now"; the answer's own Date is the only pure one
    try:
        until, now = parsedate_to_datetime(value), parsedate_to_datetime(date_header)
        return _finite(max(0.0, (until - now).total_seconds()))
    except (TypeError, ValueError, IndexError):
        return None


def retry_after_s(headers: Headers, default_s: float = DEFAULT_RETRY_AFTER_S) -> float:
    """How long the server asked us to wait, in seconds; `default_s` when it did not say clearly."""
    millis = _header(headers, "retry-after-ms") or _header(headers, "x-ms-retry-after-ms")
    if millis is not None:
        try:
            delay = _finite(float(millis) / 1000.0)
        except ValueError:
            delay = None
        if delay is not None:
            return delay
    value = _header(headers, "retry-after")
    delay = _parse_delay(value, headers) if value is not None else None
    return default_s if delay is None else delay


def _describe(headers: Headers, body: bytes, message: str | None) -> str:
    if message:
        return message
    if not body.strip():
        return "empty body"
    return f"{content_type(headers) or 'untyped'} body"


def classify_response(status: int, headers: Headers, body: bytes) -> SyncFailure | None:
    """None for a 2xx answer, else the classified failure (the table in this module's docstring)."""
    if 200 <= status < 300:
        return None
    code, message = odata_error(headers, body)
    detail = _describe(headers, body, message)
    limit = SERVICE_PROTECTION_CODES.get((code or "").lower())
    if status == 429 or limit is not None:
        what = f"service protection limit ({limit})" if limit else "too many requests"
        return Throttled(
            f"{what}: {detail}", retry_after_s=retry_after_s(headers), status=status, code=code
        )
    kind: type[SyncFailure]
    contract = CONTRACT_CODES.get((code or "").lower()) or CONTRACT_STATUSES.get(status)
    if status in (401, 403):
        kind, what = AuthFailure, "unauthorized" if status == 401 else "forbidden"
    elif 400 <= status < 500 and contract is not None:
        kind, what = ContractFailure, f"contract broken ({contract})"
    elif status == 408 or not 100 <= status < 500:
        floor = retry_after_s(headers, default_s=-1.0)
        return Transient(
            f"server did not complete the request: {detail}",
            status=status,
            code=code,
            retry_after_s=None if floor < 0 else floor,
        )
    elif 300 <= status < 400:
        kind, what, detail = Permanent, "unexpected redirect", "check the configured URL"
    elif status >= 400:
        kind, what = Permanent, "request rejected"
    else:
        kind, what = Transient, "unexpected status"  # 1xx as a final answer: a broken hop
    return kind(f"{what}: {detail}", status=status, code=code)


def is_missing_record(failure: SyncFailure) -> bool:
    """A 404 about one record: `0x80040217`, or no OData code at all (needs a probe to confirm)."""
    return (
        isinstance(failure, Permanent)
        and failure.status == 404
        and (failure.code is None or failure.code.lower() == RECORD_MISSING_CODE)
    )


def endpoint_gone(failure: SyncFailure) -> SyncFailure:
    """For a single-endpoint contract (a webhook): 404 or 410 means the endpoint is gone for
    everyone, never one record."""
    if isinstance(failure, Permanent) and failure.status in (404, 410):
        return ContractFailure(
            f"endpoint gone: {failure.detail}", status=failure.status, code=failure.code
        )
    return failure


def check_write(status: int, headers: Headers, body: bytes) -> SyncFailure | None:
    """Like `classify_response`, and a 2xx write answered with a non-JSON page is Transient.

    A JSON 2xx counts as applied without being parsed: only the service itself answers JSON.
    """
    failure = classify_response(status, headers, body)
    if failure is not None or not body.strip() or is_json(headers):
        return failure
    kind = content_type(headers) or "no content type"
    return Transient(
        f"write answered {status} with a {kind} body: not the service, cannot tell if it applied",
        status=status,
    )


def read_json(status: int, headers: Headers, body: bytes) -> object:
    """The decoded JSON document of a read; raises the classified failure otherwise."""
    failure = classify_response(status, headers, body)
    if failure is not None:
        raise failure
    if not is_json(headers):
        kind = content_type(headers) or "no content type"
        raise Transient(f"expected JSON, got a {kind} body", status=status)
    if not body.strip():
        raise Transient("expected JSON, got an empty body", status=status)
    try:
        return json.loads(body)
    except ValueError:
        raise Transient("truncated or invalid JSON body", status=status) from None


def contract_violation(what: str, why: str, status: int | None = None) -> Permanent:
    """A well-formed answer that does not follow the contract (missing or mistyped fields)."""
    return Permanent(f"{what} does not follow the contract: {one_line(why)}", status=status)


def _root_cause(exc: BaseException) -> str | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return "TLS certificate verification failed"
        if isinstance(current, socket.gaierror):
            return HOST_NOT_FOUND
        if isinstance(current, OSError) and current.strerror:
            return one_line(current.strerror, 80)
        current = current.__cause__ or current.__context__
    return None


def classify_exception(exc: BaseException) -> SyncFailure:  # noqa: PLR0911 - one table, flat
    """The class of a transport failure. Details name the error type, never a URL or header."""
    if isinstance(exc, SyncFailure):
        return exc
    name = type(exc).__name__
    cause = _root_cause(exc)
    suffix = f": {cause}" if cause else ""
    if isinstance(exc, httpx.TimeoutException):
        return Transient(f"timed out ({name})")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError | httpx.InvalidURL):
        return Permanent(f"request could not be sent ({name}): check the configured URL")
    if isinstance(exc, httpx.TooManyRedirects):
        return Permanent(f"too many redirects ({name}): check the configured URL")
    if cause in ("TLS certificate verification failed", HOST_NOT_FOUND):
        # Configuration a person fixes: hold everything once instead of spending attempts.
        return ContractFailure(f"connection failed ({name}){suffix}")
    if isinstance(exc, httpx.TransportError | httpx.DecodingError | OSError):
        return Transient(f"connection failed ({name}){suffix}")
    return Transient(f"unexpected transport error ({name})")
