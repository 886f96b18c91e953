"""Set-based statements are planned for the rows at hand, and nothing else pays for it.

A statement that pauses thousands of mentors fires the outbox and listing triggers once, over
transition tables of thousands of rows. A plan cached from a one-row change would join them as
if they held one row (quadratic at that size); so those statements plan per call, through
EXECUTE. No function may instead force custom plans with `plan_cache_mode`: that setting holds
for everything that runs inside the function, down to each foreign-key check of each inserted
row, which then plans afresh for every row (a sixth of the first expiry check's CPU).
"""

from __future__ import annotations

import re
from typing import Any

import psycopg

from hlfsync.testing import make_mentor, make_org

Conn = psycopg.Connection[Any]

ONE_ROW_CHANGES = 8  # more than the five custom plans after which a cached plan goes generic
BULK = 60


def test_no_function_changes_how_plans_are_cached(conn: Conn) -> None:
    rows = conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = 'public'"
        "   AND EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'plan_cache_mode=%')"
    ).fetchall()
    assert rows == []


def _transition_scans(conn: Conn, statement: str, params: list[Any]) -> list[int]:
    """The estimated rows of every scan of the statement's transition tables (`changed_new`,
    `changed_old`) planned while it ran."""
    plans: list[str] = []
    conn.add_notice_handler(lambda d: plans.append(d.message_primary or ""))
    conn.execute("LOAD 'auto_explain'")
    conn.execute("SET auto_explain.log_min_duration = 0")
    conn.execute("SET auto_explain.log_nested_statements = on")
    conn.execute("SET auto_explain.log_level = notice")
    conn.execute(statement, params)
    conn.execute("SET auto_explain.log_min_duration = -1")
    return [
        int(n)
        for plan in plans
        if "changed_new" in plan
        for n in re.findall(r"Named Tuplestore Scan[^\n]*?rows=(\d+)", plan)
    ]


def test_a_set_based_change_after_one_row_changes_is_planned_for_its_size(conn: Conn) -> None:
    """One-row changes first, in the same session, then one statement over many mentors: the
    trigger statements that read its transition tables expect that many rows, not one."""
    org = make_org(conn)
    mentors = [make_mentor(conn, org) for _ in range(ONE_ROW_CHANGES + BULK)]
    for mentor in mentors[:ONE_ROW_CHANGES]:
        conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [mentor])
    scans = _transition_scans(
        conn,
        "UPDATE peer_mentors SET status = 'paused' WHERE id = ANY(%s)",
        [mentors[ONE_ROW_CHANGES:]],
    )
    assert scans, "no plan read the transition tables"
    assert set(scans) == {BULK}
    paused = conn.execute(
        "SELECT count(*) FROM sync_queue WHERE operation = 'remove' AND mentor_id = ANY(%s)",
        [mentors[ONE_ROW_CHANGES:]],
    ).fetchone()
    assert paused == (BULK,)
