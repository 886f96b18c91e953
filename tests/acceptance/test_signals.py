"""Ctrl-C (SIGINT) on the long-running commands: they stop cleanly, never with a traceback."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import scratch

READY_WITHIN_S = 90


def _start(args: list[str], env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[bytes], Path]:
    log = cwd / f"{args[0]}.out"
    base = {k: v for k, v in os.environ.items() if not k.startswith("HLFSYNC_")}
    with log.open("wb") as sink:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "hlfsync", *args],
            env={**base, **env},
            cwd=cwd,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return process, log


def _wait_for(log: Path, marker: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_WITHIN_S
    while marker not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"never said {marker!r}:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("args", "marker"),
    [
        (["worker"], "worker_started"),
        (["api", "--port", "0"], "api"),
        (["sandbox", "--port", "0"], "https://"),
    ],
    ids=["worker", "api", "sandbox"],
)
def test_ctrl_c_stops_a_service_cleanly(
    args: list[str], marker: str, db_url: str, tmp_path: Path
) -> None:
    """SIGINT to worker, api or sandbox: exit 0 (or 130), no traceback."""
    env = {
        "HLFSYNC_DATABASE_URL": db_url,
        "HLFSYNC_DATA_DIR": str(tmp_path / "data"),
        "HLFSYNC_JWT_SECRET": "x" * 40,
        "HLFSYNC_LOG_FORMAT": "json",
        # Nothing listens there: the worker runs (and holds its operations) all the same.
        "HLFSYNC_DYNAMICS_URL": "https://127.0.0.1:1",
        "HLFSYNC_DYNAMICS_TENANT_ID": "00000000-0000-0000-0000-000000000001",
        "HLFSYNC_DYNAMICS_CLIENT_ID": "00000000-0000-0000-0000-000000000002",
        "HLFSYNC_DYNAMICS_CLIENT_SECRET": "client-secret-value",
    }
    process, log = _start(args, env, tmp_path)
    _wait_for(log, marker, process)
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=60)
    output = log.read_text(errors="replace")
    assert code in (0, 130), output
    assert "Traceback" not in output


def test_ctrl_c_stops_the_demo_and_its_sandbox_link(tmp_path: Path) -> None:
    """SIGINT to the demo: it stops without a traceback and removes the file by which other
    commands find its sandbox, so they no longer point at a sandbox that is gone."""
    data = scratch.cluster_dir("hlfsync-demo-")
    env = {"HLFSYNC_DATA_DIR": str(data), "HLFSYNC_API_PORT": "0"}
    process, log = _start(["demo", "--mentors", "5"], env, tmp_path)
    try:
        _wait_for(log, "dashboard:", process)
        assert (data / "sandbox" / "demo.pid").exists()
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    finally:
        subprocess.run(
            [sys.executable, "-m", "hlfsync", "db", "stop"],
            env={**os.environ, "HLFSYNC_DATA_DIR": str(data)},
            capture_output=True,
            check=False,
        )
        shutil.rmtree(data, ignore_errors=True)
    output = log.read_text(errors="replace")
    assert code in (0, 130), output
    assert "Traceback" not in output
    assert not (data / "sandbox" / "demo.pid").exists()


def test_a_sandbox_without_a_database_sets_none_up(tmp_path: Path) -> None:
    """`hlfsync sandbox` mirrors the mentors of an existing database; with none configured and
    none under the data directory it starts empty, and does not initialise (and leave running)
    an embedded PostgreSQL just to find it empty."""
    data = tmp_path / "data"
    process, log = _start(["sandbox", "--port", "0"], {"HLFSYNC_DATA_DIR": str(data)}, tmp_path)
    _wait_for(log, "contacts:", process)
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=60)
    output = log.read_text(errors="replace")
    assert code in (0, 130), output
    assert "contacts:  none (no database in" in output
    assert not (data / "pgdata").exists()
