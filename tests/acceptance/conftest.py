"""Acceptance tests run the real `hlfsync` command line: in this process by default (`hlfsync`),
in a fresh interpreter where the process itself matters (`hlfsync_process`: signals, a worker
to kill, servers found by the next process, the `python -m hlfsync` entry point)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest

from hlfsync.testing import run_cli
from tests import scratch


class Result(Protocol):
    """What both runners return (`subprocess.CompletedProcess` and `testing.CommandResult`)."""

    returncode: int
    stdout: str
    stderr: str


Run = Callable[..., Result]


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """An HLFSYNC_DATA_DIR for an embedded server, outside pytest's temporary root (see
    tests/scratch.py).

    Run as root, the wheel starts PostgreSQL as its own user, which must reach the directory;
    every pytest session that starts meanwhile makes its root private (0700) again.
    """
    base = scratch.cluster_dir("hlfsync-test-data-")
    base.chmod(0o755)
    yield base / "data"
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def hlfsync(tmp_path: Path) -> Run:
    """Run `hlfsync ARGS` in this process with a clean HLFSYNC_* environment plus `env`."""

    def run(
        *args: str, env: dict[str, str] | None = None, input: str = "", timeout: float = 120
    ) -> Result:
        del timeout  # pytest-timeout bounds the whole test
        return run_cli(*args, env=env, cwd=tmp_path, input=input)

    return run


@pytest.fixture
def hlfsync_process(tmp_path: Path) -> Run:
    """Run `python -m hlfsync ARGS` in a subprocess, with a clean HLFSYNC_* environment plus `env`
    (about 1 s of imports each: only where the process itself is under test)."""

    def run(
        *args: str, env: dict[str, str] | None = None, input: str = "", timeout: float = 120
    ) -> Result:
        base = {k: v for k, v in os.environ.items() if not k.startswith("HLFSYNC_")}
        base.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "hlfsync", *args],
            env=base,
            cwd=tmp_path,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run
