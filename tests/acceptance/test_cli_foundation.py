"""The foundation commands as users run them: db, seed, status, and their failures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.acceptance.conftest import Run


def _postmasters(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if len(cmd) > 2 and cmd[0].endswith("/postgres") and str(data_dir) in " ".join(cmd):
            found.append(proc)
    return found


def test_embedded_server_is_reused_by_the_next_command(
    hlfsync: Run, hlfsync_process: Run, data_dir: Path
) -> None:
    """A second command, in another process, finds the embedded server the first one started."""
    env = {"HLFSYNC_DATA_DIR": str(data_dir)}
    try:
        first = hlfsync("db", "url", env=env)
        assert first.returncode == 0, first.stderr
        servers = _postmasters(data_dir)
        assert len(servers) == 1
        second = hlfsync_process("db", "url", env=env)
        assert second.returncode == 0, second.stderr
        assert second.stdout == first.stdout
        assert [p.pid for p in _postmasters(data_dir)] == [servers[0].pid]
    finally:
        stopped = hlfsync("db", "stop", env=env)
    assert "stopped the embedded server" in stopped.stdout
    # pg_ctl returns once the pid file is gone; the process itself may take a moment to exit.
    _, alive = psutil.wait_procs(servers, timeout=10)
    assert alive == []


def test_two_commands_started_together_start_one_server(
    hlfsync: Run, tmp_path: Path, data_dir: Path
) -> None:
    """Two commands racing on a cold data directory end up on one server."""
    data = data_dir
    env = {"HLFSYNC_DATA_DIR": str(data)}
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith("HLFSYNC_")} | env
    cmd = [sys.executable, "-m", "hlfsync", "db", "upgrade"]
    try:
        procs = [
            subprocess.Popen(cmd, env=base, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]  # fmt: skip
        results = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], results
        assert len(_postmasters(data)) == 1
        applied = "".join(out for out, _ in results)
        # The migrations ran exactly once between the two.
        assert applied.count("applied 0001_") == 1
    finally:
        hlfsync("db", "stop", env=env)


def test_seed_then_status_on_a_configured_database(hlfsync: Run, db_url: str) -> None:
    """seed reports its counts, status reads them back and exits 0 when healthy."""
    env = {"HLFSYNC_DATABASE_URL": db_url}
    seeded = hlfsync("seed", "--mentors", "40", "--orgs", "2", "--json", env=env)
    assert seeded.returncode == 0, seeded.stderr
    assert '"mentors": 40' in seeded.stdout
    status = hlfsync("status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    assert '"healthy": true' in status.stdout


def test_status_exits_1_when_degraded(hlfsync: Run, db_url: str, conn: object) -> None:
    """An open circuit makes status exit 1 and say why."""
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("UPDATE circuit_breakers SET state = 'open', opened_at = now()")
    result = hlfsync("status", env={"HLFSYNC_DATABASE_URL": db_url})
    assert result.returncode == 1
    assert "circuit dynamics is open" in result.stdout


def test_unreachable_database_gives_one_line(hlfsync: Run) -> None:
    """An unreachable database stops the command with one line, no traceback, no password."""
    result = hlfsync(
        "status", env={"HLFSYNC_DATABASE_URL": "postgresql://u:hunter2@127.0.0.1:9/db"}
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        "hlfsync: cannot reach the database at postgresql://u:***@127.0.0.1:9/db"
    )
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("HLFSYNC_RETRY_MAX_RETRIES", "three", "HLFSYNC_RETRY_MAX_RETRIES"),
        ("HLFSYNC_RETRY_MAX_RETRIES", "-1", "HLFSYNC_RETRY_MAX_RETRIES"),
        ("HLFSYNC_RETRY_BASE_DELAY", "0", "HLFSYNC_RETRY_BASE_DELAY"),
        ("HLFSYNC_BREAKER_FAILURE_THRESHOLD", "0", "HLFSYNC_BREAKER_FAILURE_THRESHOLD"),
        ("HLFSYNC_DYNAMICS_CONTRACT", "soap-v1", "HLFSYNC_DYNAMICS_CONTRACT"),
        ("HLFSYNC_DYNAMICS_URL", "not a url", "HLFSYNC_DYNAMICS_URL"),
        ("HLFSYNC_DATABASE_URL", "mysql://x", "HLFSYNC_DATABASE_URL"),
        ("HLFSYNC_TIMEZONE", "Mars/Olympus", "HLFSYNC_TIMEZONE"),
        ("HLFSYNC_SYNC_ENABLED", "perhaps", "HLFSYNC_SYNC_ENABLED"),
        ("HLFSYNC_EXPIRY_SCHEDULE", "every night", "HLFSYNC_EXPIRY_SCHEDULE"),
    ],
)
def test_bad_settings_give_one_line_and_exit_2(
    hlfsync: Run, name: str, value: str, expected: str
) -> None:
    """A bad setting stops the command with exit 2 and one line naming it, no traceback."""
    result = hlfsync("status", env={name: value})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.match(rf"hlfsync: invalid setting {expected}: ", lines[0]), lines[0]


def test_a_bad_setting_in_dotenv_is_named_too(hlfsync: Run, tmp_path: Path) -> None:
    """Settings read from .env are validated the same way."""
    (tmp_path / ".env").write_text("HLFSYNC_WORKER_CONCURRENCY=0\n")
    result = hlfsync("status")
    assert result.returncode == 2
    assert "HLFSYNC_WORKER_CONCURRENCY" in result.stderr


def test_every_command_has_help(hlfsync: Run) -> None:
    """--help works for the top level and each command, exit 0."""
    for args in (["--help"], ["db", "--help"], ["db", "upgrade", "--help"], ["seed", "--help"],
                 ["status", "--help"], ["demo", "--help"]):  # fmt: skip
        result = hlfsync(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert "Usage" in result.stdout


def test_demo_runs_for_a_duration_on_embedded_defaults(hlfsync: Run, data_dir: Path) -> None:
    """demo on a fresh data directory seeds, starts the sandbox and worker, and stops cleanly."""
    env = {"HLFSYNC_DATA_DIR": str(data_dir)}
    try:
        result = hlfsync("demo", "--duration", "3", "--mentors", "30", env=env, timeout=180)
        assert result.returncode == 0, result.stderr
        assert "seeded 30 mentors" in result.stdout
        assert "sandbox:   https://127.0.0.1:" in result.stdout
        again = hlfsync("demo", "--duration", "1", env=env, timeout=180)
        assert again.returncode == 0, again.stderr
        assert "found 30 mentors from an earlier run" in again.stdout
    finally:
        hlfsync("db", "stop", env=env)


def test_a_retry_policy_that_waits_too_long_is_refused(hlfsync: Run) -> None:
    """20 doubling retries would wait for weeks: refused at start, in one line, exit 2."""
    result = hlfsync("status", env={"HLFSYNC_RETRY_MAX_RETRIES": "20"})
    assert result.returncode == 2
    assert result.stderr.startswith(
        "hlfsync: invalid settings: HLFSYNC_RETRY_*: retry 20 would wait"
    )
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_console_script_is_the_command(tmp_path: Path) -> None:
    """The `hlfsync` script installed next to Python runs the command line, errors and all."""
    import os

    script = Path(sys.executable).with_name("hlfsync")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HLFSYNC_")}
    env["HLFSYNC_RETRY_MAX_RETRIES"] = "three"
    result = subprocess.run([str(script), "status"], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("hlfsync: invalid setting HLFSYNC_RETRY_MAX_RETRIES: ")
    assert len(result.stderr.splitlines()) == 1
