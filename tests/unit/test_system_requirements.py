"""A missing system package skips its tests with the install line, and fails them in CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import system

CONFTEST = """
from tests.system import pytest_configure, pytest_make_collect_report, pytest_runtest_makereport
"""

BROWSER = """
from tests.browser.conftest import chromium

def test_needs_a_browser(chromium):
    '''Never reached without Chromium.'''
"""

PG15 = """
from tests.integration.db.test_pg15 import pg15_url

def test_needs_postgresql_15(pg15_url):
    '''Never reached without PostgreSQL 15.'''
"""

PLAIN_SKIP = """
import pytest

def test_skips():
    '''Skips for a reason of its own.'''
    pytest.skip("not today")
"""


@pytest.fixture
def nothing_installed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> pytest.Pytester:
    """A machine with Python and uv only: no chromium on PATH, no PostgreSQL 15, not CI."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("HLFSYNC_TEST_PG15_BIN", str(tmp_path / "no-postgresql-15"))
    for name in ("CI", system.REQUIRE_SETTING, "HLFSYNC_TEST_CHROMIUM"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_browser=BROWSER, test_pg15=PG15)
    return pytester


def test_missing_packages_skip_with_the_install_line(nothing_installed: pytest.Pytester) -> None:
    """Without Chromium and PostgreSQL 15, their tests are skipped and the reason installs them."""
    result = nothing_installed.runpytest("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*SKIPPED*needs Debian's Chromium, not found: `apt-get install -y chromium`*",
            "*SKIPPED*needs Debian's PostgreSQL 15*not found: `apt-get install -y postgresql`*",
        ],
        consecutive=False,
    )


@pytest.mark.parametrize(("name", "value"), [("CI", "true"), (system.REQUIRE_SETTING, "1")])
def test_in_ci_missing_packages_fail(
    nothing_installed: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """With CI=true or HLFSYNC_TEST_REQUIRE_SYSTEM=1 the same tests fail, naming the install."""
    monkeypatch.setenv(name, value)
    result = nothing_installed.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*apt-get install -y chromium*"], consecutive=False)
    result.stdout.fnmatch_lines(["*apt-get install -y postgresql*"], consecutive=False)
    assert "skipped" not in result.stdout.lines[-1]


def test_in_ci_any_other_skip_fails_too(
    nothing_installed: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In CI a test that skips for its own reason fails instead; elsewhere it stays skipped."""
    nothing_installed.makepyfile(test_plain=PLAIN_SKIP)
    nothing_installed.runpytest("-p", "no:cacheprovider", "test_plain.py").assert_outcomes(
        skipped=1
    )
    monkeypatch.setenv("CI", "true")
    result = nothing_installed.runpytest("-p", "no:cacheprovider", "test_plain.py")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*forbids skips*not today*"], consecutive=False)


def test_strict_reads_ci_and_the_setting() -> None:
    """Only a true CI or a set HLFSYNC_TEST_REQUIRE_SYSTEM makes skips fail."""
    assert not system.strict({})
    assert not system.strict({"CI": "false", system.REQUIRE_SETTING: "0"})
    assert system.strict({"CI": "true"})
    assert system.strict({system.REQUIRE_SETTING: "1"})


def test_chromium_is_found_on_path_or_at_the_given_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`chromium` on PATH is found; HLFSYNC_TEST_CHROMIUM names another name or a path."""
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.delenv("HLFSYNC_TEST_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert system.chromium_path() == str(fake)
    monkeypatch.setenv("PATH", os.devnull)
    assert system.chromium_path() is None
    monkeypatch.setenv("HLFSYNC_TEST_CHROMIUM", str(fake))
    assert system.chromium_path() == str(fake)
    monkeypatch.setenv("HLFSYNC_TEST_CHROMIUM", str(tmp_path / "absent"))
    assert system.chromium_path() is None
