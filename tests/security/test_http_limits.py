"""Header and body limits on the real server (uvicorn with httptools, as `hlfsync api` runs):
a request head past the limit is answered 431 and the connection closed while the client is
still sending, a body past its limit 413, on every endpoint; both configurable."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from hlfsync import settings
from tests.integration.api.conftest import SECRET
from tests.integration.api.live import LiveServer

LIMITS = {"max_header_bytes": 8192, "max_headers": 50, "max_body_bytes": 4096}


@pytest.fixture
def server(db_url: str) -> Iterator[tuple[str, int]]:
    """The API on 127.0.0.1 with small limits; its (host, port)."""
    conf = settings.load(database_url=db_url, jwt_secret=SECRET, db_pool_size=2, **LIMITS)
    with LiveServer(conf) as live:
        parts = urlsplit(live.url)
        yield parts.hostname or "127.0.0.1", parts.port or 80


def _exchange(where: tuple[str, int], head: bytes, body_chunks: list[bytes] | None = None,
              stream: bytes | None = None) -> tuple[bytes, int]:  # fmt: skip
    """Send a head (then body chunks); with `stream`, keep sending it, a chunk at a time with a
    short wait for an answer between chunks, until the server answers or closes (at most 16
    MiB). Returns the first response bytes and how many bytes were sent."""
    sent = 0
    with socket.create_connection(where, timeout=10) as sock:
        sock.sendall(head)
        sent += len(head)
        for chunk in body_chunks or []:
            sock.sendall(chunk)
        while stream is not None and sent < 16 * 1024 * 1024:
            if select.select([sock], [], [], 0.02)[0]:
                break
            try:
                sock.sendall(stream)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(stream)
        return sock.recv(65536), sent


def test_a_huge_header_is_431_before_it_is_read(server: tuple[str, int]) -> None:
    """A header that never ends gets 431 after about the limit, not after megabytes."""
    head = b"GET /api/v1/mentors HTTP/1.1\r\nHost: x\r\nX-Big: "
    answer, sent = _exchange(server, head, stream=b"a" * 4096)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]
    assert sent < 1024 * 1024


def test_too_many_headers_is_431(server: tuple[str, int]) -> None:
    """Thousands of small headers get 431, the app never runs."""
    fields = b"".join(b"X-%d: 1\r\n" % i for i in range(2000))
    answer, _ = _exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]


def test_a_head_within_the_limits_is_served(server: tuple[str, int]) -> None:
    """A normal request with a few headers is served as ever."""
    answer, _ = _exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:80]


@pytest.mark.parametrize(
    "path", ["/api/v1/dead-letters/1/requeue", "/dashboard/login", "/healthz", "/nowhere"]
)
def test_a_declared_large_body_is_413_unread(server: tuple[str, int], path: str) -> None:
    """A Content-Length past the limit is 413 on any path, before a byte of the body is sent."""
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
            f"\r\nContent-Length: {10 * 1024 * 1024}\r\n\r\n").encode()  # fmt: skip
    answer, _ = _exchange(server, head)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:80]


def test_a_chunked_body_past_the_limit_is_413(server: tuple[str, int]) -> None:
    """A chunked body (no length) is counted as it streams in and refused past the limit."""
    head = (b"POST /dashboard/login HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
    chunk = b"1000\r\n" + b"a" * 4096 + b"\r\n"
    answer, _ = _exchange(server, head, body_chunks=[b"6\r\ntoken=\r\n", chunk, chunk])
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:80]


def test_the_limits_are_settings() -> None:
    """HLFSYNC_MAX_HEADER_BYTES/_MAX_HEADERS/_MAX_BODY_BYTES are validated settings."""
    conf = settings.load(**LIMITS)
    assert (conf.max_header_bytes, conf.max_headers, conf.max_body_bytes) == (8192, 50, 4096)
    with pytest.raises(ValueError, match="max_header_bytes"):
        settings.Settings(max_header_bytes=10)
