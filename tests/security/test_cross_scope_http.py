"""Through the API and the dashboard, for every user of the two-organisation world: an id out of
the caller's scope gets exactly the answer of an id that does not exist (status and body, the
echoed path aside), and the overview counts only the caller's own."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import psycopg
import pytest

from hlfsync import settings
from hlfsync.api import create_app, sign_in_url, signin
from tests.integration.api.world import STAFF, World

Auth = Callable[[str], dict[str, str]]
UNKNOWN_LETTER = 2**62
MENTOR_CALLS = [("GET", "/api/v1/mentors/{}/sync"), ("GET", "/api/v1/mentors/{}/audit"),
                ("POST", "/api/v1/mentors/{}/force-sync")]  # fmt: skip
LETTER_CALLS = [("POST", "/api/v1/dead-letters/{}/requeue", None),
                ("POST", "/api/v1/dead-letters/{}/resolve", {"note": "done by hand"})]  # fmt: skip


def _same(response: httpx.Response) -> tuple[int, dict[str, Any]]:
    """Status and problem body without `instance` (the request's own path, echoed)."""
    body = response.json()
    body.pop("instance", None)
    return response.status_code, body


@pytest.mark.parametrize("user", ["coord_a1", "coord_a23", "admin_a", "coord_b1", "idle_a"])
async def test_the_api_cannot_tell_foreign_from_unknown(
    client: httpx.AsyncClient, world: World, auth: Auth, user: str
) -> None:
    """Every mentor and dead-letter endpoint answers a foreign id as it answers an unknown one."""
    headers = auth(user)
    unknown = uuid.uuid4()
    for method, path in MENTOR_CALLS:
        expected = _same(await client.request(method, path.format(unknown), headers=headers))
        assert expected[0] == 404
        for name, mentor in world.mentors.items():
            if name not in world.mentor_names(user):
                got = await client.request(method, path.format(mentor), headers=headers)
                assert _same(got) == expected, (path, name)
    for method, path, body in LETTER_CALLS:
        none = await client.request(method, path.format(UNKNOWN_LETTER), headers=headers, json=body)
        expected = _same(none)
        assert expected[0] == 404
        for name, letter in world.dead_letters.items():
            if name not in world.mentor_names(user):
                got = await client.request(method, path.format(letter), headers=headers, json=body)
                assert _same(got) == expected, (path, name)


@pytest.mark.parametrize("user", sorted(STAFF))
async def test_the_overview_counts_only_the_callers_mentors(
    client: httpx.AsyncClient, world: World, auth: Auth, user: str
) -> None:
    """Open dead letters and queue totals on /api/v1/overview are the caller's own; scheduled
    runs come without their statistics."""
    body = (await client.get("/api/v1/overview", headers=auth(user))).json()
    seen = len(world.mentor_names(user))
    assert body["open_dead_letters"] == seen
    assert body["queue"].get("dead_lettered") == seen
    assert all("stats" not in run and "error" not in run for run in body["scheduled_runs"])


@pytest.fixture
async def browser(api_settings: settings.Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-keeping client on http://127.0.0.1."""
    app = create_app(api_settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                          base_url="http://127.0.0.1") as http,
    ):  # fmt: skip
        yield http


async def test_the_dashboard_cannot_tell_foreign_from_unknown(
    browser: httpx.AsyncClient, world: World, conn: psycopg.Connection[Any]
) -> None:
    """Signed in as org A's coordinator of A1: another organisation's (or chapter's) mentor page
    and actions look exactly like those of an id that does not exist."""
    await browser.get(sign_in_url("", signin.issue(conn, world.users["coord_a1"], 60)))
    page = await browser.get("/dashboard/dead-letters")
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert found
    csrf = found.group(1)
    unknown = uuid.uuid4()
    expected_page = await browser.get(f"/dashboard/mentors/{unknown}")
    assert expected_page.status_code == 404
    for name in ("m_b1", "m_stray", "m_a2", "m_a0"):
        mentor = world.mentors[name]
        got = await browser.get(f"/dashboard/mentors/{mentor}")
        assert (got.status_code, got.text) == (expected_page.status_code, expected_page.text)
        forced = await browser.post(f"/dashboard/mentors/{mentor}/force-sync",
                                    data={"csrf": csrf})  # fmt: skip
        unknown_forced = await browser.post(f"/dashboard/mentors/{unknown}/force-sync",
                                            data={"csrf": csrf})  # fmt: skip
        assert forced.headers["location"] == unknown_forced.headers["location"]
        for action in ("requeue", "resolve"):
            letter = world.dead_letters[name]
            got_letter = await browser.post(f"/dashboard/dead-letters/{letter}/{action}",
                                            data={"csrf": csrf, "note": "x"})  # fmt: skip
            none = await browser.post(f"/dashboard/dead-letters/{UNKNOWN_LETTER}/{action}",
                                      data={"csrf": csrf, "note": "x"})  # fmt: skip
            assert got_letter.headers["location"] == none.headers["location"], (name, action)
