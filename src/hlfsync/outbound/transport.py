"""An httpx transport for HTTP/1.1 keep-alive on asyncio streams: the calls to Dynamics and FCM.

httpx's own transport (httpcore over anyio and h11) was half of the worker's CPU per operation:
its pool checks every pooled socket whenever a request starts or ends (O(N²) under full load)
and each request passes several layers of cancel scopes and events (bench/drain.py --webhook:
2.3 ms of worker CPU per operation, the httpx/httpcore/anyio/h11 frames about half of it).
This one keeps what the adapters rely on and nothing else:

- a pool of at most `connections` connections per transport, idle ones reused last-in first-out
  and dropped after `keepalive_expiry_s` or when the server has closed them;
- httpx's timeouts (`pool`, `connect`, `write`, `read`, the read one per read as in httpcore) and
  its exception types, so `errors.classify_exception` reads both transports alike;
- TLS with the given context (SNI and host name checked by `ssl`), header values checked for
  CR/LF/NUL before anything is sent;
- responses read whole (Content-Length, chunked, or until close) before the connection goes back
  to the pool: the adapters read every answer anyway, and no connection waits on a caller.

Not supported, by design: HTTP/2, proxies (httpx still mounts its own transport for proxy
variables in the environment), `Expect: 100-continue`, upgrades, streaming answers.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass

import httpx

READ_CHUNK = 64 * 1024
# An answer's head (status line and headers) larger than this is refused, as h11 does.
MAX_HEAD = 64 * 1024
_HEADER_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FORBIDDEN_IN_VALUE = re.compile(rb"[\r\n\x00]")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NO_BODY = frozenset({204, 304})

Origin = tuple[str, str, int]


@dataclass(eq=False)
class _Connection:
    origin: Origin
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def usable(self, now: float, expiry_s: float) -> bool:
        # An idle connection the server closed has seen EOF. Bytes nobody asked for (a server's
        # "408 Request Timeout" before it hangs up) would be read as the next call's answer;
        # StreamReader has no public way to ask for them, hence its private buffer.
        unread: bytes = getattr(self.reader, "_buffer", b"")
        return (
            now - self.idle_since < expiry_s
            and not unread
            and not self.reader.at_eof()
            and not self.writer.is_closing()
        )

    def close(self) -> None:
        # Abort, not close: a TLS close waits for the peer's close_notify (up to 30 s) with the
        # socket open; answers are framed by length, so nothing is lost by cutting it now.
        self.writer.transport.abort()


@dataclass
class _Head:
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    keep_alive: bool
    length: int | None = None
    chunked: bool = False


class PooledTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 keep-alive over asyncio streams, at most `connections` at once."""

    def __init__(
        self, *, connections: int, verify: ssl.SSLContext | bool, keepalive_expiry_s: float
    ) -> None:
        self._limit = max(1, connections)
        self._ssl = (
            verify
            if isinstance(verify, ssl.SSLContext)
            else httpx.create_ssl_context(verify=verify)
        )
        self._expiry_s = keepalive_expiry_s
        self._slots: asyncio.Semaphore | None = None
        self._idle: dict[Origin, list[_Connection]] = {}
        self._open = 0
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported scheme {scheme!r}", request=request)
        if not url.host:
            raise httpx.UnsupportedProtocol("the URL has no host", request=request)
        origin = (scheme, url.host, url.port or _DEFAULT_PORTS[scheme])
        timeouts = request.extensions.get("timeout", {})
        head = _request_head(request)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._limit)
        slots = self._slots
        if slots.locked():
            try:
                async with asyncio.timeout(timeouts.get("pool")):
                    await slots.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout("no free connection in time", request=request) from None
        else:
            await slots.acquire()
        try:
            conn = self._checkout(origin) or await self._connect(origin, timeouts, request)
            try:
                response, keep = await _exchange(conn, request, head, timeouts)
            except BaseException:
                self._discard(conn)
                raise
            if keep and not self._closed:
                self._checkin(conn)
            else:
                self._discard(conn)
            return response
        finally:
            slots.release()

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        self._open = 0

    def _checkout(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()
            if conn.usable(now, self._expiry_s):
                return conn
            self._discard(conn)
        return None

    def _checkin(self, conn: _Connection) -> None:
        now = asyncio.get_running_loop().time()
        conn.idle_since = now
        idle = self._idle.setdefault(conn.origin, [])
        # The bottom of a last-in first-out stack is what sits longest: expire it from there.
        while idle and now - idle[0].idle_since >= self._expiry_s:
            self._discard(idle.pop(0))
        idle.append(conn)

    def _discard(self, conn: _Connection) -> None:
        self._open -= 1
        conn.close()

    def _make_room(self) -> None:
        """At the limit, a new connection replaces the longest idle one (another origin's)."""
        oldest: list[_Connection] | None = None
        for idle in self._idle.values():
            if idle and (oldest is None or idle[0].idle_since < oldest[0].idle_since):
                oldest = idle
        if oldest is not None:
            self._discard(oldest.pop(0))

    async def _connect(
        self, origin: Origin, timeouts: dict[str, float | None], request: httpx.Request
    ) -> _Connection:
        scheme, host, port = origin
        if self._open >= self._limit:
            self._make_room()
        tls = self._ssl if scheme == "https" else None
        try:
            async with asyncio.timeout(timeouts.get("connect")):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=tls, server_hostname=host if tls else None, limit=MAX_HEAD
                )
        except TimeoutError:
            raise httpx.ConnectTimeout("connect timed out", request=request) from None
        except OSError as exc:
            # The cause stays attached: errors.classify_exception tells TLS and DNS faults by it.
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        self._open += 1
        return _Connection(origin, reader, writer)


def _request_head(request: httpx.Request) -> bytes:
    parts = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    for name, value in request.headers.raw:
        if not _HEADER_NAME.fullmatch(name) or _FORBIDDEN_IN_VALUE.search(value):
            raise httpx.LocalProtocolError("illegal header name or value", request=request)
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


async def _exchange(
    conn: _Connection,
    request: httpx.Request,
    head: bytes,
    timeouts: dict[str, float | None],
) -> tuple[httpx.Response, bool]:
    writer = conn.writer
    try:
        body = request.content
    except httpx.RequestNotRead:
        await _send_streamed(writer, request, head, timeouts.get("write"))
    else:
        writer.write(head + body if body else head)
        await _drain(writer, request, timeouts.get("write"))
    read_s = timeouts.get("read")
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(read_s) as scope:
            answer = await _read_head(conn.reader, request.method == "HEAD")
            content = await _read_body(conn.reader, answer, scope, read_s, loop)
    except TimeoutError:
        raise httpx.ReadTimeout("read timed out", request=request) from None
    except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as exc:
        raise httpx.RemoteProtocolError(
            "server disconnected without sending a complete response", request=request
        ) from exc
    except (asyncio.LimitOverrunError, ValueError) as exc:
        raise httpx.RemoteProtocolError("malformed response", request=request) from exc
    except OSError as exc:
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
    keep = answer.keep_alive and b"close" not in request.headers.get("connection", "").encode()
    response = httpx.Response(
        answer.status,
        headers=answer.headers,
        stream=httpx.ByteStream(content),
        extensions={"http_version": b"HTTP/1.1", "reason_phrase": answer.reason},
        request=request,
    )
    return response, keep


async def _drain(
    writer: asyncio.StreamWriter, request: httpx.Request, write_s: float | None
) -> None:
    if not writer.transport.get_write_buffer_size():
        return
    try:
        async with asyncio.timeout(write_s):
            await writer.drain()
    except TimeoutError:
        raise httpx.WriteTimeout("write timed out", request=request) from None
    except OSError as exc:
        raise httpx.WriteError(str(exc) or type(exc).__name__, request=request) from exc


async def _send_streamed(
    writer: asyncio.StreamWriter, request: httpx.Request, head: bytes, write_s: float | None
) -> None:
    chunked = request.headers.get("transfer-encoding", "").lower() == "chunked"
    writer.write(head)
    stream = request.stream
    if not isinstance(stream, httpx.AsyncByteStream):  # pragma: no cover - httpx builds these
        raise httpx.LocalProtocolError("a synchronous request body", request=request)
    async for chunk in stream:
        if chunk:
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            await _drain(writer, request, write_s)
    if chunked:
        writer.write(b"0\r\n\r\n")
    await _drain(writer, request, write_s)


async def _read_head(reader: asyncio.StreamReader, head_request: bool) -> _Head:
    while True:
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw[:-4].split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        code, _, reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise ValueError("not an HTTP/1.x status line")
        status = int(code)
        if 100 <= status < 200:
            continue  # informational (e.g. 103 Early Hints): the answer follows
        break
    headers: list[tuple[bytes, bytes]] = []
    length: int | None = None
    chunked = False
    connection = b""
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise ValueError("malformed header line")
        value = value.strip()
        headers.append((name, value))
        lower = name.lower()
        if lower == b"content-length":
            if not value.isdigit() or (length is not None and int(value) != length):
                raise ValueError("bad Content-Length")
            length = int(value)
        elif lower == b"transfer-encoding":
            chunked = value.lower().rsplit(b",", 1)[-1].strip() == b"chunked"
        elif lower == b"connection":
            connection = value.lower()
    keep_alive = version == b"HTTP/1.1" and b"close" not in connection
    answer = _Head(status, reason, headers, keep_alive, length, chunked)
    if head_request or status in _NO_BODY:
        answer.length, answer.chunked = 0, False
    elif chunked:
        answer.length = None
    elif length is None:
        answer.keep_alive = False  # the body runs until the server closes
    return answer


async def _read_body(
    reader: asyncio.StreamReader,
    answer: _Head,
    scope: asyncio.Timeout,
    read_s: float | None,
    loop: asyncio.AbstractEventLoop,
) -> bytes:
    def another_read() -> None:
        if read_s is not None:
            scope.reschedule(loop.time() + read_s)

    if answer.chunked:
        parts: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size < 0:
                raise ValueError("bad chunk size")
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers: not used
                return b"".join(parts)
            chunk = await reader.readexactly(size + 2)
            if chunk[-2:] != b"\r\n":
                raise ValueError("bad chunk")
            parts.append(chunk[:-2])
            another_read()
    if answer.length is not None:
        if answer.length <= READ_CHUNK:
            return await reader.readexactly(answer.length)
        parts, left = [], answer.length
        while left:
            chunk = await reader.readexactly(min(left, READ_CHUNK))
            parts.append(chunk)
            left -= len(chunk)
            another_read()
        return b"".join(parts)
    parts = []
    while chunk := await reader.read(READ_CHUNK):
        parts.append(chunk)
        another_read()
    return b"".join(parts)


def unbound(response: httpx.Response) -> httpx.Response:
    """`response` (already read whole) without the reference cycle httpx's client makes of it
    and its stream: unbound, the response and its body are freed as soon as the caller drops
    them, not at the next garbage collection (with a page of 5,000 contacts, megabytes)."""
    response.stream = httpx.ByteStream(response.content)
    return response
