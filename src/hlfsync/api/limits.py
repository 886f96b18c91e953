"""Request size limits: headers (431) and bodies (413), enforced before a request is read in full.

Two layers. `limited_protocol` is uvicorn's httptools protocol with a ceiling on the request
head (bytes and header count), checked as bytes arrive: uvicorn itself bounds a head only with
h11 (`h11_max_incomplete_event_size`), and httptools accumulates any header however large.
`Limits` is ASGI middleware for every endpoint, whatever serves the app: the same header
ceiling, and the body ceiling, from Content-Length before anything is read, and counted as a
chunked body streams in.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_TOO_LARGE = 431
BODY_TOO_LARGE = 413


class BodyTooLarge(HTTPException):
    """The body went past the limit while it was being read (FastAPI re-raises HTTPException)."""

    def __init__(self, limit: int) -> None:
        super().__init__(BODY_TOO_LARGE, f"the request body is larger than {limit} bytes")


def head_size(headers: list[tuple[bytes, bytes]]) -> int:
    """Bytes of a request's header fields as sent (name, ': ', value, CRLF)."""
    return sum(len(name) + len(value) + 4 for name, value in headers)


def limited_protocol(max_header_bytes: int, max_headers: int) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, answering 431 and closing once a request head (request line
    and header fields) passes `max_header_bytes` or `max_headers` fields."""

    class LimitedHttpToolsProtocol(HttpToolsProtocol):
        _in_head = True
        _head_bytes = 0
        _head_count = 0
        _refused = False

        def on_message_begin(self) -> None:
            self._in_head, self._head_bytes, self._head_count = True, 0, 0
            super().on_message_begin()

        def on_url(self, url: bytes) -> None:
            self._grow(len(url))
            if not self._refused:
                super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._head_count += 1
            self._grow(len(name) + len(value) + 4)
            if not self._refused:
                super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_head = False
            if not self._refused:  # never start the app for a refused request
                super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if not self._refused:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if not self._refused:
                super().on_message_complete()
            self._in_head, self._head_bytes = True, 0

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            super().data_received(data)
            # Still inside a head after this chunk: every byte of it is head, even the part the
            # parser keeps to itself until a header is complete.
            if not self._refused and self._in_head and self.parser is not None:
                self._grow(len(data))
            if self._refused:
                self._send_431()

        def _grow(self, n: int) -> None:
            self._head_bytes += n
            if self._head_bytes > max_header_bytes or self._head_count > max_headers:
                self._refused = True

        def _send_431(self) -> None:
            body = b"request header fields too large\n"
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: text/plain; charset=utf-8\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\n"
                b"connection: close\r\n\r\n" + body
            )
            self.transport.close()

    return LimitedHttpToolsProtocol


class Limits:
    """ASGI middleware: 431 for a head past the limits, 413 for a body past its limit."""

    def __init__(
        self, app: ASGIApp, *, max_header_bytes: int, max_headers: int, max_body_bytes: int
    ) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        line = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        if len(headers) > self.max_headers or line + head_size(headers) > self.max_header_bytes:
            await _problem(send, HEAD_TOO_LARGE, "the request header fields are too large")
            return
        declared = _content_length(headers)
        if declared is not None and declared > self.max_body_bytes:
            await _problem(
                send, BODY_TOO_LARGE, f"the request body is larger than {self.max_body_bytes} bytes"
            )
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge as exc:
            if started:
                raise
            await _problem(send, BODY_TOO_LARGE, str(exc.detail))


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before it gets here
    return None


async def _problem(send: Send, status: int, detail: str) -> None:
    """An RFC 9457 answer, as problems.render writes them, without reading the request."""
    phrase = {HEAD_TOO_LARGE: "Request Header Fields Too Large",
              BODY_TOO_LARGE: "Content Too Large"}  # fmt: skip
    body: dict[str, Any] = {
        "type": "https://hlfsync.invalid/problems/too-large",
        "title": phrase[status],
        "status": status,
        "detail": detail,
    }
    raw = json.dumps(body).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(raw)).encode()), (b"connection", b"close")],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": raw})
