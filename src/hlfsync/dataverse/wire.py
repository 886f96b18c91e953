"""Dataverse Web API wire format: URLs, headers, bodies, pages, WhoAmI and multipart `$batch`.

OData names stop here. Pure functions only: no I/O, no clock, no classification (that is
`errors`); a body that does not follow the format raises `WireError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit
from uuid import UUID

from hlfsync.dynamics.port import ContactListing, Identity

ODATA_HEADERS: Mapping[str, str] = {
    "Accept": "application/json",
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
}
CORRELATION_HEADER = "x-ms-client-request-id"
MAX_PAGE_SIZE = 5000  # Dataverse's ceiling for odata.maxpagesize
MAX_BATCH_SIZE = 1000  # Dataverse's ceiling for requests in one $batch
CRLF = b"\r\n"
KEY_SAFE = "'"  # the quotes of an OData string literal stay; everything else is encoded


class WireError(ValueError):
    """A body that does not follow the Dataverse/OData wire format."""


def api_root(org_url: str, api_version: str) -> str:
    """`https://org.crm4.dynamics.com` → `https://org.crm4.dynamics.com/api/data/v9.2`."""
    return f"{org_url.rstrip('/')}/api/data/{api_version}"


def record_url(root: str, entity_set: str, record_id: UUID) -> str:
    return f"{root}/{entity_set}({record_id})"


def key_url(root: str, entity_set: str, key_attribute: str, value: str) -> str:
    """`contacts(hlf_mentorno='A''1')`: an alternate key, quotes doubled as OData literals want,
    then percent-encoded, so no value can break out of the key segment."""
    literal = "'" + value.replace("'", "''") + "'"
    return f"{root}/{entity_set}({key_attribute}={quote(literal, safe=KEY_SAFE)})"


def probe_url(root: str, entity_set: str, listing_field: str) -> str:
    """The known-good probe: one row, only the listing field; proves entity set and field."""
    return f"{root}/{entity_set}?$select={listing_field}&$top=1"


_ENTITY_ID = re.compile(r"\(([0-9a-fA-F-]{36})\)\s*$")


def contact_id_from(headers: Mapping[str, str], doc: object, id_field: str) -> UUID | None:
    """The record id a write answered with: `id_field` of a representation, else the GUID in
    `OData-EntityId`; None when neither holds one."""
    raw = doc.get(id_field) if isinstance(doc, dict) else None
    if not isinstance(raw, str):
        entity = next((v for k, v in headers.items() if k.lower() == "odata-entityid"), "")
        match = _ENTITY_ID.search(entity)
        raw = match.group(1) if match else None
    try:
        return UUID(raw) if isinstance(raw, str) else None
    except ValueError:
        return None


def who_am_i_url(root: str) -> str:
    return f"{root}/WhoAmI"


def batch_url(root: str) -> str:
    return f"{root}/$batch"


def listing_url(root: str, entity_set: str, id_field: str, listing_field: str) -> str:
    # Written out rather than passed as params: OData wants `$select` and the comma as they are.
    return f"{root}/{entity_set}?$select={id_field},{listing_field}"


def max_page_size_header(page_size: int) -> dict[str, str]:
    """The `Prefer` header asking for pages of `page_size` rows."""
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be within 1..{MAX_PAGE_SIZE}, got {page_size}")
    return {"Prefer": f"odata.maxpagesize={page_size}"}


def listing_body(listing_field: str, listed: bool) -> bytes:
    """The PATCH body: only the listing field, so nothing else on the contact is touched."""
    return json.dumps({listing_field: listed}, separators=(",", ":")).encode()


def same_origin(url: str, base: str) -> bool:
    """True when `url` has `base`'s scheme, host and port: a bearer token never leaves the org."""
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.netloc.lower()) == (b.scheme, b.netloc.lower())


def parse_who_am_i(doc: object) -> Identity:
    """`{"UserId": ..., "OrganizationId": ...}` → Identity."""
    if not isinstance(doc, dict):
        raise WireError("WhoAmI answer is not a JSON object")
    user_id, org_id = doc.get("UserId"), doc.get("OrganizationId")
    if not isinstance(user_id, str) or not user_id:
        raise WireError("WhoAmI answer has no UserId")
    return Identity(user_id=user_id, organization_id=org_id if isinstance(org_id, str) else None)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of contacts; `skipped` counts rows without a usable id or listing value."""

    rows: list[ContactListing]
    next_link: str | None
    skipped: int = 0


def parse_page(doc: object, id_field: str, listing_field: str) -> Page:
    """An OData collection page. A null listing reads as "not listed"; unusable rows are skipped."""
    if not isinstance(doc, dict) or not isinstance(doc.get("value"), list):
        raise WireError("page is not an OData collection (no `value` array)")
    next_link = doc.get("@odata.nextLink")
    if next_link is not None and not isinstance(next_link, str):
        raise WireError("@odata.nextLink is not a string")
    rows: list[ContactListing] = []
    skipped = 0
    for row in doc["value"]:
        if not isinstance(row, dict) or listing_field not in row:
            skipped += 1
            continue
        raw_id, listed = row.get(id_field), row[listing_field]
        try:
            contact_id = UUID(raw_id) if isinstance(raw_id, str) else None
        except ValueError:
            contact_id = None
        if contact_id is None or not (listed is None or isinstance(listed, bool)):
            skipped += 1
            continue
        rows.append(ContactListing(contact_id=contact_id, listed=bool(listed)))
    return Page(rows=rows, next_link=next_link or None, skipped=skipped)


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One request inside a `$batch`: its own part, never in a changeset (no shared fate)."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class BatchResponse:
    """One answer from a multipart `$batch` response."""

    status: int
    headers: dict[str, str]
    body: bytes
    content_id: str | None = None


def build_batch(requests: Sequence[BatchRequest], boundary: str) -> tuple[str, bytes]:
    """`(content type, body)` of a multipart/mixed `$batch` with one part per request."""
    if not requests:
        raise ValueError("a $batch needs at least one request")
    if len(requests) > MAX_BATCH_SIZE:
        raise ValueError(f"a $batch holds at most {MAX_BATCH_SIZE} requests")
    delimiter = f"--{boundary}".encode()
    out: list[bytes] = []
    for index, request in enumerate(requests, start=1):
        out += [
            delimiter,
            b"Content-Type: application/http",
            b"Content-Transfer-Encoding: binary",
            f"Content-ID: {index}".encode(),
            b"",
            f"{request.method} {request.url} HTTP/1.1".encode(),
            *(f"{name}: {value}".encode() for name, value in request.headers.items()),
            b"",
            request.body,
        ]
    out.append(delimiter + b"--")
    return f"multipart/mixed; boundary={boundary}", CRLF.join(out) + CRLF


_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_STATUS_LINE = re.compile(rb"^HTTP/\d(?:\.\d)?\s+(\d{3})(?:\s.*)?$")


def _boundary(content_type: str) -> str:
    match = _BOUNDARY.search(content_type)
    if not content_type.lower().startswith("multipart/") or match is None:
        raise WireError("not a multipart answer")
    return match.group(1) or match.group(2)


def _split_head(blob: bytes) -> tuple[list[bytes], bytes]:
    """Header lines and the rest, at the first empty line (CRLF or bare LF)."""
    blob = blob.replace(CRLF, b"\n")
    head, sep, rest = blob.partition(b"\n\n")
    if not sep:
        head, rest = blob.rstrip(b"\n"), b""
    return [line for line in head.split(b"\n") if line], rest


def _headers(lines: Sequence[bytes]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise WireError("malformed header line in a $batch part")
        headers[name.strip().lower()] = value.strip()
    return headers


def _parts(content_type: str, body: bytes) -> list[bytes]:
    delimiter = b"--" + _boundary(content_type).encode("latin-1")
    normalized = body.replace(CRLF, b"\n")
    if b"\n" + delimiter + b"--" not in b"\n" + normalized:
        raise WireError("multipart answer is truncated (no closing boundary)")
    chunks = (b"\n" + normalized).split(b"\n" + delimiter)
    # chunks[0] is the preamble; the chunk starting with "--" is the close delimiter and epilogue.
    return [chunk for chunk in chunks[1:] if not chunk.startswith(b"--")]


def parse_batch(content_type: str, body: bytes) -> list[BatchResponse]:
    """Every HTTP answer in a multipart `$batch` response, changesets flattened, in order."""
    answers: list[BatchResponse] = []
    for part in _parts(content_type, body):
        head_lines, content = _split_head(part.lstrip(b" \t").removeprefix(b"\n"))
        mime = _headers(head_lines)
        kind = mime.get("content-type", "").lower()
        if kind.startswith("multipart/"):
            answers += parse_batch(mime["content-type"], content)
            continue
        if not kind.startswith("application/http"):
            raise WireError(f"unexpected $batch part type {kind or 'none'!r}")
        http_lines, payload = _split_head(content)
        if not http_lines or not (status := _STATUS_LINE.match(http_lines[0].strip())):
            raise WireError("a $batch part has no HTTP status line")
        answers.append(
            BatchResponse(
                status=int(status.group(1)),
                headers=_headers(http_lines[1:]),
                body=payload.strip(b"\n"),
                content_id=mime.get("content-id"),
            )
        )
    return answers


def match_batch(count: int, answers: Sequence[BatchResponse]) -> list[BatchResponse | None]:
    """The answer to each of `count` requests: by Content-ID when every answer has a known one,
    else by position (Dataverse answers in request order). None where no answer came back."""
    ids = [answer.content_id for answer in answers]
    wanted = {str(index) for index in range(1, count + 1)}
    if answers and all(i in wanted for i in ids) and len(set(ids)) == len(ids):
        by_id = {answer.content_id: answer for answer in answers}
        return [by_id.get(str(index)) for index in range(1, count + 1)]
    matched: list[BatchResponse | None] = list(answers[:count])
    return matched + [None] * (count - len(matched))
