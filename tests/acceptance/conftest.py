"""Acceptance tests run the real `hlfsync` command in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def hlfsync(tmp_path: Path) -> Run:
    """Run `hlfsync ARGS` with a clean HLFSYNC_* environment plus the given settings."""

    def run(
        *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("HLFSYNC_")}
        base.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "hlfsync", *args],
            env=base,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run
