"""The API's promises beyond isolation: pagination, the sync view, conflicts, problem documents,
the OpenAPI document, health and readiness."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from hlfsync import testing as f
from tests.integration.api.world import World

Auth = Callable[[str], dict[str, str]]


async def test_pages_are_cursor_linked_and_the_last_has_no_next(
    client: httpx.AsyncClient, world: World, auth: Auth
) -> None:
    """`next` carries an opaque cursor; following it gives the rest; the last page has none."""
    first = (await client.get("/api/v1/mentors?limit=3", headers=auth("admin_a"))).json()
    assert len(first["items"]) == 3
    assert first["next"].startswith("http://testserver/api/v1/mentors?")
    rest = (await client.get(first["next"], headers=auth("admin_a"))).json()
    assert len(rest["items"]) == 2
    assert rest["next"] is None
    assert {m["id"] for m in first["items"]}.isdisjoint(m["id"] for m in rest["items"])


@pytest.mark.parametrize("cursor", ["garbage", "eyJ2IjoyLCJrIjoxfQ", "eyJ2IjoxLCJrIjoieCJ9"])
async def test_a_cursor_we_did_not_issue_is_a_400(
    client: httpx.AsyncClient, world: World, auth: Auth, cursor: str
) -> None:
    """Undecodable, unknown-version or wrong-typed cursors answer 400, not 500."""
    for path in ("/api/v1/mentors", "/api/v1/dead-letters", "/api/v1/alerts"):
        response = await client.get(f"{path}?cursor={cursor}", headers=auth("admin_a"))
        assert response.status_code == 400, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("limit", [0, 201, "x"])
async def test_page_size_is_bounded(
    client: httpx.AsyncClient, world: World, auth: Auth, limit: Any
) -> None:
    """limit must be 1..200; anything else is a 422 problem naming the parameter."""
    response = await client.get(f"/api/v1/mentors?limit={limit}", headers=auth("admin_a"))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["loc"] == ["query", "limit"]


async def test_the_sync_view_shows_attempts_the_dead_letter_and_the_actions(
    client: httpx.AsyncClient, world: World, auth: Auth
) -> None:
    """After a push the app sees the failed attempt, the open dead letter and what it may do;
    after a re-queue, the letter is gone and the operation waits."""
    url = f"/api/v1/mentors/{world.mentors['m_a1']}/sync"
    view = (await client.get(url, headers=auth("coord_a1"))).json()
    assert view["sync"]["state"] == "dead_lettered"
    assert view["dead_letter"]["id"] == world.dead_letters["m_a1"]
    assert view["attempts"][0]["outcome"] == "dead_lettered"
    assert view["attempts"][0]["http_status"] == 503
    assert view["actions"] == ["force_sync", "requeue", "resolve"]
    requeue = f"/api/v1/dead-letters/{world.dead_letters['m_a1']}/requeue"
    assert (await client.post(requeue, headers=auth("coord_a1"))).status_code == 202
    after = (await client.get(url, headers=auth("coord_a1"))).json()
    assert after["dead_letter"] is None
    assert after["sync"]["state"] == "pending"
    assert after["sync"]["source"] == "requeue"
    assert after["actions"] == ["force_sync"]


async def test_acting_on_a_letter_no_longer_open_is_a_409(
    client: httpx.AsyncClient, world: World, auth: Auth
) -> None:
    """Re-queue twice, or resolve what was re-queued: 409 with the reason."""
    letter = world.dead_letters["m_a2"]
    headers = auth("admin_a")
    assert (await client.post(f"/api/v1/dead-letters/{letter}/requeue",
                              headers=headers)).status_code == 202  # fmt: skip
    again = await client.post(f"/api/v1/dead-letters/{letter}/requeue", headers=headers)
    assert again.status_code == 409
    assert again.json()["detail"] == "the dead letter is requeued, not open"
    resolve = await client.post(
        f"/api/v1/dead-letters/{letter}/resolve", json={"note": "x"}, headers=headers
    )
    assert resolve.status_code == 409


@pytest.mark.parametrize("body", [{}, {"note": ""}, {"note": "   "}, {"note": 5}])
async def test_resolving_needs_a_note(
    client: httpx.AsyncClient, world: World, auth: Auth, body: dict[str, Any]
) -> None:
    """A resolution without a real note is a 422 and leaves the letter open."""
    letter = world.dead_letters["m_a3"]
    response = await client.post(
        f"/api/v1/dead-letters/{letter}/resolve", json=body, headers=auth("admin_a")
    )
    assert response.status_code == 422
    listed = (await client.get("/api/v1/dead-letters?status=open&limit=200",
                               headers=auth("admin_a"))).json()  # fmt: skip
    assert letter in {item["id"] for item in listed["items"]}


async def test_forcing_a_mentor_without_a_contact_is_a_409(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], world: World, auth: Auth
) -> None:
    """Nothing can be synced for a mentor with no Dynamics contact: 409, nothing queued."""
    mentor = f.make_mentor(conn, world.orgs["A"], contact=False)
    response = await client.post(f"/api/v1/mentors/{mentor}/force-sync", headers=auth("admin_a"))
    assert response.status_code == 409
    assert conn.execute("SELECT count(*) FROM sync_queue WHERE mentor_id = %s",
                        [mentor]).fetchone() == (0,)  # fmt: skip


async def test_the_audit_trail_is_newest_first(
    client: httpx.AsyncClient, world: World, auth: Auth
) -> None:
    """A mentor's audit trail lists its events newest first, with who did them."""
    mentor = world.mentors["m_b1"]
    await client.post(f"/api/v1/mentors/{mentor}/force-sync", headers=auth("coord_b1"))
    trail = (await client.get(f"/api/v1/mentors/{mentor}/audit", headers=auth("coord_b1"))).json()
    events = [(e["event_type"], e["actor"]) for e in trail["items"]]
    assert events == [
        ("sync_requested", str(world.users["coord_b1"])),
        ("dead_lettered", "worker"),
        ("sync_requested", "test"),
    ]


@pytest.mark.parametrize(
    "case",
    [
        ("GET", "/no/such/route", 404),
        ("DELETE", "/api/v1/mentors", 405),
        ("GET", "/api/v1/mentors/not-a-uuid/sync", 422),
        ("POST", "/api/v1/dead-letters/0/requeue", 422),
        ("POST", "/api/v1/dead-letters/1/resolve", 422),
    ],
)
async def test_framework_errors_are_problem_documents_too(
    client: httpx.AsyncClient, world: World, auth: Auth, case: tuple[str, str, int]
) -> None:
    """Unknown routes, wrong methods and bad parameters are application/problem+json."""
    method, path, status = case
    response = await client.request(method, path, headers=auth("admin_a"), content=b"{")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status


async def test_the_openapi_document_declares_the_bearer_scheme_and_the_models(
    client: httpx.AsyncClient,
) -> None:
    """Every /api/v1 operation needs the bearer token and names its response model."""
    doc = (await client.get("/openapi.json")).json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, operations in doc["paths"].items():
        if not path.startswith("/api/v1"):
            continue
        for method, operation in operations.items():
            assert operation["security"] == [{"bearer": []}], (method, path)
            ok = next(c for c in operation["responses"] if c.startswith("2"))
            schema = operation["responses"][ok]["content"]["application/json"]["schema"]
            assert "$ref" in schema, (method, path)
            assert "401" in operation["responses"]
    assert "ProblemDetail" in doc["components"]["schemas"]


async def test_health_is_the_process_and_readiness_the_database(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    """/healthz is always ok; /readyz is ready until a migration is missing, then 503."""
    assert (await client.get("/healthz")).json() == {"status": "ok", "pending_migrations": []}
    assert (await client.get("/readyz")).status_code == 200
    conn.execute("DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM"
                 " schema_migrations)")  # fmt: skip
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert len(response.json()["pending_migrations"]) == 1
