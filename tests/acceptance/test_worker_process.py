"""The worker as a process: killed mid-call it loses nothing; SIGTERM lets the call finish."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hlfsync.testing import make_mentor, make_org
from hlfsync_sandbox.client import AdminClient
from hlfsync_sandbox.server import SandboxServer

Conn = psycopg.Connection[Any]


def _env(sandbox: SandboxServer, db_url: str, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HLFSYNC_")}
    return (
        base
        | sandbox.env()
        | {"HLFSYNC_DATABASE_URL": db_url, "HLFSYNC_LOG_LEVEL": "warning"}
        | extra
    )


def _worker(env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hlfsync", "worker", *args],
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@contextlib.contextmanager
def _reaped(worker: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """The worker, killed and reaped if the test leaves it running (a failed wait), so it never
    outlives the test."""
    try:
        yield worker
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate(timeout=10)


def _stopped(worker: subprocess.Popen[str]) -> str:
    """SIGTERM, then its exit: returns what it wrote to stderr."""
    worker.send_signal(signal.SIGTERM)
    return worker.communicate(timeout=30)[1]


def _wait_for(predicate: Any, timeout_s: float = 20.0) -> None:
    """Poll a condition the worker process brings about; fail if it never does."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.02)


def _one_paused_mentor(conn: Conn, admin: AdminClient) -> tuple[Any, Any]:
    mentor = make_mentor(conn, make_org(conn))
    row = conn.execute("SELECT dynamics_contact_id FROM peer_mentors WHERE id = %s", [mentor])
    contact = row.fetchone()
    assert contact is not None
    admin.put_contacts([{"contactid": str(contact[0]), "listed": True}])
    conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [mentor])
    return mentor, contact[0]


def _in_progress(conn: Conn) -> bool:
    row = conn.execute("SELECT count(*) FROM sync_queue WHERE status = 'in_progress'").fetchone()
    return row == (1,)


def test_a_worker_killed_mid_call_loses_nothing(
    sandbox: SandboxServer, admin: AdminClient, db_url: str, conn: Conn, tmp_path: Path
) -> None:
    """SIGKILL during a hanging PATCH: after the lease another worker completes it, one success."""
    mentor, contact = _one_paused_mentor(conn, admin)
    admin.set_faults([{"method": "PATCH", "status": "timeout", "hang_s": 20, "times": 1}])
    # A lease longer than the check below can take on a busy machine: with 0.5 s the victim's
    # own rescue pass could take the operation back before it is killed.
    env = _env(sandbox, db_url, HLFSYNC_WORKER_LEASE="60")
    with _reaped(_worker(env, tmp_path)) as victim:
        # The hang rule is spent once the PATCH reached the sandbox, where it now hangs.
        _wait_for(lambda: admin.faults()["rules"][0]["remaining"] == 0)
        assert _in_progress(conn)
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=10)  # reaps it and closes its pipes
    assert victim.returncode == -signal.SIGKILL
    # The lease runs out: moved to now instead of waited for (the rescuer reads the clock).
    conn.execute(
        "UPDATE sync_queue SET locked_until = now() - interval '1 second'"
        " WHERE status = 'in_progress'"
    )
    rescuer = _worker(env, tmp_path, "--once")
    _, err = rescuer.communicate(timeout=60)
    assert rescuer.returncode == 0, err
    row = conn.execute("SELECT status, attempt_count FROM sync_queue").fetchone()
    assert row == ("succeeded", 2), conn.execute("SELECT last_error FROM sync_queue").fetchone()
    events = [r[0] for r in conn.execute(
        "SELECT event_type FROM audit_log WHERE mentor_id = %s ORDER BY id", [mentor]
    ).fetchall()]  # fmt: skip
    assert events.count("sync_succeeded") == 1
    assert "lease_expired" in events
    assert {c["contactid"]: c["listed"] for c in admin.contacts()} == {str(contact): False}


def test_sigterm_finishes_the_call_in_flight_then_exits_cleanly(
    sandbox: SandboxServer, admin: AdminClient, db_url: str, conn: Conn, tmp_path: Path
) -> None:
    """SIGTERM while a PATCH is slow: the worker records its outcome, then exits 0."""
    _one_paused_mentor(conn, admin)
    admin.set_faults(latency_ms=1500)
    with _reaped(_worker(_env(sandbox, db_url), tmp_path)) as worker:
        _wait_for(lambda: _in_progress(conn))
        err = _stopped(worker)
    assert worker.returncode == 0, err
    assert conn.execute("SELECT status FROM sync_queue").fetchone() == ("succeeded",)


def test_a_worker_never_loads_the_api(
    sandbox: SandboxServer, admin: AdminClient, db_url: str, conn: Conn, tmp_path: Path
) -> None:
    """`hlfsync worker` syncs without importing FastAPI and the dashboard (25 MiB of RSS a
    worker does not need); only `hlfsync run` and `hlfsync api` serve it. Python's own import
    log (`PYTHONPROFILEIMPORTTIME`) names every module the process loaded."""
    _one_paused_mentor(conn, admin)
    env = _env(sandbox, db_url, PYTHONPROFILEIMPORTTIME="1")
    with _reaped(_worker(env, tmp_path)) as worker:
        _wait_for(
            lambda: conn.execute("SELECT status FROM sync_queue").fetchone() == ("succeeded",)
        )
        err = _stopped(worker)
    assert worker.returncode == 0, err
    loaded = {
        line.rsplit("|", 1)[-1].strip() for line in err.splitlines() if "import time:" in line
    }
    assert "hlfsync.worker.runner" in loaded  # the log is there and names what ran
    assert not {m for m in loaded if m.split(".")[0] in {"fastapi", "starlette", "jinja2"}}
    assert not {m for m in loaded if m.startswith("hlfsync.api")}


def test_a_worker_sends_live_work_on_its_main_loop_and_bulk_work_on_its_background_loop(
    sandbox: SandboxServer, admin: AdminClient, db_url: str, conn: Conn, tmp_path: Path
) -> None:
    """The main loop claims a person's changes only; the night's bulk work (priority below
    them) goes out from the background loop, over its own connections: with no background
    loop running the bulk `remove` would wait for ever."""
    _, live_contact = _one_paused_mentor(conn, admin)
    bulk_mentor = make_mentor(conn, make_org(conn))
    row = conn.execute("SELECT dynamics_contact_id FROM peer_mentors WHERE id = %s", [bulk_mentor])
    (bulk_contact,) = row.fetchone() or (None,)
    admin.put_contacts([{"contactid": str(bulk_contact), "listed": True}])
    conn.execute(
        "SELECT set_config('hlfsync.priority', '-10', false),"
        " set_config('hlfsync.actor', 'test', false)"
    )
    conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [bulk_mentor])
    conn.execute("RESET hlfsync.priority")
    conn.execute("RESET hlfsync.actor")
    priorities = dict(conn.execute("SELECT mentor_id, priority FROM sync_queue").fetchall())
    assert priorities[bulk_mentor] == -10
    succeeded = "SELECT count(*) FROM sync_queue WHERE status = 'succeeded'"
    with _reaped(_worker(_env(sandbox, db_url), tmp_path)) as worker:
        _wait_for(lambda: conn.execute(succeeded).fetchone() == (2,))
        names = {r[0] for r in conn.execute(
            "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()"
        ).fetchall()}  # fmt: skip
        err = _stopped(worker)
    assert worker.returncode == 0, err
    assert {c["contactid"]: c["listed"] for c in admin.contacts()} == {
        str(live_contact): False,
        str(bulk_contact): False,
    }
    assert "hlfsync-background" in names


def test_a_worker_fetches_its_token_at_start_not_on_a_persons_first_change(
    sandbox: SandboxServer, admin: AdminClient, db_url: str, conn: Conn, tmp_path: Path
) -> None:
    """With nothing to sync and no job touching Dynamics due, a started worker still asks the
    authority for its token once: a person's first change after a start or a deploy then does
    not wait for msal and the token request (bench.latency's two-workers row)."""
    conn.execute(
        "INSERT INTO scheduled_runs (job, slot, status, finished_at)"
        " SELECT job, '2999-01-01', 'succeeded', now()"
        "   FROM unnest(ARRAY['health_check', 'reconcile']) AS job"
    )
    admin.clear_requests()
    with _reaped(_worker(_env(sandbox, db_url), tmp_path)) as worker:
        _wait_for(lambda: bool(admin.requests(kind="token")))
        err = _stopped(worker)
    assert worker.returncode == 0, err
    assert len(admin.requests(kind="token")) == 1
    assert not admin.requests(kind="dataverse")
    assert conn.execute("SELECT count(*) FROM sync_queue").fetchone() == (0,)
