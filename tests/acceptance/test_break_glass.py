"""break-glass: new credentials on stdin while the configured ones are rejected."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import psycopg

from hlfsync.testing import CommandResult, make_mentor, make_org, run_cli
from hlfsync_sandbox.client import AdminClient
from hlfsync_sandbox.server import SandboxServer

Conn = psycopg.Connection[Any]


def _run(env: dict[str, str], cwd: Path, stdin: str, *args: str) -> CommandResult:
    return run_cli("break-glass", *args, env=env, cwd=cwd, input=stdin)


def test_break_glass_pushes_divergence_with_new_credentials(
    sandbox: SandboxServer, admin: AdminClient, db_url: str, conn: Conn, tmp_path: Path
) -> None:
    """The configured secret is rotated away; the new one on stdin syncs every divergent mentor."""
    old_env = sandbox.env()
    org = make_org(conn)
    drifted = [make_mentor(conn, org, status="paused") for _ in range(3)]
    in_step = make_mentor(conn, org)
    contacts = dict(conn.execute("SELECT id, dynamics_contact_id FROM peer_mentors").fetchall())
    admin.put_contacts([{"contactid": str(c), "listed": True} for c in contacts.values()])
    admin.rotate_secret("brand-new-secret")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HLFSYNC_")}
    env |= old_env | {"HLFSYNC_DATABASE_URL": db_url, "HLFSYNC_LOG_LEVEL": "warning"}

    rejected = _run(env, tmp_path, "not-the-secret\n")
    assert rejected.returncode == 1
    assert rejected.stderr.strip().startswith("hlfsync: the new credentials were rejected:")
    assert "not-the-secret" not in rejected.stderr + rejected.stdout

    result = _run(env, tmp_path, "brand-new-secret\n", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["done"] == 3
    assert summary["queued_by_reconcile"] == 3
    assert (summary["failed"], summary["skipped"]) == (0, 0)
    listed = {c["contactid"]: c["listed"] for c in admin.contacts()}
    assert listed == {str(contacts[m]): False for m in drifted} | {str(contacts[in_step]): True}
    actors = {r[0] for r in conn.execute(
        "SELECT actor FROM audit_log WHERE event_type = 'sync_succeeded'"
    ).fetchall()}  # fmt: skip
    assert actors == {"break-glass"}
    assert "brand-new-secret" not in result.stderr + result.stdout


def test_break_glass_refuses_an_empty_secret(
    sandbox: SandboxServer, db_url: str, tmp_path: Path
) -> None:
    """No secret on stdin: one line, exit 2, nothing done."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HLFSYNC_")}
    env |= sandbox.env() | {"HLFSYNC_DATABASE_URL": db_url}
    result = _run(env, tmp_path, "\n")
    assert result.returncode == 2
    assert (
        result.stderr.strip() == "hlfsync: no client secret given (prompt or first line of stdin)"
    )


def test_break_glass_finishes_beside_unlinked_mentors(
    sandbox: SandboxServer, admin: AdminClient, db_url: str, conn: Conn, tmp_path: Path
) -> None:
    """A mentor without a contact id is given back to the workers as unlinked once, and
    break-glass still finishes (it claims everything waiting, so it must not meet it again and
    again), counts it apart and exits 0; the linked mentors are synced."""
    org = make_org(conn)
    linked = make_mentor(conn, org, status="paused")
    unlinked = make_mentor(conn, org, contact=False)
    conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [unlinked])
    contact = conn.execute(
        "SELECT dynamics_contact_id FROM peer_mentors WHERE id = %s", [linked]
    ).fetchone()
    assert contact is not None
    admin.put_contacts([{"contactid": str(contact[0]), "listed": True}])
    env = {k: v for k, v in os.environ.items() if not k.startswith("HLFSYNC_")}
    env |= sandbox.env() | {"HLFSYNC_DATABASE_URL": db_url, "HLFSYNC_LOG_LEVEL": "warning"}
    result = _run(env, tmp_path, sandbox.client_secret + "\n", "--json")
    summary = json.loads(result.stdout)
    assert (summary["done"], summary["unlinked"], summary["skipped"], summary["failed"]) == (
        1, 1, 0, 0,
    ), summary  # fmt: skip
    # Unlinked is a known state the workers hold and status shows, not a failure of the run.
    assert result.returncode == 0, result.stderr
    held = conn.execute(
        "SELECT status, attempt_count, last_error LIKE 'unlinked:%%' FROM sync_queue"
        " WHERE mentor_id = %s",
        [unlinked],
    ).fetchall()
    assert held == [("pending", 0, True)]
    assert conn.execute("SELECT count(*) FROM dead_letter_queue").fetchone() == (0,)


def test_break_glass_addresses_a_mentor_by_the_alternate_key_as_workers_do(
    sandbox: SandboxServer, admin: AdminClient, db_url: str, conn: Conn, tmp_path: Path
) -> None:
    """With an alternate key configured, break-glass prepares a mentor without a contact id as
    the workers do: PATCHed by its key, the contactid Dynamics answers stored, counted done."""
    org = make_org(conn)
    mentor = make_mentor(conn, org, contact=False)
    conn.execute("UPDATE peer_mentors SET mentor_number = 'M-17' WHERE id = %s", [mentor])
    conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [mentor])
    contact = "7d2b4f0e-8c3a-4e51-9a6f-2b1c0d9e8f71"
    admin.put_contacts([{"contactid": contact, "listed": True, "hlf_mentornumber": "M-17"}])
    env = {k: v for k, v in os.environ.items() if not k.startswith("HLFSYNC_")}
    env |= sandbox.env() | {
        "HLFSYNC_DATABASE_URL": db_url, "HLFSYNC_LOG_LEVEL": "warning",
        "HLFSYNC_DYNAMICS_ALTERNATE_KEY": "hlf_mentornumber",
        "HLFSYNC_DYNAMICS_ALTERNATE_KEY_COLUMN": "mentor_number",
    }  # fmt: skip
    result = _run(env, tmp_path, sandbox.client_secret + "\n", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["done"], summary["unlinked"], summary["failed"]) == (1, 0, 0), summary
    stored = conn.execute("SELECT dynamics_contact_id::text FROM peer_mentors WHERE id = %s",
                          [mentor]).fetchone()  # fmt: skip
    assert stored == (contact,)
    assert admin.contacts()[0]["listed"] is False
