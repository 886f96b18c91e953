"""Every endpoint, for every user of the isolation world: exactly their ids, and no write outside
their scope (404, the same answer as for something that does not exist, and nothing changes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from tests.integration.api.world import STAFF, USERS, World, ids

Auth = Callable[[str], dict[str, str]]


async def _walk(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> list[Any]:
    """Every item of a paginated list, following `next` to the end."""
    items: list[Any] = []
    next_url: str | None = url
    while next_url:
        response = await client.get(next_url, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        next_url = body["next"]
    return items


@pytest.mark.parametrize("user", USERS)
async def test_reads_show_each_user_exactly_their_mentors(
    client: httpx.AsyncClient, world: World, auth: Auth, user: str
) -> None:
    """Mentors, sync details, audit trails, dead letters and alerts: the user's ids, no others."""
    headers = auth(user)
    mentors = await _walk(client, "/api/v1/mentors?limit=2", headers)
    assert [m["id"] for m in mentors] == sorted(str(m) for m in world.visible_mentors(user))
    for mentor in world.mentors.values():
        visible = mentor in world.visible_mentors(user)
        for path in (f"/api/v1/mentors/{mentor}/sync", f"/api/v1/mentors/{mentor}/audit"):
            response = await client.get(path, headers=headers)
            assert response.status_code == (200 if visible else 404), (path, response.text)
    letters = await _walk(client, "/api/v1/dead-letters?limit=3", headers)
    assert {letter["id"] for letter in letters} == {
        world.dead_letters[name] for name in world.mentor_names(user)
    }
    alerts = await _walk(client, "/api/v1/alerts?limit=3", headers)
    expected = {str(m) for m in world.visible_mentors(user)}
    assert {a["mentor_id"] or a["kind"] for a in alerts} == expected


@pytest.mark.parametrize("user", USERS)
async def test_who_am_i_and_the_overview_follow_the_user(
    client: httpx.AsyncClient, world: World, auth: Auth, user: str
) -> None:
    """/me names the user's chapters and organisations; /overview answers staff only."""
    me = (await client.get("/api/v1/me", headers=auth(user))).json()
    assert me["id"] == str(world.users[user])
    assert {c["id"] for c in me["chapters"]} == {str(c) for c in world.coordinated(user)}
    assert {o["id"] for o in me["administers"]} == (
        {str(world.admin_org(user))} if world.admin_org(user) else set()
    )
    overview = await client.get("/api/v1/overview", headers=auth(user))
    assert overview.status_code == (200 if user in STAFF else 403), overview.text


@pytest.mark.parametrize("user", USERS)
async def test_writes_outside_scope_are_refused_and_change_nothing(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], world: World, auth: Auth, user: str
) -> None:
    """Force sync, re-queue and resolve on another's mentor or letter answer 404, write nothing."""
    queue = ids(conn, "SELECT id, status FROM sync_queue")
    letters = ids(conn, "SELECT id, status FROM dead_letter_queue")
    audit = ids(conn, "SELECT id FROM audit_log")
    for name, mentor in world.mentors.items():
        if mentor in world.visible_mentors(user):
            continue
        letter = world.dead_letters[name]
        for path, body in (
            (f"/api/v1/mentors/{mentor}/force-sync", None),
            (f"/api/v1/dead-letters/{letter}/requeue", None),
            (f"/api/v1/dead-letters/{letter}/resolve", {"note": "not mine"}),
        ):
            response = await client.post(path, json=body, headers=auth(user))
            assert response.status_code == 404, (path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
    assert ids(conn, "SELECT id, status FROM sync_queue") == queue
    assert ids(conn, "SELECT id, status FROM dead_letter_queue") == letters
    assert ids(conn, "SELECT id FROM audit_log") == audit


@pytest.mark.parametrize("user", sorted(STAFF))
async def test_writes_in_scope_are_done_as_the_caller(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], world: World, auth: Auth, user: str
) -> None:
    """In scope, force sync and re-queue queue an operation and resolve closes the letter, each
    audited with the caller as actor."""
    first, *rest = sorted(world.mentor_names(user))
    forced = await client.post(f"/api/v1/mentors/{world.mentors[first]}/force-sync",
                               headers=auth(user))  # fmt: skip
    assert forced.status_code == 202, forced.text
    requeued = await client.post(
        f"/api/v1/dead-letters/{world.dead_letters[first]}/requeue", headers=auth(user)
    )
    assert requeued.status_code == 202, requeued.text
    assert requeued.json()["mentor_id"] == str(world.mentors[first])
    if rest:
        resolved = await client.post(
            f"/api/v1/dead-letters/{world.dead_letters[rest[0]]}/resolve",
            json={"note": "contact fixed by hand"}, headers=auth(user),
        )  # fmt: skip
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["status"] == "resolved"
    actors = ids(
        conn,
        "SELECT DISTINCT actor FROM audit_log WHERE event_type IN"
        " ('sync_requested', 'dead_letter_requeued', 'dead_letter_resolved') AND actor <> 'test'",
    )
    assert actors == {str(world.users[user])}
