"""Shared fakes for the adapter tests: a token source, a recording transport, a change factory."""

from __future__ import annotations

import email
import email.message
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx

from hlfsync.dataverse.client import DataverseClient
from hlfsync.dynamics.port import ListingChange, Operation

ORG = "https://hlf.crm4.dynamics.com"
ROOT = f"{ORG}/api/data/v9.2"
SECRET_TOKEN = "eyJ0eXAiOiJKV1Qi.SECRET-TOKEN-VALUE"


class FakeTokens:
    """Counts issued tokens and invalidations; each token is distinct and secret-looking."""

    def __init__(self) -> None:
        self.issued = 0
        self.invalidated: list[str | None] = []
        self.closed = False
        self._current: str | None = None

    async def token(self) -> str:
        if self._current is None:
            self.issued += 1
            self._current = f"{SECRET_TOKEN}-{self.issued}"
        return self._current

    def invalidate(self, stale: str | None = None) -> None:
        self.invalidated.append(stale)
        self._current = None

    def close(self) -> None:
        self.closed = True


Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler recording every request, answering from a script or function."""

    def __init__(self, *answers: httpx.Response | Handler) -> None:
        self.requests: list[httpx.Request] = []
        self._answers = list(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer = self._answers.pop(0) if len(self._answers) > 1 else self._answers[0]
        return answer(request) if callable(answer) else answer

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def client_for(
    recorder: Recorder, tokens: FakeTokens | None = None, **kwargs: Any
) -> DataverseClient:
    http = httpx.AsyncClient(transport=recorder.transport())
    return DataverseClient(http, tokens or FakeTokens(), ORG, **kwargs)


def change(operation: Operation = "remove", **kwargs: Any) -> ListingChange:
    values: dict[str, Any] = {
        "mentor_id": uuid4(),
        "contact_id": uuid4(),
        "operation": operation,
        "idempotency_key": "sq-42",
        "occurred_at": datetime(2025, 1, 6, 9, 30, tzinfo=UTC),
        "correlation_id": f"corr-{uuid4()}",
    }
    values.update(kwargs)
    return ListingChange(**values)


def odata(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return httpx.Response(
        status,
        content=body,
        headers={"content-type": "application/json; odata.metadata=minimal", **headers},
    )


def json_response(status: int, doc: object, **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps(doc).encode(),
        headers={"content-type": "application/json; odata.metadata=minimal", **headers},
    )


def contact_id_of(request: httpx.Request) -> UUID:
    path = request.url.path
    return UUID(path[path.index("(") + 1 : path.index(")")])


@dataclass
class SentRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


def parse_batch_request(content_type: str, body: bytes) -> list[SentRequest]:
    """Read a multipart $batch request with the stdlib email parser: an independent reading."""
    message = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    assert message.is_multipart()
    sent: list[SentRequest] = []
    for part in message.get_payload():
        assert isinstance(part, email.message.Message)
        assert part.get_content_type() == "application/http"
        payload_bytes = part.get_payload(decode=True)
        assert isinstance(payload_bytes, bytes)
        raw = payload_bytes.replace(b"\r\n", b"\n")
        head, _, payload = raw.partition(b"\n\n")
        request_line, *header_lines = head.decode().split("\n")
        method, url, version = request_line.split(" ")
        assert version == "HTTP/1.1"
        headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}
        sent.append(SentRequest(method, url, headers, payload.strip(b"\n")))
    return sent
