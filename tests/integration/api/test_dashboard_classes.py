"""The overview's classes and kept chart hours (0019), on real PostgreSQL: classes follow every
change of membership and organisation, a viewer's classes hold exactly the mentors the policy
shows them, and the chart built from kept hours equals the live count over the policy, also
after a late event and after a mentor changed chapters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from hlfsync import testing as f
from hlfsync.api import rls, store
from hlfsync.api.auth import Caller
from hlfsync.db.pool import open_pool
from tests.integration.api import world as world_mod

Conn = psycopg.Connection[Any]
EVENTS = ("sync_succeeded", "sync_retry_scheduled", "sync_throttled", "dead_lettered")


def _classes_as_kept(conn: Conn) -> dict[uuid.UUID, tuple[uuid.UUID, list[uuid.UUID]]]:
    return {
        mentor: (org, sorted(chapters))
        for mentor, org, chapters in conn.execute(
            "SELECT m.mentor_id, c.organization_id, c.chapters FROM mentor_class_members m"
            " JOIN mentor_classes c ON c.id = m.class_id"
        ).fetchall()
    }


def _classes_afresh(conn: Conn) -> dict[uuid.UUID, tuple[uuid.UUID, list[uuid.UUID]]]:
    chapters: dict[uuid.UUID, list[uuid.UUID]] = {}
    for mentor, chapter in conn.execute("SELECT mentor_id, chapter_id FROM chapter_memberships"):
        chapters.setdefault(mentor, []).append(chapter)
    return {
        mentor: (org, sorted(chapters.get(mentor, [])))
        for mentor, org in conn.execute("SELECT id, organization_id FROM peer_mentors").fetchall()
    }


def _assert_classes_hold(conn: Conn) -> None:
    """Each mentor in the class of its organisation and chapters, each class size right."""
    assert _classes_as_kept(conn) == _classes_afresh(conn)
    sizes = conn.execute(
        "SELECT c.id, c.mentors, count(m.mentor_id) FROM mentor_classes c"
        " LEFT JOIN mentor_class_members m ON m.class_id = c.id GROUP BY c.id, c.mentors"
    ).fetchall()
    assert all(kept == counted for _, kept, counted in sizes), sizes


def _seen(conn: Conn, user: uuid.UUID) -> tuple[set[Any], set[Any], dict[str, int], Any]:
    """As `user`: the policy's mentors, their classes' mentors, the view's verdict counts and
    dashboard_counts()."""
    with conn.transaction(force_rollback=True):
        world_mod.as_user(conn, user)
        policy = world_mod.ids(conn, "SELECT id FROM peer_mentors")
        judged = dict(conn.execute(
            "SELECT verdict, count(*)::int FROM mentor_listing GROUP BY verdict"
        ).fetchall())  # fmt: skip
        counted = conn.execute("SELECT verdicts FROM dashboard_counts()").fetchone()
        classes = [r[0] for r in conn.execute("SELECT auth_visible_classes()").fetchall()]
        conn.execute("RESET ROLE")
        of_classes = world_mod.ids(
            conn, "SELECT mentor_id FROM mentor_class_members WHERE class_id = ANY(%s)", [classes]
        )
    return policy, of_classes, judged, counted[0] if counted else None


def _assert_scoped(conn: Conn, world: world_mod.World) -> None:
    for name in world_mod.USERS:
        policy, of_classes, judged, counted = _seen(conn, world.users[name])
        assert of_classes == policy, name
        assert counted == judged, name


def test_classes_follow_memberships_and_organisations_and_scope_every_viewer(
    conn: Conn, world: world_mod.World
) -> None:
    """Every kind of change that moves a mentor keeps the classes right and each viewer's
    classes equal to what the policy shows them, counts included."""
    _assert_classes_hold(conn)
    _assert_scoped(conn, world)
    m, c = world.mentors, world.chapters
    changes = [
        ("INSERT INTO chapter_memberships VALUES (%s, %s)", [m["m_a0"], c["A3"]]),
        ("DELETE FROM chapter_memberships WHERE mentor_id = %s AND chapter_id = %s",
         [m["m_a12"], c["A1"]]),
        ("UPDATE chapter_memberships SET chapter_id = %s WHERE mentor_id = %s",
         [c["A1"], m["m_a3"]]),
        ("UPDATE peer_mentors SET organization_id = %s WHERE id = %s",
         [world.orgs["A"], m["m_stray"]]),
    ]  # fmt: skip
    for sql, params in changes:
        conn.execute(sql.encode(), params)
        _assert_classes_hold(conn)
        _assert_scoped(conn, world)
    added = f.make_mentor(conn, world.orgs["B"], chapters=(c["B1"],))
    _assert_classes_hold(conn)
    _assert_scoped(conn, world)
    _, of_classes, _, _ = _seen(conn, world.users["coord_b1"])
    assert added in of_classes
    conn.execute("DELETE FROM peer_mentors WHERE id = %s", [added])
    _assert_classes_hold(conn)
    _assert_scoped(conn, world)
    # The repair after a load with triggers off changes nothing when nothing is wrong.
    before = _classes_as_kept(conn)
    conn.execute("SELECT reclass_mentors(ARRAY(SELECT id FROM peer_mentors))")
    assert _classes_as_kept(conn) == before


def _event(conn: Conn, mentor: uuid.UUID, kind: str, at: datetime, lag_s: float) -> None:
    queue_id = None
    if kind == "sync_succeeded":
        queue_id = f.one(
            conn,
            "INSERT INTO sync_queue (mentor_id, operation, payload_json, status, created_at,"
            " updated_at, finished_at, attempt_count)"
            " VALUES (%s, 'restore', '{}', 'succeeded', %s, %s, %s, 1) RETURNING id",
            [mentor, at - timedelta(seconds=lag_s), at, at],
        )
    conn.execute(
        "INSERT INTO audit_log (occurred_at, mentor_id, sync_queue_id, event_type)"
        " VALUES (%s, %s, %s, %s)",
        [at, mentor, queue_id, kind],
    )


def _chart(conn: Conn, user: uuid.UUID, upto: datetime) -> list[tuple[Any, ...]]:
    with conn.transaction():
        world_mod.as_user(conn, user)
        rows = conn.execute("SELECT * FROM dashboard_hourly(%s, 24)", [upto]).fetchall()
        conn.execute("RESET ROLE")
    return rows


def _live(conn: Conn, user: uuid.UUID, upto: datetime) -> list[tuple[Any, ...]]:
    """0014's count, written here against the policy: the user's own reading of audit_log."""
    with conn.transaction(force_rollback=True):
        world_mod.as_user(conn, user)
        return conn.execute(
            "WITH e AS (SELECT date_trunc('hour', a.occurred_at, 'UTC') AS hour, a.event_type,"
            "   extract(epoch FROM a.occurred_at - s.created_at)::float8 AS lag_s"
            "  FROM audit_log a LEFT JOIN sync_queue s"
            "    ON a.event_type = 'sync_succeeded' AND s.id = a.sync_queue_id"
            "  WHERE a.event_type = ANY(%(events)s) AND a.occurred_at <= %(upto)s"
            "    AND a.occurred_at >= date_trunc('hour', %(upto)s, 'UTC') - interval '23 hours')"
            " SELECT h.hour,"
            "  count(*) FILTER (WHERE e.event_type = 'sync_succeeded')::int,"
            "  count(*) FILTER (WHERE e.event_type = 'sync_retry_scheduled')::int,"
            "  count(*) FILTER (WHERE e.event_type = 'sync_throttled')::int,"
            "  count(*) FILTER (WHERE e.event_type = 'dead_lettered')::int,"
            "  percentile_cont(0.5) WITHIN GROUP (ORDER BY e.lag_s), max(e.lag_s)"
            " FROM generate_series(date_trunc('hour', %(upto)s, 'UTC') - interval '23 hours',"
            "   date_trunc('hour', %(upto)s, 'UTC'), interval '1 hour') AS h (hour)"
            " LEFT JOIN e ON e.hour = h.hour GROUP BY h.hour ORDER BY h.hour",
            {"events": list(EVENTS), "upto": upto},
        ).fetchall()


def _kept_hours(conn: Conn) -> int:
    return int(f.one(
        conn,
        "SELECT count(*) FROM chart_hours c, mentor_class_generation g"
        " WHERE c.rolled_gen = c.gen AND c.rolled_classes = g.gen",
    ))  # fmt: skip


@pytest.fixture
def day(conn: Conn, world: world_mod.World) -> datetime:
    """A day of calls for every world mentor, spread over the hours; returns now."""
    now = datetime.now(UTC)
    for i, mentor in enumerate(sorted(world.mentors.values())):
        for hour in range(0, 26, 3):
            kind = EVENTS[(i + hour) % len(EVENTS)]
            at = now - timedelta(hours=hour, minutes=7 * i + 1)
            _event(conn, mentor, kind, at, lag_s=0.5 + i + hour / 10)
    return now


def test_the_kept_chart_equals_the_live_count_for_every_viewer(
    conn: Conn, world: world_mod.World, day: datetime
) -> None:
    """The closed hours are kept on first sight; every viewer's chart, built from them and the
    live newest minutes, equals the count over the policy, hour by hour. A late event into a
    kept hour and a mentor changing chapters show at once."""
    assert _kept_hours(conn) == 0
    for name in world_mod.USERS:
        assert _chart(conn, world.users[name], day) == _live(conn, world.users[name], day), name
    assert _kept_hours(conn) >= 22  # the closed hours of the window (grace: 5 minutes)
    assert f.one(conn, "SELECT count(*) FROM chart_hour_classes") > 0

    # A late event (recorded after its hour ended) into a kept hour, for a coordinated mentor.
    late = day - timedelta(hours=5, minutes=30)
    _event(conn, world.mentors["m_a1"], "sync_throttled", late, lag_s=0)
    coord = world.users["coord_a1"]
    chart = _chart(conn, coord, day)
    assert chart == _live(conn, coord, day)
    hour = late.replace(minute=0, second=0, microsecond=0)
    assert next(row[3] for row in chart if row[0] == hour) >= 1

    # m_a3 joins A1: coord_a1 now sees its past calls too, hour by hour.
    before = sum(row[1] + row[2] + row[3] + row[4] for row in _chart(conn, coord, day))
    conn.execute(
        "INSERT INTO chapter_memberships VALUES (%s, %s)",
        [world.mentors["m_a3"], world.chapters["A1"]],
    )
    for name in world_mod.USERS:
        assert _chart(conn, world.users[name], day) == _live(conn, world.users[name], day), name
    after = sum(row[1] + row[2] + row[3] + row[4] for row in _chart(conn, coord, day))
    assert after > before
    assert _kept_hours(conn) >= 22  # kept again, with the new classes


@pytest.mark.parametrize("key", [190001, 190002], ids=["class change", "late event"])
def test_a_change_under_way_leaves_the_hours_to_the_live_count(
    conn: Conn, db_url: str, world: world_mod.World, day: datetime, key: int
) -> None:
    """While another transaction changes classes or writes a late event, a page neither waits
    nor keeps hours that may be stale: it counts live, and equals the policy's count."""
    coord = world.users["coord_a23"]
    with psycopg.connect(db_url) as other:
        other.execute("SELECT pg_advisory_xact_lock(%s, 0)", [key])  # the writer's lock
        assert _chart(conn, coord, day) == _live(conn, coord, day)
        assert _kept_hours(conn) == 0
        other.rollback()
    assert _chart(conn, coord, day) == _live(conn, coord, day)
    assert _kept_hours(conn) >= 22


async def _walk(
    pool: Any, user: uuid.UUID, where: store.MentorFilter, limit: int = 2
) -> list[uuid.UUID]:
    """Every page of the dashboard's mentor list for `user`, following the cursor."""
    caller = Caller(user, {"sub": str(user), "role": "authenticated"})
    seen: list[uuid.UUID] = []
    after = None
    while True:
        async with rls.as_caller(pool, caller) as db:
            items, after = await store.mentor_page(db, after=after, limit=limit, where=where)
        seen += [m.id for m in items]
        if after is None:
            return seen


def _policy(conn: Conn, user: uuid.UUID, where: str, params: list[Any]) -> list[uuid.UUID]:
    with conn.transaction(force_rollback=True):
        world_mod.as_user(conn, user)
        rows = conn.execute(
            f"SELECT id FROM peer_mentors WHERE {where} ORDER BY id".encode(), params
        ).fetchall()
    return [r[0] for r in rows]


async def test_status_and_name_pages_walk_exactly_the_viewers_mentors(
    conn: Conn, db_url: str, world: world_mod.World
) -> None:
    """Paged two at a time, each status and a name search list exactly the mentors the policy
    shows the viewer, in id order; also when the status's walk gives up (more than its budget
    of another organisation's mentors first) and the chapters are walked instead."""
    m = world.mentors
    conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = ANY(%s)",
                 [[m["m_a1"], m["m_a12"], m["m_b1"]]])  # fmt: skip
    conn.execute("UPDATE peer_mentors SET status = 'inactive' WHERE id = %s", [m["m_a3"]])
    # 1,001 paused mentors of org B that sort before every world mentor.
    conn.execute(
        "INSERT INTO peer_mentors (id, organization_id, full_name, status)"
        " SELECT ('00000000-0000-0000-0000-' || lpad(to_hex(g), 12, '0'))::uuid, %s,"
        "        'Early ' || g, 'paused'"
        " FROM generate_series(1, 1001) g",
        [world.orgs["B"]],
    )
    pool = await open_pool(db_url, max_size=2)
    try:
        for name in world_mod.USERS:
            user = world.users[name]
            for status in ("active", "paused", "inactive"):
                walked = await _walk(pool, user, store.MentorFilter(status=status))
                assert walked == _policy(conn, user, "status = %s", [status]), (name, status)
            for term in ("ordman", "early 99"):
                named = await _walk(pool, user, store.MentorFilter(search=term))
                expected = _policy(conn, user, "full_name ILIKE %s", [f"%{term}%"])
                assert named == expected, (name, term)
            paused_named = await _walk(
                pool, user, store.MentorFilter(status="paused", search="ordman")
            )
            assert paused_named == _policy(
                conn, user, "status = 'paused' AND full_name ILIKE '%%ordman%%'", []
            ), name
    finally:
        await pool.close()
