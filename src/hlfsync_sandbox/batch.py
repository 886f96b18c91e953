"""OData v4 `$batch` as Dataverse implements it: multipart/mixed in, multipart/mixed out.

Owns framing and batch semantics: change sets are all-or-nothing; outside them the batch stops at
the first failure unless `Prefer: odata.continue-on-error`, and then the whole answer takes the
failing request's status, its multipart body holding the answers up to it; Content-ID is echoed
inside change sets only (outside them a client must match answers by position, as with
Dataverse); at most 1000 requests. Each inner request is executed by `dataverse.handle`, meets the
fault rules on its own, and is logged.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from hlfsync_sandbox import contacts, dataverse, gateway, wire
from hlfsync_sandbox.requestlog import LogEntry
from hlfsync_sandbox.state import SandboxState

MAX_REQUESTS = 1000

_BOUNDARY = re.compile(r'boundary\s*=\s*"?([^";,]+)"?', re.IGNORECASE)
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_LINE = re.compile(rb"\r?\n")
_HEADER_CASE = {"odata-version": "OData-Version", "odata-entityid": "OData-EntityId"}


class BatchSyntaxError(ValueError):
    """The multipart body cannot be read as an OData batch."""


@dataclass(slots=True)
class InnerRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    content_id: str | None


@dataclass(slots=True)
class ChangeSet:
    requests: list[InnerRequest] = field(default_factory=list)


Part = InnerRequest | ChangeSet
Answer = tuple[wire.Reply, str | None] | list[tuple[wire.Reply, str | None]]


def execute(
    state: SandboxState, headers: Mapping[str, str], body: bytes, base_url: str, outer: LogEntry
) -> wire.Reply:
    """Run a whole batch and frame the answers; a fault of kind timeout/reset aborts it whole."""
    boundary = _boundary(headers.get("content-type", ""))
    if boundary is None:
        return wire.odata_error(
            400,
            wire.DV_BAD_SYNTAX,
            'The batch request must have a "Content-Type" header of multipart/mixed with a '
            "boundary.",
        )
    try:
        parts = parse(body, boundary)
    except BatchSyntaxError as exc:
        return wire.odata_error(400, wire.DV_BAD_SYNTAX, f"The batch request is malformed: {exc}")
    count = sum(len(part.requests) if isinstance(part, ChangeSet) else 1 for part in parts)
    if count > MAX_REQUESTS:
        return wire.odata_error(
            400,
            wire.DV_BAD_SYNTAX,
            f"Number of requests in a batch exceeded the limit of {MAX_REQUESTS}: {count}.",
        )
    continue_on_error = "odata.continue-on-error" in headers.get("prefer", "")
    answers: list[Answer] = []
    stopped_at: int | None = None
    for part in parts:
        if isinstance(part, ChangeSet):
            answer, failed = _run_changeset(state, part, base_url, outer)
        else:
            reply = _run_one(state, state.contacts, part, base_url, outer, log=True)
            # Dataverse echoes Content-ID only inside a change set.
            answer, failed = (reply, None), reply.status >= 400
        answers.append(answer)
        if failed and not continue_on_error:
            stopped_at = _failed_status(answer)
            break
    response_boundary = f"batchresponse_{uuid.uuid4()}"
    reply_headers = {
        "content-type": f"multipart/mixed; boundary={response_boundary}",
        "odata-version": "4.0",
    }
    if continue_on_error:
        reply_headers["preference-applied"] = "odata.continue-on-error"
    status = 200 if stopped_at is None else stopped_at
    return wire.Reply(status, frame(answers, response_boundary), reply_headers)


def _failed_status(answer: Answer) -> int:
    replies = [answer[0]] if isinstance(answer, tuple) else [reply for reply, _ in answer]
    return next((r.status for r in replies if r.status >= 400), 400)


def _run_changeset(
    state: SandboxState, changeset: ChangeSet, base_url: str, outer: LogEntry
) -> tuple[Answer, bool]:
    # Dataverse answers a failed change set with the failing request's error alone, and nothing
    # in it takes effect; so successes are logged only once the whole set commits.
    staged = contacts.Staged(state.contacts)
    done: list[tuple[wire.Reply, str | None]] = []
    entries: list[LogEntry] = []
    for request in changeset.requests:
        if request.method == "GET":
            reply = wire.odata_error(
                400, wire.DV_BAD_SYNTAX, "GET requests are not allowed inside a change set."
            )
            return (reply, request.content_id), True
        reply = _run_one(state, staged, request, base_url, outer, log=False, entries=entries)
        if reply.status >= 400:
            state.log.append(entries[-1])
            return (reply, request.content_id), True
        done.append((reply, request.content_id))
    staged.commit()
    for entry in entries:
        state.log.append(entry)
    return done, False


def _run_one(
    state: SandboxState,
    view: contacts.ContactView,
    request: InnerRequest,
    base_url: str,
    outer: LogEntry,
    *,
    log: bool,
    entries: list[LogEntry] | None = None,
) -> wire.Reply:
    split = urlsplit(request.url)
    path = unquote(split.path)
    if path.startswith(dataverse.API_ROOT):
        target = path[len(dataverse.API_ROOT) :]
    elif not path.startswith("/") and not split.scheme:
        target, path = path, dataverse.API_ROOT + path  # relative to the service root
    else:
        target = ""
    entry = LogEntry(
        method=request.method,
        path=path,
        kind="dataverse",
        at=state.clock(),
        query=split.query,
        correlation_id=request.headers.get("x-ms-client-request-id") or outer.correlation_id,
        in_batch=True,
        contactid=gateway.contact_id(path),
    )
    fault = state.faults.decide("dataverse", request.method, path, entry.contactid)
    if fault is not None and not isinstance(fault.action, int):
        raise gateway.Injected(fault)  # a hang or a reset takes the whole batch with it
    if fault is not None:
        entry.fault = fault.label
        reply = gateway.fault_reply(state, "dataverse", fault)
    elif not target or target.startswith("$"):
        reply = wire.odata_error(
            400, wire.DV_BAD_SYNTAX, f"The sandbox cannot run '{request.url}' inside a batch."
        )
    else:
        web_request = dataverse.WebRequest(
            method=request.method,
            target=target,
            query=split.query,
            headers=request.headers,
            body=request.body,
            base_url=base_url,
        )
        reply = dataverse.handle(state, view, web_request, entry)
    entry.status = reply.status
    if log:
        state.log.append(entry)
    if entries is not None:
        entries.append(entry)
    return reply


def parse(body: bytes, boundary: str) -> list[Part]:
    parts: list[Part] = []
    for raw in _split(body, boundary):
        headers, content = _headers_and_rest(raw)
        content_type = headers.get("content-type", "")
        if content_type.lower().startswith("multipart/mixed"):
            inner_boundary = _boundary(content_type)
            if inner_boundary is None:
                raise BatchSyntaxError("change set without a boundary")
            changeset = ChangeSet()
            for inner in _split(content, inner_boundary):
                inner_headers, inner_content = _headers_and_rest(inner)
                changeset.requests.append(_request(inner_headers, inner_content))
            parts.append(changeset)
        else:
            parts.append(_request(headers, content))
    return parts


def frame(answers: list[Answer], boundary: str) -> bytes:
    out: list[bytes] = []
    for answer in answers:
        out.append(f"--{boundary}\r\n".encode())
        if isinstance(answer, list):
            changeset = f"changesetresponse_{uuid.uuid4()}"
            out.append(f"Content-Type: multipart/mixed; boundary={changeset}\r\n\r\n".encode())
            for reply, content_id in answer:
                out.append(f"--{changeset}\r\n".encode())
                out.append(_http_part(reply, content_id))
            out.append(f"--{changeset}--\r\n".encode())
        else:
            out.append(_http_part(*answer))
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


def _http_part(reply: wire.Reply, content_id: str | None) -> bytes:
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if content_id is not None:
        head += f"Content-ID: {content_id}\r\n"
    lines = [f"HTTP/1.1 {reply.status} {wire.reason(reply.status)}"]
    lines += [f"{_HEADER_CASE.get(k, k.title())}: {v}" for k, v in reply.headers.items()]
    return (head + "\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode() + reply.body + b"\r\n"


def _boundary(content_type: str) -> str | None:
    if not content_type.lower().startswith("multipart/mixed"):
        return None
    match = _BOUNDARY.search(content_type)
    return None if match is None else match.group(1).strip()


def _split(body: bytes, boundary: str) -> list[bytes]:
    delimiter = b"--" + boundary.encode()
    pieces = body.split(delimiter)
    if len(pieces) < 2:
        raise BatchSyntaxError(f"no part delimited by --{boundary}")
    parts: list[bytes] = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):  # the close delimiter
            return parts
        newline = piece.find(b"\n")
        if newline < 0:
            raise BatchSyntaxError("delimiter line without a line break")
        content = piece[newline + 1 :]
        # The line break before the next delimiter belongs to that delimiter (RFC 2046).
        if content.endswith(b"\r\n"):
            content = content[:-2]
        elif content.endswith(b"\n"):
            content = content[:-1]
        parts.append(content)
    raise BatchSyntaxError(f"missing close delimiter --{boundary}--")


def _headers_and_rest(raw: bytes) -> tuple[dict[str, str], bytes]:
    pieces = _BLANK_LINE.split(raw, maxsplit=1)
    if len(pieces) == 1:  # headers only: a request without a body
        pieces.append(b"")
    head, rest = pieces
    headers: dict[str, str] = {}
    for line in _LINE.split(head):
        text = line.decode("latin-1")
        if not text.strip():
            continue
        name, colon, value = text.partition(":")
        if not colon:
            raise BatchSyntaxError(f"bad header line {text!r}")
        headers[name.strip().lower()] = value.strip()
    return headers, rest


def _request(part_headers: dict[str, str], content: bytes) -> InnerRequest:
    if not part_headers.get("content-type", "").lower().startswith("application/http"):
        raise BatchSyntaxError("each part must have Content-Type: application/http")
    request_line, _, rest = content.lstrip(b"\r\n").partition(b"\n")
    words = request_line.decode("latin-1").strip().split(" ")
    if len(words) != 3 or not words[2].startswith("HTTP/"):
        raise BatchSyntaxError(f"bad request line {request_line[:80]!r}")
    headers: dict[str, str] = {}
    body = rest
    if rest.strip() and not rest.startswith((b"\r\n", b"\n")):  # else no headers, only a body
        headers, body = _headers_and_rest(rest)
    content_id = part_headers.get("content-id") or headers.get("content-id")
    return InnerRequest(words[0].upper(), words[1], headers, body.strip(b"\r\n"), content_id)
