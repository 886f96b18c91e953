"""PooledTransport over real loopback sockets: keep-alive, limits, bodies, timeouts and faults.

The server is a small asyncio one whose answers each test scripts by path, so every framing
(Content-Length, chunked, until close, none) and every fault (silence, truncation, closed idle
connections) is on the wire exactly as a test names it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest
import trustme

from hlfsync.core.errors import ContractFailure, Transient
from hlfsync.outbound import errors
from hlfsync.outbound.transport import PooledTransport

Answer = Callable[[bytes, bytes], bytes | None]  # (path, body) -> raw answer, None: hang up


@dataclass
class Server:
    url: str
    connections: int = 0
    requests: list[tuple[bytes, dict[bytes, bytes], bytes]] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)


def ok(body: bytes = b"{}", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


@asynccontextmanager
async def serve(answer: Answer, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    state = Server(url="")
    handlers: list[asyncio.Task[None]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        state.writers.append(writer)
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                first, *lines = head[:-4].split(b"\r\n")
                headers = {k.lower(): v.strip() for k, _, v in (x.partition(b":") for x in lines)}
                if headers.get(b"transfer-encoding") == b"chunked":
                    body = b""
                    while size := int(await reader.readuntil(b"\r\n"), 16):
                        body += (await reader.readexactly(size + 2))[:-2]
                    await reader.readuntil(b"\r\n")
                else:
                    body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
                path = first.split(b" ")[1]
                state.requests.append((first, headers, body))
                raw = answer(path, body)
                if raw is None:
                    break
                if raw == b"SILENCE":
                    await asyncio.sleep(30)
                writer.write(raw)
                await writer.drain()
                if b"Connection: close" in raw:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    state.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        yield state
    finally:
        for writer in state.writers:
            writer.close()
        for task in handlers:
            task.cancel()
        server.close()


def client(connections: int = 4, expiry_s: float = 30.0, **kw: object) -> httpx.AsyncClient:
    transport = PooledTransport(connections=connections, verify=kw.pop("verify", False),  # type: ignore[arg-type]
                                keepalive_expiry_s=expiry_s)  # fmt: skip
    return httpx.AsyncClient(transport=transport, timeout=kw.pop("timeout", 5.0))  # type: ignore[arg-type]


async def test_sequential_calls_share_one_kept_alive_connection() -> None:
    async with serve(lambda path, body: ok(b'{"echo": "%s"}' % body)) as server:
        async with client() as http:
            for n in range(20):
                answer = await http.post(server.url + "/hook", content=b"%d" % n)
                assert answer.json() == {"echo": str(n)}
        assert server.connections == 1
        assert len(server.requests) == 20


async def test_concurrent_calls_never_open_more_than_the_limit() -> None:
    async with serve(lambda path, body: ok(body)) as server:
        async with client(connections=3) as http:
            answers = await asyncio.gather(
                *(http.post(server.url + "/x", content=b"%d" % n) for n in range(30))
            )
        assert [a.content for a in answers] == [b"%d" % n for n in range(30)]
        assert 1 <= server.connections <= 3


async def test_every_framing_of_an_answer_is_read_whole() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    big = bytes(range(256)) * 1024  # several reads
    answers = {
        b"/chunked": chunked,
        b"/big": ok(big),
        b"/none": b"HTTP/1.1 204 No Content\r\n\r\n",
        b"/early": b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + ok(b"after"),
    }
    async with serve(lambda path, body: answers[path]) as server:
        async with client() as http:
            assert (await http.get(server.url + "/chunked")).content == b"hello world"
            assert (await http.get(server.url + "/big")).content == big
            none = await http.get(server.url + "/none")
            assert none.status_code == 204
            assert none.content == b""
            assert (await http.get(server.url + "/early")).content == b"after"
        assert server.connections == 1  # every framing left the connection reusable


async def test_an_answer_until_close_is_read_and_the_connection_not_reused() -> None:
    until_close = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the end"
    async with serve(lambda path, body: until_close) as server, client() as http:
        assert (await http.get(server.url + "/a")).content == b"to the end"
        assert (await http.get(server.url + "/b")).content == b"to the end"
        assert server.connections == 2


async def test_a_server_hanging_up_without_an_answer_is_a_protocol_error() -> None:
    async with serve(lambda path, body: None) as server, client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(server.url + "/gone")


async def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    async with serve(lambda path, body: ok()) as server:
        async with client() as http:
            await http.get(server.url + "/1")
            for writer in server.writers:
                writer.close()
            await asyncio.sleep(0.05)  # the FIN reaches the idle connection
            assert (await http.get(server.url + "/2")).status_code == 200
        assert server.connections == 2


async def test_an_expired_idle_connection_is_not_reused() -> None:
    async with serve(lambda path, body: ok()) as server:
        async with client(expiry_s=0.0) as http:
            await http.get(server.url + "/1")
            await http.get(server.url + "/2")
        assert server.connections == 2


async def test_timeouts_are_httpx_timeouts() -> None:
    slow = httpx.Timeout(0.3, pool=0.05)
    async with serve(lambda path, body: b"SILENCE") as server, client(1, timeout=slow) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(server.url + "/slow")
        first = asyncio.create_task(http.get(server.url + "/slow"))
        await asyncio.sleep(0.05)
        with pytest.raises(httpx.PoolTimeout):
            await http.get(server.url + "/waits-for-the-only-connection")
        with pytest.raises(httpx.ReadTimeout):
            await first
    assert isinstance(errors.classify_exception(httpx.ReadTimeout("x")), Transient)


async def test_a_truncated_answer_is_a_protocol_error_and_transient() -> None:
    truncated = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 10\r\n\r\nabc"
    async with serve(lambda path, body: truncated) as s, client() as http:
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            await asyncio.wait_for(http.get(s.url + "/"), 5)
    assert isinstance(errors.classify_exception(caught.value), Transient)


async def test_garbage_instead_of_an_answer_is_a_protocol_error() -> None:
    async with serve(lambda path, body: b"SSH-2.0-OpenSSH\r\n\r\n") as server, client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(server.url + "/")


async def test_a_refused_connection_is_a_connect_error_and_transient() -> None:
    async with serve(lambda path, body: ok()) as server:
        url = server.url
    async with client() as http:
        with pytest.raises(httpx.ConnectError) as caught:
            await http.get(url + "/")
    assert isinstance(errors.classify_exception(caught.value), Transient)


async def test_header_injection_is_refused_before_anything_is_sent() -> None:
    async with serve(lambda path, body: ok()) as server:
        async with client() as http:
            with pytest.raises(httpx.LocalProtocolError):
                await http.get(server.url + "/", headers={"X-Id": "a\r\nX-Evil: 1"})
        assert server.requests == []


async def test_tls_is_verified_against_the_given_trust() -> None:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    async with serve(lambda path, body: ok(b"secure"), tls=server_tls) as server:
        async with client(verify=trusting) as http:
            assert (await http.get(server.url + "/")).content == b"secure"
            assert (await http.get(server.url + "/")).content == b"secure"
        assert server.connections == 1
        async with client(verify=ssl.create_default_context()) as http:
            with pytest.raises(httpx.ConnectError) as caught:
                await http.get(server.url + "/")
    failure = errors.classify_exception(caught.value)
    assert isinstance(failure, ContractFailure)
    assert "TLS certificate verification failed" in str(failure)


async def test_headers_and_body_reach_the_server_as_sent() -> None:
    async with serve(lambda path, body: ok()) as server:
        async with client() as http:
            await http.post(server.url + "/hook?key=1", content=b'{"a":1}',
                            headers={"X-Correlation-ID": "c-1"})  # fmt: skip

            async def pieces() -> AsyncIterator[bytes]:
                yield b"part one, "
                yield b"part two"

            await http.post(server.url + "/stream", content=pieces())
        (first, headers, body), (streamed_first, streamed_headers, _) = server.requests
    assert first == b"POST /hook?key=1 HTTP/1.1"
    assert headers[b"x-correlation-id"] == b"c-1"
    assert headers[b"host"] == server.url.split("//")[1].encode()
    assert body == b'{"a":1}'
    assert streamed_first == b"POST /stream HTTP/1.1"
    assert streamed_headers[b"transfer-encoding"] == b"chunked"


async def test_bytes_arriving_on_an_idle_connection_are_never_read_as_an_answer() -> None:
    """A server's unsolicited "408 Request Timeout" on a kept-alive connection retires it."""
    late = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n"
    async with serve(lambda path, body: ok() + late if path == b"/1" else ok()) as server:
        async with client() as http:
            assert (await http.get(server.url + "/1")).status_code == 200
            await asyncio.sleep(0.05)
            assert (await http.get(server.url + "/2")).status_code == 200
        assert server.connections == 2


async def test_an_unbound_response_is_freed_without_the_garbage_collector() -> None:
    """httpx's client ties a response and its stream in a reference cycle: the body lives until
    a garbage collection. `unbound` breaks it, so dropping the response frees it at once."""
    import gc
    import weakref

    from hlfsync.outbound.transport import unbound

    page = ok(b'{"page": "' + b"x" * 100_000 + b'"}')
    async with serve(lambda path, body: page) as server, client() as http:
        gc.disable()
        try:
            bound = await http.get(server.url + "/page")
            kept = weakref.ref(bound)
            del bound
            assert kept() is not None  # the cycle holds it: the reason for `unbound`
            freed = unbound(await http.get(server.url + "/page"))
            assert freed.json()["page"] == "x" * 100_000
            gone = weakref.ref(freed)
            del freed
            assert gone() is None
        finally:
            gc.enable()
