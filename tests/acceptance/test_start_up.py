"""Commands answer at once: each imports what it needs when it runs, and nothing else. Python's
own import log (`PYTHONPROFILEIMPORTTIME`) of the real command names every module it loaded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Heavy packages and what needs them: the API (fastapi, starlette, jinja2), calls out (httpx,
# msal, google-auth).
NOT_FOR_STATUS = {"fastapi", "starlette", "jinja2", "httpx", "msal", "google"}
NOT_FOR_HELP = NOT_FOR_STATUS | {"psycopg", "pydantic", "pydantic_settings", "structlog"}


def _loaded(args: list[str], env: dict[str, str], cwd: Path) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-m", "hlfsync", *args],
        env=env | {"PYTHONPROFILEIMPORTTIME": "1"}, cwd=cwd,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr[-2000:]
    return {
        line.split("|")[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def _env(**extra: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HLFSYNC_")} | extra


def test_help_loads_only_the_command_line(tmp_path: Path) -> None:
    loaded = _loaded(["--help"], _env(HLFSYNC_DATA_DIR=str(tmp_path)), tmp_path)
    assert "typer" in loaded  # the log was read
    assert not loaded & NOT_FOR_HELP


def test_status_loads_neither_the_api_nor_the_outbound_clients(db_url: str, tmp_path: Path) -> None:
    env = _env(HLFSYNC_DATABASE_URL=db_url, HLFSYNC_DATA_DIR=str(tmp_path))
    loaded = _loaded(["status"], env, tmp_path)
    assert "psycopg" in loaded  # it did ask the database
    assert not loaded & NOT_FOR_STATUS
