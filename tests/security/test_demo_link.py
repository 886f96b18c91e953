"""`hlfsync demo` prints a sign-in link that carries a one-time code, never a bearer token: it
signs a browser in once, and the same link again is refused."""

from __future__ import annotations

import asyncio
import io
import re

import httpx
from rich.console import Console

from hlfsync import demo, settings
from tests.integration.api.conftest import SECRET
from tests.integration.api.world import World


async def test_the_demo_link_is_a_one_time_code(db_url: str, world: World) -> None:
    """The printed link has `?code=` and no JWT; following it signs in (303 and a session
    cookie), following it again gets the sign-in form (401) and no session."""
    conf = settings.load(database_url=db_url, jwt_secret=SECRET, db_pool_size=2, api_port=0)
    out = io.StringIO()
    stop = asyncio.Event()
    task = asyncio.create_task(demo._api(conf, stop, None, Console(file=out, width=400)))
    try:
        for _ in range(400):
            if "sign in:" in out.getvalue() or task.done():
                break
            await asyncio.sleep(0.05)
        found = re.search(r"sign in:\s+(\S+)", out.getvalue())
        assert found, out.getvalue()
        link = found.group(1)
        assert "?code=" in link
        assert "token" not in link
        assert "eyJ" not in link  # the start of every JWT
        async with httpx.AsyncClient() as http:
            first = await http.get(link)
            assert (first.status_code, first.headers["location"]) == (303, "/dashboard")
            assert "hlfsync_session=" in first.headers["set-cookie"]
            again = await http.get(link)
            assert again.status_code == 401
            assert "hlfsync_session=" not in again.headers.get("set-cookie", "")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)
