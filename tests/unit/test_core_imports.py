"""core/ stays pure: no adapters, no drivers, no clock reads, no environment, no logging.

Each module is parsed, not imported, so a violation is found even in a branch never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).parents[2] / "src" / "hlfsync" / "core"

FORBIDDEN_MODULES = (
    "hlfsync.db",
    "hlfsync.dataverse",
    "hlfsync.notify",
    "hlfsync.api",
    "hlfsync.worker",
    "hlfsync.settings",
    "hlfsync.services",
    "psycopg",
    "psycopg_pool",
    "httpx",
    "logging",
    "structlog",
)
# Attribute chains that read the clock or the environment, matched on their last two names so
# that `datetime.now`, `datetime.datetime.now` and `dt.datetime.now` are all caught.
FORBIDDEN_NAMES = frozenset(
    {
        "datetime.now",
        "datetime.utcnow",
        "datetime.today",
        "date.today",
        "time.time",
        "time.time_ns",
        "time.monotonic",
        "os.environ",
        "os.getenv",
        "os.putenv",
    }
)
# The one sanctioned clock read: SystemClock is the edge every other module is handed.
CLOCK_READERS = frozenset({"clock.py"})


def violations(source: str, *, may_read_clock: bool = False) -> list[str]:
    """Every forbidden import or clock/environment read in `source`, as `line: what`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if _forbidden(a.name)]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node)
            if _forbidden(base):
                found.append(f"{node.lineno}: import {base}")
                continue
            for alias in node.names:
                if _forbidden(module := f"{base}.{alias.name}"):
                    found.append(f"{node.lineno}: import {module}")
                elif module in FORBIDDEN_NAMES and not may_read_clock:
                    found.append(f"{node.lineno}: {module}")
        elif (
            isinstance(node, ast.Attribute)
            and not may_read_clock
            and (name := _last_two(node)) in FORBIDDEN_NAMES
        ):
            found.append(f"{node.lineno}: {name}")
    return found


def _absolute(node: ast.ImportFrom) -> str:
    """The module a `from ... import` reads from, with relative imports resolved from core."""
    package = ["hlfsync", "core"][: max(0, 3 - node.level)] if node.level else []
    return ".".join([*package, *([node.module] if node.module else [])])


def _forbidden(module: str) -> bool:
    return any(module == bad or module.startswith(f"{bad}.") for bad in FORBIDDEN_MODULES)


def _last_two(node: ast.Attribute) -> str | None:
    value = node.value
    if isinstance(value, ast.Name):
        return f"{value.id}.{node.attr}"
    if isinstance(value, ast.Attribute):
        return f"{value.attr}.{node.attr}"
    return None


CORE_MODULES = sorted(CORE.glob("*.py"))


def test_core_modules_are_found() -> None:
    """The check looks at the real core package, not an empty glob."""
    assert {"errors.py", "retry.py", "breaker.py", "states.py", "clock.py"} <= {
        path.name for path in CORE_MODULES
    }


@pytest.mark.parametrize("path", CORE_MODULES, ids=lambda path: path.name)
def test_core_module_is_pure(path: Path) -> None:
    """A core module imports no adapter, driver or logger and reads neither clock nor env."""
    source = path.read_text(encoding="utf-8")
    assert violations(source, may_read_clock=path.name in CLOCK_READERS) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import httpx", ["1: import httpx"]),
        ("import psycopg.rows", ["1: import psycopg.rows"]),
        ("from hlfsync.db import queue", ["1: import hlfsync.db"]),
        ("from hlfsync import worker", ["1: import hlfsync.worker"]),
        ("from .. import dataverse", ["1: import hlfsync.dataverse"]),
        ("from ..notify import fcm", ["1: import hlfsync.notify"]),
        ("import logging", ["1: import logging"]),
        ("import datetime\nx = datetime.datetime.now()", ["2: datetime.now"]),
        ("from datetime import date\nd = date.today()", ["2: date.today"]),
        ("import time\nt = time.time()", ["2: time.time"]),
        ("from time import monotonic", ["1: time.monotonic"]),
        ("import os\nurl = os.environ['X']", ["2: os.environ"]),
        ("from os import getenv", ["1: os.getenv"]),
        ("from hlfsync.core import errors\nimport random", []),
        ("from . import errors\nfrom .clock import Clock", []),
        ("from datetime import UTC, datetime, timedelta", []),
    ],
)
def test_the_check_catches_what_it_forbids(source: str, expected: list[str]) -> None:
    """The purity check reports each kind of violation, and passes what core may use."""
    assert violations(source) == expected


def test_the_clock_module_alone_may_read_the_clock() -> None:
    """SystemClock may call datetime.now, but even it may not import an adapter."""
    assert violations("x = datetime.now(UTC)", may_read_clock=True) == []
    assert violations("import httpx", may_read_clock=True) == ["1: import httpx"]
