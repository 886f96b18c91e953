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

from hlfsync.testing import make_chapter, make_mentor, make_org, make_user

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


def _plans(
    conn: Conn, statement: str, params: Any, *, analyze: bool = False
) -> tuple[list[str], Any]:
    """Run the statement; the plans of it and of everything it ran (auto_explain), and its first
    row. With `analyze`, the plans carry what each node really did (rows, loops)."""
    plans: list[str] = []
    conn.add_notice_handler(lambda d: plans.append(d.message_primary or ""))
    conn.execute("LOAD 'auto_explain'")
    conn.execute("SET auto_explain.log_min_duration = 0")
    conn.execute("SET auto_explain.log_nested_statements = on")
    conn.execute("SET auto_explain.log_level = notice")
    conn.execute(f"SET auto_explain.log_analyze = {'on' if analyze else 'off'}")
    cur = conn.execute(statement, params)
    row = cur.fetchone() if cur.description else None
    conn.execute("SET auto_explain.log_min_duration = -1")
    return plans, row


def _transition_scans(conn: Conn, statement: str, params: list[Any]) -> list[int]:
    """The estimated rows of every scan of the statement's transition tables (`changed_new`,
    `changed_old`) planned while it ran."""
    plans, _ = _plans(conn, statement, params)
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


CHAPTERS = 6
MEMBERS = 20_000  # enough that probing memberships by key beats reading them all
ALERTS = 3_000  # a chunk of the first expiry check raises thousands at once


def test_the_fan_out_looks_up_each_alerts_chapters_once(conn: Conn) -> None:
    """Alerts for thousands of mentors at once find their coordinators through each mentor's own
    memberships, read at most once per alert: never once per chapter of the organisation (the
    planner cannot count what the alerts' INSERT returns, and once joined the alerts to every
    chapter first: 18,000 probes here for 3,000 alerts)."""
    org = make_org(conn)
    chapters = [make_chapter(conn, org, f"chapter {n}") for n in range(CHAPTERS)]
    for n, chapter in enumerate(chapters):
        make_user(conn, org, coordinates=(chapter,), token=f"device-{n}")
    mentors = [
        row[0]
        for row in conn.execute(
            "WITH m AS (INSERT INTO peer_mentors (organization_id, full_name, status)"
            "           SELECT %s, 'Kari Nordmann', 'active' FROM generate_series(1, %s)"
            "           RETURNING id),"
            " joined AS (INSERT INTO chapter_memberships (mentor_id, chapter_id)"
            "            SELECT m.id, (%s::uuid[])[1 + (row_number() OVER () %% %s)] FROM m)"
            " SELECT id FROM m",
            [org, MEMBERS, chapters, CHAPTERS],
        ).fetchall()
    ][:ALERTS]
    conn.execute("ANALYZE peer_mentors, chapters, chapter_memberships, coordinator_chapters")
    plans, raised = _plans(
        conn,
        "SELECT count(*), sum(deliveries) FROM raise_mentor_alerts("
        " 'cert_paused', NULL, %(m)s::uuid[], %(k)s::text[],"
        " array_fill('{}'::jsonb, ARRAY[%(n)s]), array_fill('{}'::jsonb, ARRAY[%(n)s]))",
        {"m": mentors, "k": [f"{m}:test" for m in mentors], "n": ALERTS},
        analyze=True,
    )
    assert raised == (ALERTS, ALERTS)  # each mentor's one coordinator, one device each
    probes = [
        int(n)
        for plan in plans
        for n in re.findall(r"on chapter_memberships \w+ [^\n]*loops=(\d+)", plan)
    ]
    assert probes, "no plan read chapter_memberships"
    assert max(probes) <= ALERTS
