"""The import rules of the layout: core/ stays pure (no adapters, no drivers, no clock reads, no
environment, no logging); Dataverse is reached only through the Dynamics factory, and what the
adapters share (`outbound/`) imports none of them; the sandbox stays out of the product and the
product out of it.

Each module is parsed, not imported, so a violation is found even in a branch never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).parents[2] / "src"
PRODUCT = SRC / "hlfsync"
SANDBOX = SRC / "hlfsync_sandbox"
CORE = PRODUCT / "core"

FORBIDDEN_MODULES = (
    "hlfsync.db",
    "hlfsync.dataverse",
    "hlfsync.dynamics",
    "hlfsync.outbound",
    "hlfsync.notify",
    "hlfsync.api",
    "hlfsync.worker",
    "hlfsync.settings",
    "hlfsync.services",
    "hlfsync_sandbox",
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
        ("from hlfsync.dynamics.port import ListingChange", ["1: import hlfsync.dynamics.port"]),
        ("from ..outbound import errors", ["1: import hlfsync.outbound"]),
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


# The product's commands that run the sandbox; each imports it inside the function that needs it.
SANDBOX_ENTRY_POINTS = frozenset({"cli/serve.py", "demo.py"})


def imports(path: Path, root: Path = SRC) -> Iterator[tuple[int, str, bool]]:
    """`(line, module, inside a function)` for every import in the file at `path` under `root`,
    relative imports resolved from the file's package; `from a import b` yields `a.b`."""
    package = list(path.relative_to(root).parent.parts)
    for node, in_function in _walk(ast.parse(path.read_text(encoding="utf-8")), False):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name, in_function) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parent = package[: len(package) - node.level + 1] if node.level else []
            base = ".".join([*parent, *([node.module] if node.module else [])])
            yield from ((node.lineno, f"{base}.{a.name}", in_function) for a in node.names)


def _walk(node: ast.AST, in_function: bool) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        yield child, in_function
        nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
        yield from _walk(child, nested)


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def _importers(package: str, under: Path = PRODUCT) -> dict[str, list[str]]:
    """Each module under `under` (as a path from it) that imports `package`, with the lines."""
    found: dict[str, list[str]] = {}
    for path in sorted(under.rglob("*.py")):
        for line, module, in_function in imports(path):
            if _within(module, package):
                where = f"{line}: {module}" + ("" if in_function else " (at module level)")
                found.setdefault(path.relative_to(under).as_posix(), []).append(where)
    return found


def test_only_the_dynamics_factory_reaches_into_dataverse() -> None:
    """The engine, the notifier and the webhook adapter use `dynamics.port` and `outbound/`;
    the Dataverse adapter is built by `dynamics/factory.py` and imported nowhere else."""
    importers = {
        path for path in _importers("hlfsync.dataverse") if not path.startswith("dataverse/")
    }
    assert importers == {"dynamics/factory.py"}


@pytest.mark.parametrize("adapter", ["hlfsync.dynamics", "hlfsync.dataverse", "hlfsync.notify"])
def test_what_the_adapters_share_imports_no_adapter(adapter: str) -> None:
    """`outbound/` serves Dynamics and FCM alike, so it may know neither."""
    assert _importers(adapter, under=PRODUCT / "outbound") == {}


def test_the_product_imports_the_sandbox_only_when_a_command_runs_it() -> None:
    """Only `hlfsync sandbox` and `hlfsync demo` import hlfsync_sandbox, inside the command, so
    importing any of hlfsync (the worker, the API) never loads the sandbox."""
    found = {
        path: lines
        for path, lines in _importers("hlfsync_sandbox").items()
        if path not in SANDBOX_ENTRY_POINTS or any("module level" in line for line in lines)
    }
    assert found == {}


def test_the_entry_points_do_import_the_sandbox() -> None:
    """The rule above looks at the real files: each entry point it allows does import it."""
    assert set(_importers("hlfsync_sandbox")) == SANDBOX_ENTRY_POINTS


def test_the_sandbox_never_imports_the_product() -> None:
    """The sandbox speaks the real wire formats on its own: sharing product code with it would
    let the two agree by accident."""
    assert len(list(SANDBOX.rglob("*.py"))) > 10, "found no sandbox modules: the path is wrong"
    assert _importers("hlfsync", under=SANDBOX) == {}


@pytest.mark.parametrize(
    ("relative", "source", "expected"),
    [
        ("hlfsync/demo.py", "import hlfsync_sandbox.app", [(1, "hlfsync_sandbox.app", False)]),
        ("hlfsync/cli/serve.py", "from .. import demo", [(1, "hlfsync.demo", False)]),
        ("hlfsync/cli/serve.py", "from .app import x", [(1, "hlfsync.cli.app.x", False)]),
        (
            "hlfsync/demo.py",
            "def f():\n    from hlfsync_sandbox import server",
            [(2, "hlfsync_sandbox.server", True)],
        ),
        (
            "hlfsync/demo.py",
            "class A:\n    async def f(self):\n        import hlfsync_sandbox",
            [(3, "hlfsync_sandbox", True)],
        ),
    ],
)
def test_imports_resolves_and_places_each_import(
    tmp_path: Path, relative: str, source: str, expected: list[tuple[int, str, bool]]
) -> None:
    """`imports` resolves relative imports from the file's package and tells a function's
    imports from the module's."""
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")
    assert list(imports(path, root=tmp_path)) == expected
