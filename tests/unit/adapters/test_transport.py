"""The sharded transport: requests spread over small pools and every shard gets its count back."""

from __future__ import annotations

import asyncio
import ssl

import httpx
import pytest

from hlfsync.dataverse.transport import SHARD_CONNECTIONS, ShardedTransport


async def test_requests_go_to_the_least_busy_shard_and_are_released() -> None:
    """Concurrent requests spread over the shards; when bodies are read, every count is zero."""
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        started.set()
        await release.wait()
        return httpx.Response(200, json={"ok": True})

    sharded = ShardedTransport(connections=3, verify=ssl.create_default_context(),
                               keepalive_expiry_s=5)  # fmt: skip
    assert len(sharded._shards) == 3
    # Swap each shard's network for a mock: the sharding logic is what is under test.
    sharded._shards = [httpx.MockTransport(slow) for _ in sharded._shards]  # type: ignore[misc]
    async with httpx.AsyncClient(transport=sharded, base_url="https://dynamics.test") as http:
        calls = [asyncio.create_task(http.get(f"/{n}")) for n in range(6)]
        await started.wait()
        await asyncio.sleep(0)
        assert sorted(sharded._busy) == [2, 2, 2]
        release.set()
        responses = await asyncio.gather(*calls)
    assert [r.json() for r in responses] == [{"ok": True}] * 6
    assert sharded._busy == [0, 0, 0]
    assert SHARD_CONNECTIONS == 1


async def test_a_failed_request_gives_its_slot_back() -> None:
    """A transport error still releases the shard's count."""

    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    sharded = ShardedTransport(connections=1, verify=True, keepalive_expiry_s=5)
    sharded._shards = [httpx.MockTransport(broken)]  # type: ignore[list-item]
    async with httpx.AsyncClient(transport=sharded) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("https://dynamics.test/")
    assert sharded._busy == [0]
