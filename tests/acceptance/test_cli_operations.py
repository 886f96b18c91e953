"""force-sync and dlq as operators run them."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from hlfsync.testing import make_mentor, make_org
from tests.acceptance.conftest import Run

Conn = psycopg.Connection[Any]


def _dead_letter(conn: Conn) -> tuple[Any, int]:
    mentor = make_mentor(conn, make_org(conn))
    conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [mentor])
    conn.execute(
        "UPDATE sync_queue SET status = 'dead_lettered', finished_at = now(), attempt_count = 4"
    )
    row = conn.execute(
        "INSERT INTO dead_letter_queue (sync_queue_id, mentor_id, operation_type, payload_json,"
        " failure_reason, attempt_count) SELECT id, mentor_id, operation, payload_json,"
        " 'retries_exhausted: HTTP 503: down', 4 FROM sync_queue RETURNING id"
    ).fetchone()
    assert row is not None
    return mentor, row[0]


def test_dlq_list_requeue_and_resolve(hlfsync: Run, db_url: str, conn: Conn) -> None:
    """A dead letter is listed, re-queued as a priority operation, and then no longer open."""
    env = {"HLFSYNC_DATABASE_URL": db_url}
    mentor, letter = _dead_letter(conn)
    listed = hlfsync("dlq", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [row["id"] for row in json.loads(listed.stdout)] == [letter]
    requeued = hlfsync("dlq", "requeue", str(letter), env=env)
    assert requeued.returncode == 0, requeued.stderr
    row = conn.execute(
        "SELECT l.status, q.status, q.source, q.priority, q.operation FROM dead_letter_queue l"
        " JOIN sync_queue q ON q.id = l.requeued_as WHERE l.id = %s",
        [letter],
    ).fetchone()
    assert row == ("requeued", "pending", "requeue", 10, "remove")
    again = hlfsync("dlq", "requeue", str(letter), env=env)
    assert again.returncode == 1
    assert "not open or not found" in again.stderr
    no_note = hlfsync("dlq", "resolve", str(letter), "--note", " ", env=env)
    assert no_note.returncode == 2
    resolved = hlfsync("dlq", "resolve", str(letter), "--note", "checked by hand", env=env)
    assert resolved.returncode == 1  # already re-queued, so not open
    assert conn.execute("SELECT count(*) FROM dead_letter_queue").fetchone() == (1,)
    assert mentor is not None


def test_force_sync_queues_ahead_and_rejects_bad_ids(hlfsync: Run, db_url: str, conn: Conn) -> None:
    """force-sync queues priority operations to the current state; a bad id is one line, exit 2."""
    env = {"HLFSYNC_DATABASE_URL": db_url}
    org = make_org(conn)
    active = make_mentor(conn, org)
    paused = make_mentor(conn, org, status="paused")
    result = hlfsync("force-sync", str(active), str(paused), "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = conn.execute(
        "SELECT mentor_id, operation, source, priority FROM sync_queue ORDER BY mentor_id"
    ).fetchall()
    assert sorted(rows) == sorted(
        [(active, "restore", "force", 10), (paused, "remove", "force", 10)]
    )
    bad = hlfsync("force-sync", "not-a-uuid", env=env)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "hlfsync: not a mentor id (UUID): 'not-a-uuid'"
    neither = hlfsync("force-sync", env=env)
    assert neither.returncode == 2


def test_expiry_check_is_idempotent_from_the_cli(hlfsync: Run, db_url: str, conn: Conn) -> None:
    """expiry-check --today twice: the first pauses and reminds, the second does nothing new."""
    from datetime import date

    org = make_org(conn)
    expired = make_mentor(conn, org, expires_on=date(2026, 11, 20))
    reminded = make_mentor(conn, org, expires_on=date(2026, 11, 30))
    env = {"HLFSYNC_DATABASE_URL": db_url}
    first = hlfsync("expiry-check", "--today", "2026-11-23", "--json", env=env)
    assert first.returncode == 0, first.stderr
    stats = json.loads(first.stdout)
    assert (stats["paused"], stats["reminders_total"]) == (1, 1)
    second = hlfsync("expiry-check", "--today", "2026-11-23", "--json", env=env)
    again = json.loads(second.stdout)
    assert (again["paused"], again["reminders_total"]) == (0, 0)
    assert conn.execute("SELECT status FROM peer_mentors WHERE id = %s", [expired]).fetchone() == (
        "paused",
    )  # fmt: skip
    assert conn.execute(
        "SELECT threshold_day FROM cert_expiry_reminders WHERE mentor_id = %s", [reminded]
    ).fetchall() == [(7,)]
    # Each run by hand is recorded beside the scheduler's, by the same module.
    runs = conn.execute(
        "SELECT status, worker LIKE 'cli@%', (stats ->> 'paused')::int FROM scheduled_runs"
        " WHERE job = 'expiry_check' ORDER BY started_at"
    ).fetchall()
    assert runs == [("succeeded", True, 1), ("succeeded", True, 0)]
    bad = hlfsync("expiry-check", "--today", "23.11.2026", env=env)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "hlfsync: --today must be YYYY-MM-DD, not '23.11.2026'"


def test_token_needs_a_secret_and_then_mints_a_verifiable_jwt(hlfsync: Run) -> None:
    """token: one line and exit 2 without HLFSYNC_JWT_SECRET; with it, an HS256 JWT for the user."""
    import jwt

    user = "6f1c1d8e-0a1b-4c2d-8e3f-123456789abc"
    missing = hlfsync("token", "--user", user)
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith("hlfsync: missing setting HLFSYNC_JWT_SECRET")
    secret = "s" * 48
    minted = hlfsync("token", "--user", user, "--ttl", "60", env={"HLFSYNC_JWT_SECRET": secret})
    assert minted.returncode == 0, minted.stderr
    claims = jwt.decode(minted.stdout.strip(), secret, algorithms=["HS256"],
                        audience="authenticated")  # fmt: skip
    assert claims["sub"] == user
    assert claims["exp"] - claims["iat"] == 60


def test_api_serves_health_and_stops_on_sigterm(db_url: str, tmp_path: Any) -> None:
    """api: listens, answers /healthz and /readyz, and exits 0 on SIGTERM."""
    import os
    import signal
    import subprocess
    import sys

    import httpx

    env = {k: v for k, v in os.environ.items() if not k.startswith("HLFSYNC_")}
    env |= {"HLFSYNC_DATABASE_URL": db_url, "HLFSYNC_JWT_SECRET": "s" * 48,
            "HLFSYNC_LOG_LEVEL": "warning"}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "hlfsync", "api", "--port", "0"], env=env,
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("hlfsync api listening on http://127.0.0.1:"), line
        base = line.rsplit(" ", 1)[-1].strip()
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200
        assert httpx.get(f"{base}/api/v1/mentors", timeout=10).status_code == 401
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
