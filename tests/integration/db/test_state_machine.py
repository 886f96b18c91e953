"""The sync operation's state machine: the SQL is the truth; the drawing and core.states follow.

The moves are read from what actually runs: every named query in `db/sql/` and every function
in the migrated catalogue that writes `sync_queue` (so a later migration replacing a function
counts, and the version it replaced does not).
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from hlfsync.core import states
from hlfsync.db.queries import all_queries
from tests.integration.db import sql_transitions
from tests.integration.db.sql_transitions import START, Move

Conn = psycopg.Connection[tuple[object, ...]]

ROOT = Path(__file__).parents[3]
DOC = ROOT / "docs" / "state-machine.md"
_EDGE = re.compile(r"^\s*(\[\*\]|\w+)\s*-->\s*(\[\*\]|\w+)\s*(?::.*)?$")


def _constraint(conn: Conn, name: str) -> set[str]:
    row = conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = 'public.sync_queue'::regclass AND conname = %s",
        [name],
    ).fetchone()
    assert row is not None, f"sync_queue has no constraint {name}"
    return set(re.findall(r"'([a-z_]+)'", str(row[0])))


def _status_check(conn: Conn) -> set[str]:
    rows = conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = 'public.sync_queue'::regclass AND contype = 'c'"
    ).fetchall()
    lists = [str(r[0]) for r in rows if re.match(r"CHECK \(\(status = ANY", str(r[0]))]
    assert len(lists) == 1, f"expected one CHECK listing the states, found {lists}"
    return set(re.findall(r"'([a-z_]+)'", lists[0]))


def _sql_moves(conn: Conn) -> set[Move]:
    row = conn.execute(
        "SELECT column_default FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = 'sync_queue' AND column_name = 'status'"
    ).fetchone()
    assert row is not None
    default = re.findall(r"'([a-z_]+)'", str(row[0]))[0]
    found: set[Move] = set()
    for name, text in all_queries().items():
        found |= set(sql_transitions.moves(text, f"query {name}", default))
    functions = conn.execute(
        "SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = 'public' AND p.prokind = 'f' AND p.prosrc ~* 'sync_queue'"
    ).fetchall()
    for name, text in functions:
        found |= set(sql_transitions.moves(str(text), f"function {name}()", default))
    return found


def _drawn() -> set[tuple[str, str]]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Sync operation", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```mermaid\n(.*?)```", section, re.S)
    assert block, f"no mermaid block under '## Sync operation' in {DOC}"
    return {(m[1], m[2]) for line in block[1].splitlines() if (m := _EDGE.match(line))}


@pytest.fixture(scope="module")
def facts(template_url: str) -> tuple[set[str], set[str], set[Move]]:
    """The states, the terminal states and the moves, as the migrated database has them."""
    with psycopg.connect(template_url) as conn:
        return (
            _status_check(conn),
            _constraint(conn, "sync_queue_finished_iff_terminal"),
            _sql_moves(conn),
        )


def test_core_states_are_the_ones_the_check_allows(
    facts: tuple[set[str], set[str], set[Move]],
) -> None:
    """core.states.JobState names exactly the values the CHECK on sync_queue.status allows."""
    names, _, _ = facts
    assert {s.value for s in states.JobState} == names


def test_core_terminal_states_are_the_ones_given_a_finish(
    facts: tuple[set[str], set[str], set[Move]],
) -> None:
    """core.states.TERMINAL is the set sync_queue_finished_iff_terminal gives a finished_at."""
    _, terminal, _ = facts
    assert {s.value for s in states.TERMINAL} == terminal
    assert all(states.is_terminal(s) is (s.value in terminal) for s in states.JobState)


def test_the_sql_moves_only_between_allowed_states_and_never_out_of_a_final_one(
    facts: tuple[set[str], set[str], set[Move]],
) -> None:
    """Every move the SQL makes joins two allowed states, and none leaves a terminal state."""
    names, terminal, moves = facts
    assert moves, "found no state writes at all: the reader is broken"
    assert {m.target for m in moves} <= names
    assert {m.source for m in moves} <= names | {START}
    leaving = [m for m in moves if m.source in terminal]
    assert not leaving, f"moves out of a terminal state: {leaving}"


def test_every_live_state_can_reach_a_final_one(
    facts: tuple[set[str], set[str], set[Move]],
) -> None:
    """No operation can be stuck: from each state the SQL's moves lead to a terminal state."""
    names, terminal, moves = facts
    reachable = set(terminal)
    while grown := {m.source for m in moves if m.target in reachable} - reachable - {START}:
        reachable |= grown
    assert reachable == names


def test_the_drawing_is_exactly_what_the_sql_can_do(
    facts: tuple[set[str], set[str], set[Move]],
) -> None:
    """docs/state-machine.md draws every move the SQL can make, and nothing the SQL cannot."""
    _, terminal, moves = facts
    possible = {(m.source, m.target) for m in moves} | {(t, START) for t in terminal}
    drawn = _drawn()

    def made_by(a: str, b: str) -> str:
        return ", ".join(sorted({m.origin for m in moves if (m.source, m.target) == (a, b)}))

    missing = sorted(f"{a} --> {b} ({made_by(a, b) or 'a terminal state'})"
                     for a, b in possible - drawn)  # fmt: skip
    impossible = sorted(f"{a} --> {b}" for a, b in drawn - possible)
    assert not missing, f"{DOC.name} does not draw: {missing}"
    assert not impossible, f"{DOC.name} draws moves no SQL makes: {impossible}"


def test_no_python_module_writes_the_queue_state_inline() -> None:
    """Every write of sync_queue lives in db/sql or a migration, where the reader above sees it."""
    writes = re.compile(r"(UPDATE|INSERT\s+INTO)\s+(public\.)?sync_queue\b", re.I)
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "src" / "hlfsync").rglob("*.py")
        if writes.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("UPDATE sync_queue SET status = 'b' WHERE status = 'a'", {("a", "b")}),
        ("UPDATE sync_queue q SET status = CASE WHEN x THEN 'b' ELSE 'c' END, n = 1"
         " WHERE q.id = 1 AND q.status = 'a'", {("a", "b"), ("a", "c")}),
        ("WITH p AS (SELECT id FROM sync_queue WHERE status = 'a' AND NOT EXISTS"
         " (SELECT 1 FROM sync_queue r WHERE r.status = 'z'))"
         " UPDATE sync_queue q SET status = 'b' FROM p WHERE q.id = p.id", {("a", "b")}),
        ("UPDATE sync_queue SET attempt_count = 1 WHERE status = 'a'", set()),
        ("INSERT INTO sync_queue (mentor_id) VALUES (1)", {(START, "d")}),
    ],
)  # fmt: skip
def test_the_reader_finds_the_moves_in_each_shape(
    text: str, expected: set[tuple[str, str]]
) -> None:
    """The reader reads plain, CASE and CTE-guarded updates and defaulted inserts."""
    assert {(m.source, m.target) for m in sql_transitions.moves(text, "t", "d")} == expected


@pytest.mark.parametrize(
    "text",
    [
        "UPDATE sync_queue SET status = 'b' WHERE id = 1",
        "UPDATE sync_queue SET status = %(s)s WHERE status = 'a'",
        "INSERT INTO sync_queue (mentor_id, status) VALUES (1, 'b')",
    ],
)
def test_the_reader_refuses_a_write_it_cannot_read(text: str) -> None:
    """An unguarded or non-literal state write fails the test instead of passing unseen."""
    with pytest.raises(sql_transitions.UnreadableError):
        list(sql_transitions.moves(text, "t", "d"))
