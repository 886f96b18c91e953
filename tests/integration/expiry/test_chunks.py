"""The expiry check in chunks: many small transactions, two at once, write exactly what one
transaction over everyone wrote, once, and a run cut short is finished by the next."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from hlfsync.db import expiry
from hlfsync.db.pool import Pool
from tests.integration.expiry.world import TODAY, check, mentor, snapshot, world

Conn = psycopg.Connection[Any]


def _written(conn: Conn) -> dict[str, list[Any]]:
    # Chunks insert in another order than one statement: compare as sets.
    return {name: sorted(rows, key=repr) for name, rows in snapshot(conn).items()}


def _mentors(conn: Conn) -> None:
    w = world(conn)
    for days_left in (-30, -3, -1, 0, 1, 6, 13, 20, 29, 45, -7, 3):
        mentor(conn, w, days_left)


async def test_chunks_on_two_lanes_write_what_one_transaction_wrote(
    conn: Conn, pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of two mentors on two connections: the same rows as the whole-range functions,
    and nothing more on a second run."""
    _mentors(conn)
    with conn.transaction():
        conn.execute("SELECT * FROM expiry_send_reminders(%s, 'test', NULL)", [TODAY])
        conn.execute("SELECT * FROM expiry_pause_expired(%s, 'test', NULL)", [TODAY])
        whole = _written(conn)
        raise psycopg.Rollback
    monkeypatch.setattr(expiry, "CHUNK_MENTORS", 2)
    first = await expiry.run_expiry_check(pool, TODAY, "test", lanes=2)
    assert _written(conn) == whole
    assert first["paused"] == 4
    second = await expiry.run_expiry_check(pool, TODAY, "test", lanes=2)
    assert (second["paused"], second["reminders_total"]) == (0, 0)
    assert _written(conn) == whole


def test_a_run_cut_short_is_finished_by_the_next(
    conn: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that stopped after some chunks left them committed; the next run does the rest and
    the result is that of one uninterrupted run."""
    _mentors(conn)
    monkeypatch.setattr(expiry, "CHUNK_MENTORS", 3)
    # Chunks follow the mentor ids, which are random: cut the run at the chunk that holds the
    # last expired mentor, so some of the work is always left for the next run.
    order = [r[0] for r in conn.execute("SELECT id FROM peer_mentors ORDER BY id").fetchall()]
    expired = {
        r[0]
        for r in conn.execute(
            "SELECT mentor_id FROM certifications WHERE expires_on < %s", [TODAY]
        ).fetchall()
    }
    assert len(expired) == 4
    cut = max(order.index(m) for m in expired) // 3 + 1  # the chunk's 1-based number
    before_cut = sum(1 for m in order[: (cut - 1) * 3] if m in expired)
    calls = 0
    real = expiry.q

    def failing(name: str) -> Any:
        nonlocal calls
        if name == "expiry_pause_expired":
            calls += 1
            if calls == cut:
                raise RuntimeError("the worker died here")
        return real(name)

    monkeypatch.setattr(expiry, "q", failing)
    with pytest.raises(RuntimeError):
        check(conn)
    partly = conn.execute("SELECT count(*) FROM peer_mentors WHERE status = 'paused'").fetchone()
    assert partly == (before_cut,)
    assert before_cut < 4
    monkeypatch.setattr(expiry, "q", real)
    check(conn)
    paused = conn.execute("SELECT count(*) FROM peer_mentors WHERE status = 'paused'").fetchone()
    assert paused == (4,)
    duplicates = conn.execute("SELECT count(*) FROM expiry_duplicates()").fetchone()
    assert duplicates == (0,)
