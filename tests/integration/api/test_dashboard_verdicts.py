"""Is the website right? Confirmed listings, verdicts, filters and viewer-scoped counts, on real
PostgreSQL, as a coordinator and as an administrator (row-level security as in production)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from hlfsync import settings
from hlfsync import testing as f
from hlfsync.api import create_app, sign_in_url, signin
from hlfsync.db import reconcile
from hlfsync.db.pool import open_pool
from hlfsync.db.queries import q
from hlfsync.db.queue import HIGHEST_PRIORITY, LOWEST_PRIORITY
from hlfsync.dynamics.port import ContactListing
from tests.integration.api import world as world_mod

Conn = psycopg.Connection[Any]
CLAIM_LEASE_S = 60


@dataclass
class Town:
    """One organisation, chapters C1 and C2; `coord` coordinates C1, `admin` the organisation.
    One mentor per verdict in C1, and in C2 a dead-lettered mentor the coordinator cannot see."""

    users: dict[str, uuid.UUID] = field(default_factory=dict)
    chapters: dict[str, uuid.UUID] = field(default_factory=dict)
    mentors: dict[str, uuid.UUID] = field(default_factory=dict)
    contacts: dict[str, uuid.UUID | None] = field(default_factory=dict)


def _name(conn: Conn, mentor: uuid.UUID, name: str) -> None:
    conn.execute("UPDATE peer_mentors SET full_name = %s WHERE id = %s", [name, mentor])


def _succeed(conn: Conn, mentor: uuid.UUID, at: datetime) -> None:
    """Queue, claim and succeed one operation through the worker's own queries."""
    conn.execute("SELECT enqueue_sync(ARRAY[%s]::uuid[], 'force', 10, 'test')", [mentor])
    due = datetime.now(UTC) + timedelta(minutes=1)
    claimed = conn.execute(
        q("claim"),
        {
            "due": due,
            "limit": 100,
            "worker": "t",
            "now": at,
            "lease": CLAIM_LEASE_S,
            "min_priority": LOWEST_PRIORITY,
            "max_priority": HIGHEST_PRIORITY,
        },
    ).fetchall()
    mine = [row for row in claimed if row[1] == mentor]
    assert mine, "the operation was not claimed"
    queue_id, claim = mine[0][0], mine[0][7]
    done = conn.execute(
        q("succeed_many"),
        {"ids": [queue_id], "claims": [claim], "at": [at], "durations": [12.0],
         "statuses": [204], "correlations": ["c"], "actor": "worker"},
    ).fetchall()  # fmt: skip
    assert done == [(queue_id,)]


def build(conn: Conn, now: datetime) -> Town:
    t = Town()
    org = f.make_org(conn, "Org")
    for name in ("C1", "C2"):
        t.chapters[name] = f.make_chapter(conn, org, name)
    t.users["coord"] = f.make_user(conn, org, coordinates=(t.chapters["C1"],))
    t.users["admin"] = f.make_user(conn, org, admin=True)
    plan = {
        "in_step": ("Ada Instep", "C1", True),
        "out_of_step": ("Bo Outstep", "C1", True),
        "pending": ("Cy Pending", "C1", True),
        "dead_lettered": ("Di Deadletter", "C1", True),
        "unlinked": ("Eli Unlinked", "C1", False),
        "unconfirmed": ("Fay Unconfirmed", "C1", True),
        "hidden": ("Gro Hidden", "C2", True),
    }
    for key, (name, chapter, contact) in plan.items():
        mentor = f.make_mentor(conn, org, chapters=(t.chapters[chapter],), contact=contact)
        _name(conn, mentor, name)
        t.mentors[key] = mentor
    _succeed(conn, t.mentors["in_step"], now - timedelta(hours=2))
    # Out of step: confirmed listed, then paused while the removal dead-lettered and was
    # resolved without a fix.
    _succeed(conn, t.mentors["out_of_step"], now - timedelta(hours=3))
    conn.execute(
        "UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [t.mentors["out_of_step"]]
    )
    queued = f.one(conn, "SELECT id FROM sync_queue WHERE mentor_id = %s AND status = 'pending'",
                   [t.mentors["out_of_step"]])  # fmt: skip
    letter = world_mod.dead_letter(conn, queued)
    conn.execute("SELECT resolve_dead_letter(%s, 'looked at it', 'test')", [letter])
    conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [t.mentors["pending"]])
    for key in ("dead_lettered", "hidden"):
        queued = f.one(
            conn, "SELECT sync_queue_id FROM enqueue_sync(ARRAY[%s]::uuid[], 'force', 10, 't')",
            [t.mentors[key]],
        )  # fmt: skip
        world_mod.dead_letter(conn, queued)
    return t


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def town(conn: Conn, now: datetime) -> Town:
    return build(conn, now)


def _verdicts(conn: Conn, user: uuid.UUID) -> dict[uuid.UUID, str]:
    with conn.transaction():
        world_mod.as_user(conn, user)
        rows = conn.execute("SELECT id, verdict FROM mentor_listing").fetchall()
        conn.execute("RESET ROLE")
    return dict(rows)


def test_each_mentor_gets_its_verdict_and_the_coordinator_sees_only_theirs(
    conn: Conn, town: Town
) -> None:
    """The view judges each case as documented, and row-level security decides who sees it."""
    coord = _verdicts(conn, town.users["coord"])
    assert coord == {town.mentors[k]: k for k in town.mentors if k != "hidden"}
    admin = _verdicts(conn, town.users["admin"])
    assert admin[town.mentors["hidden"]] == "dead_lettered"
    assert len(admin) == len(town.mentors)


def test_a_success_records_the_confirmed_listing_and_a_status_change_starts_the_difference(
    conn: Conn, town: Town, now: datetime
) -> None:
    """The success trigger stores what Dynamics confirmed; a later pause dates the difference."""
    mentor = town.mentors["in_step"]
    row = conn.execute(
        "SELECT listed, confirmed_by, differs_since FROM listing_confirmations"
        " WHERE mentor_id = %s", [mentor],
    ).fetchone()  # fmt: skip
    assert row == (True, "sync", None)
    conn.execute("UPDATE peer_mentors SET status = 'inactive' WHERE id = %s", [mentor])
    since, changed = conn.execute(
        "SELECT c.differs_since, p.status_changed_at FROM listing_confirmations c"
        " JOIN peer_mentors p ON p.id = c.mentor_id WHERE c.mentor_id = %s", [mentor],
    ).fetchone()  # fmt: skip
    assert since == changed
    out = conn.execute(
        "SELECT differs_since FROM listing_confirmations WHERE mentor_id = %s",
        [town.mentors["out_of_step"]],
    ).fetchone()
    assert out is not None
    assert out[0] is not None
    assert out[0] > now - timedelta(minutes=5)  # since the pause, not since the confirmation


class _Listings:
    """What Dynamics lists, as reconciliation reads it (the SQL is under test, not HTTP)."""

    def __init__(self, items: list[ContactListing]) -> None:
        self.items = items

    async def listings(self, page_size: int) -> AsyncIterator[list[ContactListing]]:
        yield self.items


async def test_reconciliation_confirms_what_dynamics_lists_but_never_over_a_newer_sync(
    conn: Conn, db_url: str, town: Town, now: datetime
) -> None:
    """A reconcile read confirms each mentor's listing as of its start; a sync confirmed later,
    or within the portal's read lag, keeps its word."""
    contacts = dict(conn.execute(
        "SELECT id, dynamics_contact_id FROM peer_mentors WHERE dynamics_contact_id IS NOT NULL"
    ).fetchall())  # fmt: skip
    unconfirmed, synced = town.mentors["unconfirmed"], town.mentors["in_step"]
    # Dynamics says: the unconfirmed mentor is NOT listed (someone removed it by hand), and
    # the just-synced one is not listed either (a stale read).
    items = [ContactListing(contacts[unconfirmed], False), ContactListing(contacts[synced], False)]
    pool = await open_pool(db_url, max_size=2)
    try:
        await reconcile.reconcile(
            pool, _Listings(items), now=now - timedelta(hours=2, seconds=-5),  # type: ignore[arg-type]
            dry_run=False, page_size=100, read_lag_s=60,
        )  # fmt: skip
    finally:
        await pool.close()
    rows = dict(conn.execute(
        "SELECT mentor_id, (listed, confirmed_by) FROM listing_confirmations"
        " WHERE mentor_id = ANY(%s)", [[unconfirmed, synced]],
    ).fetchall())  # fmt: skip
    assert rows[unconfirmed] == ("f", "reconcile")
    assert rows[synced] == ("t", "sync")


@pytest.fixture
async def browser(api_settings: settings.Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-keeping client for the dashboard on http://127.0.0.1."""
    app = create_app(api_settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                          base_url="http://127.0.0.1") as http,
    ):  # fmt: skip
        yield http


def _names(html: str) -> set[str]:
    return set(
        re.findall(
            r'data-label="Name"><a href="/dashboard/mentors/[0-9a-f-]{36}">([^<]+)</a>', html
        )
    )


NAMES = {
    "in_step": "Ada Instep", "out_of_step": "Bo Outstep", "pending": "Cy Pending",
    "dead_lettered": "Di Deadletter", "unlinked": "Eli Unlinked",
    "unconfirmed": "Fay Unconfirmed", "hidden": "Gro Hidden",
}  # fmt: skip


@pytest.mark.parametrize("user", ["coord", "admin"])
async def test_filters_and_search_return_exactly_the_matching_mentors(
    browser: httpx.AsyncClient, conn: Conn, town: Town, token: Callable[..., str], user: str
) -> None:
    """Each verdict, status, chapter and name filter lists exactly the caller's matching mentors."""
    await browser.get(sign_in_url("", signin.issue(conn, town.users[user], 60)))
    seen = set(NAMES) - ({"hidden"} if user == "coord" else set())
    for verdict in ("in_step", "out_of_step", "pending", "dead_lettered", "unlinked",
                    "unconfirmed"):  # fmt: skip
        page = await browser.get("/dashboard/mentors", params={"verdict": verdict})
        assert page.status_code == 200
        expected = {
            NAMES[k] for k in seen if k == verdict or (k == "hidden" and verdict == "dead_lettered")
        }
        assert _names(page.text) == expected, verdict
    paused = await browser.get("/dashboard/mentors", params={"status": "paused"})
    assert _names(paused.text) == {NAMES["out_of_step"], NAMES["pending"]}
    for chapter, keys in (("C1", seen - {"hidden"}), ("C2", seen & {"hidden"})):
        page = await browser.get(
            "/dashboard/mentors", params={"chapter": str(town.chapters[chapter])}
        )
        assert _names(page.text) == {NAMES[k] for k in keys}, chapter
    with_o = {k for k in seen if "o" in NAMES[k].lower()}
    for term, keys in (("dead", {"dead_lettered"}), ("o", with_o),
                       ("gro hid", seen & {"hidden"}), ("100%", set())):  # fmt: skip
        page = await browser.get("/dashboard/mentors", params={"q": term})
        assert _names(page.text) == {NAMES[k] for k in keys}, term
    both = await browser.get(
        "/dashboard/mentors", params={"q": "pending", "status": "paused", "verdict": "pending"}
    )
    assert _names(both.text) == {NAMES["pending"]}


async def test_the_api_carries_the_listing_and_verdict(
    client: httpx.AsyncClient, town: Town, token: Callable[..., str]
) -> None:
    """GET /api/v1/mentors gives each mentor the confirmed listing, its time and the verdict."""
    headers = {"authorization": f"Bearer {token(town.users['coord'])}"}
    body = (await client.get("/api/v1/mentors", headers=headers)).json()
    by_id = {uuid.UUID(m["id"]): m["listing"] for m in body["items"]}
    ok = by_id[town.mentors["in_step"]]
    assert ok["verdict"] == "in_step"
    assert ok["confirmed_listed"] is True
    assert ok["confirmed_by"] == "sync"
    assert ok["since"] == ok["confirmed_at"]
    assert by_id[town.mentors["out_of_step"]]["since"] is not None
    assert by_id[town.mentors["unconfirmed"]]["confirmed_listed"] is None


@pytest.mark.parametrize("user", ["coord", "admin"])
async def test_every_overview_count_is_the_viewers_own(
    browser: httpx.AsyncClient, conn: Conn, town: Town, token: Callable[..., str], user: str
) -> None:
    """The overview's counts, dead letters and problems count only the caller's mentors: a
    dead letter the coordinator cannot see is in nobody's number but the administrator's."""
    await browser.get(sign_in_url("", signin.issue(conn, town.users[user], 60)))
    html = (await browser.get("/dashboard")).text
    expected = {}
    for v in _verdicts(conn, town.users[user]).values():
        expected[v] = expected.get(v, 0) + 1
    for verdict in ("in_step", "out_of_step", "pending", "dead_lettered", "unlinked",
                    "unconfirmed"):  # fmt: skip
        shown = re.search(rf'<dd data-verdict="{verdict}">(\d+)</dd>', html)
        assert shown, verdict
        assert int(shown.group(1)) == expected.get(verdict, 0), verdict
    letters = 1 if user == "coord" else 2
    assert f"{letters} open dead letter(s)" in html
    assert f'<a href="/dashboard/dead-letters">{letters}</a>' in html
    assert "in all" not in html


def test_the_counts_and_the_view_agree_and_visible_mentors_follow_the_policy(
    conn: Conn, world: world_mod.World, town: Town
) -> None:
    """dashboard_counts() judges as the view does; auth_visible_mentors() and
    auth_mentors_named() follow the policy."""
    for user in (*world_mod.USERS, "town_coord", "town_admin"):
        uid = town.users[user[5:]] if user.startswith("town_") else world.users[user]
        with conn.transaction():
            world_mod.as_user(conn, uid)
            policy = world_mod.ids(conn, "SELECT id FROM peer_mentors")
            helper = world_mod.ids(conn, "SELECT auth_visible_mentors()")
            named = world_mod.ids(conn, "SELECT auth_mentors_named('%')")
            judged = dict(conn.execute(
                "SELECT verdict, count(*)::int FROM mentor_listing GROUP BY verdict"
            ).fetchall())  # fmt: skip
            counted = conn.execute("SELECT verdicts FROM dashboard_counts()").fetchone()
            conn.execute("RESET ROLE")
        assert helper == policy, user
        assert named == policy, user
        assert counted is not None
        assert counted[0] == judged, user


async def test_the_chart_counts_the_viewers_calls_per_hour(
    browser: httpx.AsyncClient, conn: Conn, town: Town, token: Callable[..., str], now: datetime
) -> None:
    """The 24 hourly buckets hold the caller's mentors' outcomes; the SVG renders them."""
    with conn.transaction():
        world_mod.as_user(conn, town.users["coord"])
        hours = conn.execute(
            "SELECT * FROM dashboard_hourly(%s, 24)", [now + timedelta(minutes=1)]
        ).fetchall()
        conn.execute("RESET ROLE")
    assert len(hours) == 24
    assert sum(h[1] for h in hours) == 2  # two successes in C1
    assert sum(h[4] for h in hours) == 2  # C1's two dead letters, not C2's
    await browser.get(sign_in_url("", signin.issue(conn, town.users["coord"], 60)))
    html = (await browser.get("/dashboard")).text
    assert '<svg class="chart"' in html
    assert html.count('class="bar succeeded"') == 2
    assert "Last 24 hours: 4 calls to Dynamics, 2 dead-lettered" in html


async def test_the_help_page_renders_the_coordinators_guide(
    browser: httpx.AsyncClient, conn: Conn, town: Town, token: Callable[..., str]
) -> None:
    """/dashboard/help is docs/coordinators.md as HTML, for a signed-in user."""
    await browser.get(sign_in_url("", signin.issue(conn, town.users["coord"], 60)))
    page = await browser.get("/dashboard/help")
    assert page.status_code == 200
    assert "<h1>A guide for coordinators</h1>" in page.text
    assert "up to 15 minutes" in page.text
    assert "<td>out of step</td>" in page.text


@pytest.mark.parametrize("reason", ["contract", "auth"])
async def test_the_overview_says_when_every_change_is_held(
    browser: httpx.AsyncClient, conn: Conn, town: Town, token: Callable[..., str], reason: str
) -> None:
    """A hold (contract drift or refused credentials) is named on a coordinator's overview: their
    changes wait, nothing is lost, administrators know; a closed circuit shows no such line."""
    await browser.get(sign_in_url("", signin.issue(conn, town.users["coord"], 60)))
    assert 'id="hold-dynamics"' not in (await browser.get("/dashboard")).text
    conn.execute(
        "UPDATE circuit_breakers SET state = 'open', opened_at = now(), auth_failed = true,"
        " hold_reason = %s WHERE name = 'dynamics'",
        [reason],
    )
    html = (await browser.get("/dashboard")).text
    assert 'id="hold-dynamics"' in html
    assert ("contract with Dynamics is broken" in html) == (reason == "contract")
    assert ("refuses hlfsync's credentials" in html) == (reason == "auth")
