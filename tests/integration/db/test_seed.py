"""`seed`: the shapes the rest of the system is tested against (multi-chapter mentors and more)."""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg

from hlfsync.db import seed

Conn = psycopg.Connection[Any]
TODAY = date(2026, 11, 23)


def test_seed_counts_match_the_tables(conn: Conn) -> None:
    """Every count seed reports is what the tables hold."""
    result = seed.seed(conn, mentors=500, orgs=3, chapters=9, today=TODAY)
    tables = {
        "organizations": "organizations",
        "chapters": "chapters",
        "mentors": "peer_mentors",
        "memberships": "chapter_memberships",
        "certifications": "certifications",
        "device_tokens": "device_tokens",
        "admins": "organization_admins",
    }
    for key, table in tables.items():
        row = conn.execute(f"SELECT count(*) FROM {table}".encode()).fetchone()
        assert row == (getattr(result, key),), key
    assert result.mentors == 500


def test_seed_has_multi_chapter_mentors_and_coordinators(conn: Conn) -> None:
    """Some mentors sit in several chapters and some coordinators coordinate several."""
    seed.seed(conn, mentors=300, orgs=2, chapters=8, today=TODAY)
    multi_mentors = conn.execute(
        "SELECT count(*) FROM (SELECT mentor_id FROM chapter_memberships"
        " GROUP BY 1 HAVING count(*) > 1) m"
    ).fetchone()
    multi_coordinators = conn.execute(
        "SELECT count(*) FROM (SELECT user_id FROM coordinator_chapters"
        " GROUP BY 1 HAVING count(*) > 1) c"
    ).fetchone()
    assert multi_mentors is not None
    assert multi_mentors[0] > 0
    assert multi_coordinators is not None
    assert multi_coordinators[0] > 0
    # A mentor's chapters always belong to the mentor's own organisation.
    crossed = conn.execute(
        "SELECT count(*) FROM chapter_memberships cm JOIN peer_mentors m ON m.id = cm.mentor_id"
        " JOIN chapters c ON c.id = cm.chapter_id WHERE c.organization_id <> m.organization_id"
    ).fetchone()
    assert crossed == (0,)


def test_seed_spreads_expiry_and_gives_every_coordinator_a_device(conn: Conn) -> None:
    """Certificates span the past and next 90 days; every coordinator and admin has a token."""
    seed.seed(conn, mentors=400, orgs=2, today=TODAY)
    low, high = conn.execute(
        "SELECT min(expires_on), max(expires_on) FROM certifications"
    ).fetchone() or (None, None)
    assert low is not None
    assert high is not None
    assert (TODAY - low).days <= 90
    assert (high - TODAY).days <= 90
    assert low < TODAY < high
    without = conn.execute(
        "SELECT count(*) FROM app_users u WHERE NOT EXISTS"
        " (SELECT 1 FROM device_tokens t WHERE t.user_id = u.id)"
    ).fetchone()
    assert without == (0,)
    long_histories = conn.execute(
        "SELECT count(*) FROM certifications WHERE jsonb_array_length(renewal_history) > 500"
    ).fetchone()
    assert long_histories == (3,)


def test_seed_writes_no_queue_rows(conn: Conn) -> None:
    """Seeding loads state; it does not fire the outbox (no status was changed)."""
    seed.seed(conn, mentors=50, today=TODAY)
    assert conn.execute("SELECT count(*) FROM sync_queue").fetchone() == (0,)


def test_seed_on_seeded_data_adds_beside_it(conn: Conn) -> None:
    """A second seed (as after the demo's) adds organisations and mentors; nothing collides."""
    first = seed.seed(conn, mentors=50, orgs=2, today=TODAY, seed=1)
    second = seed.seed(conn, mentors=70, orgs=3, today=TODAY, seed=1)
    counts = conn.execute(
        "SELECT (SELECT count(*) FROM organizations), (SELECT count(*) FROM peer_mentors)"
    ).fetchone()
    assert counts == (5, 120)
    assert not {c for c, _ in first.contacts} & {c for c, _ in second.contacts}
    names = [r[0] for r in conn.execute("SELECT name FROM organizations ORDER BY name")]
    assert len(set(names)) == 5
