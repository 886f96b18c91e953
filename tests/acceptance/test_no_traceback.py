"""Every `hlfsync` command, walked through the failures a user can cause: one line, an exit code,
never a traceback.

The commands run in-process (`hlfsync.testing.run_cli`), which is what the console script does
after its imports; the few that need a real process (Ctrl-C) are in `test_signals.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hlfsync.testing import CommandResult, run_cli

UNREACHABLE_DB = "postgresql://hlfsync:secret-pw@127.0.0.1:1/hlfsync"
UNREACHABLE_DYNAMICS = {
    "HLFSYNC_DYNAMICS_URL": "https://127.0.0.1:1",
    "HLFSYNC_DYNAMICS_TENANT_ID": "00000000-0000-0000-0000-000000000001",
    "HLFSYNC_DYNAMICS_CLIENT_ID": "00000000-0000-0000-0000-000000000002",
    "HLFSYNC_DYNAMICS_CLIENT_SECRET": "client-secret-value",
    "HLFSYNC_DYNAMICS_AUTHORITY": "https://127.0.0.1:1/tenant",
}

# Each command with arguments that make it do its work (and so meet the failure).
COMMANDS: list[list[str]] = [
    ["db", "upgrade"],
    ["db", "url"],
    ["db", "psql", "-c", "SELECT 1"],
    ["seed", "--mentors", "3"],
    ["status"],
    ["worker", "--once"],
    ["force-sync", "--all"],
    ["dlq", "list"],
    ["dlq", "requeue", "--all"],
    ["dlq", "resolve", "1", "--note", "fixed by hand"],
    ["expiry-check", "--today", "2026-12-01"],
    ["reconcile", "--dry-run"],
    ["health"],
    ["api", "--port", "0"],
    ["run"],
    ["demo", "--duration", "0"],
]


def run(*args: str, env: dict[str, str], stdin: str = "") -> CommandResult:
    """`hlfsync ARGS` in this process (hlfsync.testing.run_cli), with the given settings."""
    return run_cli(*args, env=env, input=stdin)


def _assert_one_line(result: CommandResult, args: list[str]) -> None:
    assert result.returncode != 0, (args, result)
    assert "Traceback" not in result.stderr + result.stdout, (args, result.stderr)
    # The reason: an `hlfsync: ` line on stderr, or a command's own verdict on stdout (health).
    told = [line for line in result.stderr.splitlines() if line.startswith("hlfsync: ")]
    assert told or result.stdout.strip(), (args, result.stderr)
    assert "unexpected error" not in result.stderr, (args, result.stderr)


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_an_unreachable_database_is_one_line(args: list[str], tmp_path: Path) -> None:
    """With the database down, every command that needs it says so in one line, no password."""
    env = {"HLFSYNC_DATABASE_URL": UNREACHABLE_DB, "HLFSYNC_DATA_DIR": str(tmp_path),
           "HLFSYNC_JWT_SECRET": "x" * 40, **UNREACHABLE_DYNAMICS}  # fmt: skip
    result = run(*args, env=env)
    _assert_one_line(result, args)
    assert "database" in result.stderr
    assert "secret-pw" not in result.stderr + result.stdout


DYNAMICS_COMMANDS: list[list[str]] = [
    ["health"],
    ["reconcile", "--dry-run"],
    ["reconcile"],
    ["break-glass"],
]


@pytest.mark.parametrize("args", DYNAMICS_COMMANDS, ids=" ".join)
def test_dynamics_not_running_is_one_line(args: list[str], db_url: str) -> None:
    """With nothing listening at the Dynamics URL, commands that call it say so in one line."""
    env = {"HLFSYNC_DATABASE_URL": db_url, **UNREACHABLE_DYNAMICS}
    result = run(*args, env=env, stdin="client-secret-value\n")
    _assert_one_line(result, args)
    assert "client-secret-value" not in result.stderr + result.stdout


@pytest.mark.parametrize("args", DYNAMICS_COMMANDS, ids=" ".join)
def test_dynamics_not_configured_is_one_line(args: list[str], db_url: str) -> None:
    """Without a Dynamics URL, commands that need one name the setting in one line."""
    result = run(*args, env={"HLFSYNC_DATABASE_URL": db_url}, stdin="client-secret-value\n")
    _assert_one_line(result, args)
    assert "HLFSYNC_DYNAMICS_URL" in result.stderr


@pytest.mark.parametrize("args", [["token", "--user", "0b7c7ae5-3e0c-4a4f-9b55-2f7a4f4c8d11"],
                                  ["api", "--port", "0"]], ids=" ".join)  # fmt: skip
def test_a_missing_jwt_secret_is_one_line(args: list[str], db_url: str) -> None:
    """The API and `token` need HLFSYNC_JWT_SECRET: without it, one line naming it."""
    result = run(*args, env={"HLFSYNC_DATABASE_URL": db_url})
    _assert_one_line(result, args)
    assert "HLFSYNC_JWT_SECRET" in result.stderr


def test_worker_once_with_dynamics_down_keeps_the_operations(db_url: str) -> None:
    """`worker --once` against a Dynamics that is down exits 0 and loses nothing: the operation
    is still there to retry, and nothing was printed as a traceback."""
    import psycopg

    env = {"HLFSYNC_DATABASE_URL": db_url, **UNREACHABLE_DYNAMICS}
    assert run("seed", "--mentors", "5", env=env).returncode == 0
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE peer_mentors SET status = 'inactive' WHERE dynamics_contact_id IS NOT NULL"
        )
    result = run("worker", "--once", env=env)
    assert "Traceback" not in result.stderr
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE status IN ('pending', 'in_progress')),"
            " count(*) FILTER (WHERE status = 'dead_lettered') FROM sync_queue"
        ).fetchone()
    assert row is not None
    assert row[0] > 0
    assert row[1] == 0


def test_seed_twice_adds(db_url: str) -> None:
    """`seed` on a seeded database adds beside the data (the tour seeds after the demo did)."""
    env = {"HLFSYNC_DATABASE_URL": db_url}
    assert run("seed", "--mentors", "20", env=env).returncode == 0
    again = run("seed", "--mentors", "30", "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert '"mentors": 30' in again.stdout
