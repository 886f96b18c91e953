"""Tests that need a Debian package beyond Python and uv (Chromium, PostgreSQL 15).

On a developer's machine without the package they are skipped, and the reason is the line that
installs it. In CI (`CI=true`, which .ci/run and CI services set) or with
HLFSYNC_TEST_REQUIRE_SYSTEM=1, a missing package is a failure, and so is any other skip: CI
runs every test or goes red.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator, Mapping
from pathlib import Path

import pytest

REQUIRE_SETTING = "HLFSYNC_TEST_REQUIRE_SYSTEM"
CHROMIUM_INSTALL = "apt-get install -y chromium"
POSTGRESQL_INSTALL = "apt-get install -y postgresql"

_STRICT = pytest.StashKey[bool]()


def strict(environ: Mapping[str, str]) -> bool:
    """Whether a skip must fail: in CI, or when HLFSYNC_TEST_REQUIRE_SYSTEM asks for it."""
    required = environ.get(REQUIRE_SETTING, "").strip().lower() not in ("", "0", "false", "no")
    return required or environ.get("CI", "").strip().lower() in ("true", "1")


def chromium_path() -> str | None:
    """Debian's Chromium: HLFSYNC_TEST_CHROMIUM (a path or a name on PATH), else `chromium`."""
    wanted = os.environ.get("HLFSYNC_TEST_CHROMIUM", "chromium")
    if "/" in wanted:
        return wanted if Path(wanted).is_file() else None
    return shutil.which(wanted)


def pg15_bin() -> Path:
    """Debian's PostgreSQL 15 binaries: HLFSYNC_TEST_PG15_BIN, else where the package puts them."""
    return Path(os.environ.get("HLFSYNC_TEST_PG15_BIN", "/usr/lib/postgresql/15/bin"))


def require(config: pytest.Config, found: object, what: str, install: str) -> None:
    """Skip (or, in CI, fail) the test unless `found`; the reason says how to install `what`."""
    if found:
        return
    reason = f"needs {what}, not found: `{install}`"
    if config.stash.get(_STRICT, False):
        pytest.fail(f"{reason} ({REQUIRE_SETTING} or CI is set: required here)", pytrace=False)
    pytest.skip(reason)


# --- hooks, imported by tests/conftest.py ------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    # Read once at start: tests/conftest.py clears HLFSYNC_* settings around every test.
    config.stash[_STRICT] = strict(os.environ)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    _no_skips(item.config, report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    _no_skips(collector.config, report)
    return report


def _no_skips(config: pytest.Config, report: pytest.TestReport | pytest.CollectReport) -> None:
    if not (report.skipped and config.stash.get(_STRICT, False)) or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped, but {REQUIRE_SETTING} or CI forbids skips: {reason}"
