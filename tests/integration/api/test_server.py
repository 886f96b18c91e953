"""`serve`: what `hlfsync api`, `run` and `demo` call. A taken address is one ConfigError line
(an unreachable database is open_pool's, tested with it); a set `stop` event ends it."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from hlfsync import settings
from hlfsync.api import serve
from hlfsync.core.errors import ConfigError
from tests.integration.api.conftest import SECRET


async def test_serves_until_stopped_and_reports_its_url(db_url: str) -> None:
    """on_ready gets the bound URL; the API answers there; setting `stop` ends serve()."""
    conf = settings.load(database_url=db_url, jwt_secret=SECRET, db_pool_size=2)
    stop, ready = asyncio.Event(), asyncio.Event()
    urls: list[str] = []

    def started(url: str) -> None:
        urls.append(url)
        ready.set()

    task = asyncio.create_task(serve(conf, stop, host="127.0.0.1", port=0, on_ready=started))
    await asyncio.wait_for(ready.wait(), timeout=20)
    async with httpx.AsyncClient(base_url=urls[0]) as client:
        assert (await client.get("/readyz")).status_code == 200
    stop.set()
    await asyncio.wait_for(task, timeout=10)


async def test_a_taken_address_is_one_line(db_url: str) -> None:
    """Listening on a port already in use fails with ConfigError naming the settings."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        conf = settings.load(database_url=db_url, jwt_secret=SECRET)
        with pytest.raises(ConfigError, match=r"cannot listen on 127\.0\.0\.1:\d+ \(HLFSYNC_API"):
            await serve(conf, asyncio.Event(), host="127.0.0.1", port=taken.getsockname()[1])
    finally:
        taken.close()
