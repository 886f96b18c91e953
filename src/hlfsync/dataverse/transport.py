"""An httpx transport made of several small connection pools instead of one large one.

httpcore scans every pooled connection (checking each socket) whenever a request starts or
ends, so one pool of N connections costs O(N) per event and O(N²) under full load: at 50
concurrent calls that scan, not the network, was the limit (measured in bench/drain.py). Small
shards, each request to the least busy one, keep the scan short and the behaviour the same.
One connection per shard measured best (bench/sync.py, 100 ms latency, c=50: 0.70 of ideal
with shards of 8, 0.74 with 2, 0.85 with 1): the least busy shard is then an idle connection,
found by a scan of small integers instead of sockets.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterator, Callable

import httpx

SHARD_CONNECTIONS = 1


class _Counted(httpx.AsyncByteStream):
    """A response body that tells its shard when it is done with the connection."""

    def __init__(self, stream: httpx.AsyncByteStream, done: Callable[[], None]) -> None:
        self._stream = stream
        self._done: Callable[[], None] | None = done

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._done is not None:
                self._done()
                self._done = None


class ShardedTransport(httpx.AsyncBaseTransport):
    """`connections` in all, spread over shards of at most SHARD_CONNECTIONS."""

    def __init__(
        self, *, connections: int, verify: ssl.SSLContext | bool, keepalive_expiry_s: float
    ) -> None:
        count = max(1, math.ceil(connections / SHARD_CONNECTIONS))
        per_shard = math.ceil(connections / count)
        limits = httpx.Limits(
            max_connections=per_shard,
            max_keepalive_connections=per_shard,
            keepalive_expiry=keepalive_expiry_s,
        )
        self._shards = [
            httpx.AsyncHTTPTransport(verify=verify, limits=limits) for _ in range(count)
        ]
        self._busy = [0] * count

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = min(range(len(self._shards)), key=self._busy.__getitem__)
        self._busy[index] += 1

        def done() -> None:
            self._busy[index] -= 1

        try:
            response = await self._shards[index].handle_async_request(request)
        except BaseException:
            done()
            raise
        stream = response.stream
        if not isinstance(stream, httpx.AsyncByteStream):  # pragma: no cover - httpx contract
            done()
            return response
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_Counted(stream, done),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()
