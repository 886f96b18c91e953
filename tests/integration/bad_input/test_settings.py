"""Bad settings (`HLFSYNC_*`, `.env`): the command stops with one line naming the setting."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog

from hlfsync import cli
from hlfsync.testing import make_mentor, make_org
from tests.integration.bad_input import sweep


@dataclass(frozen=True)
class BadSetting:
    env: dict[str, str]
    says: str  # the one line starts "hlfsync: " and then this
    command: tuple[str, ...] = ("status",)
    dotenv: bytes | None = None


DYNAMICS_OK = {
    "HLFSYNC_DYNAMICS_URL": "https://hlf.crm4.dynamics.invalid",
    "HLFSYNC_DYNAMICS_TENANT_ID": "tenant", "HLFSYNC_DYNAMICS_CLIENT_ID": "client",
}  # fmt: skip

SETTINGS = {
    "retries a word": BadSetting({"HLFSYNC_RETRY_MAX_RETRIES": "three"},
                                 "invalid setting HLFSYNC_RETRY_MAX_RETRIES: "),
    "retries negative": BadSetting({"HLFSYNC_RETRY_MAX_RETRIES": "-1"},
                                   "invalid setting HLFSYNC_RETRY_MAX_RETRIES: "),
    "retries waiting for weeks": BadSetting({"HLFSYNC_RETRY_MAX_RETRIES": "20"},
                                            "invalid settings: HLFSYNC_RETRY_*: "),
    "base delay zero": BadSetting({"HLFSYNC_RETRY_BASE_DELAY": "0"},
                                  "invalid setting HLFSYNC_RETRY_BASE_DELAY: "),
    "base delay NaN": BadSetting({"HLFSYNC_RETRY_BASE_DELAY": "nan"},
                                 "invalid setting HLFSYNC_RETRY_BASE_DELAY: "),
    "base delay infinite": BadSetting({"HLFSYNC_RETRY_BASE_DELAY": "inf"},
                                      "invalid setting HLFSYNC_RETRY_BASE_DELAY: "),
    "jitter above 1": BadSetting({"HLFSYNC_RETRY_JITTER": "2"},
                                 "invalid setting HLFSYNC_RETRY_JITTER: "),
    "breaker threshold zero": BadSetting({"HLFSYNC_BREAKER_FAILURE_THRESHOLD": "0"},
                                         "invalid setting HLFSYNC_BREAKER_FAILURE_THRESHOLD: "),
    "cool-down a word": BadSetting({"HLFSYNC_BREAKER_COOLDOWN": "a minute"},
                                   "invalid setting HLFSYNC_BREAKER_COOLDOWN: "),
    "concurrency empty": BadSetting({"HLFSYNC_WORKER_CONCURRENCY": ""},
                                    "invalid setting HLFSYNC_WORKER_CONCURRENCY: "),
    "concurrency huge": BadSetting({"HLFSYNC_WORKER_CONCURRENCY": "100000"},
                                   "invalid setting HLFSYNC_WORKER_CONCURRENCY: "),
    "pool size zero": BadSetting({"HLFSYNC_DB_POOL_SIZE": "0"},
                                 "invalid setting HLFSYNC_DB_POOL_SIZE: "),
    "API port out of range": BadSetting({"HLFSYNC_API_PORT": "70000"},
                                        "invalid setting HLFSYNC_API_PORT: "),
    "sync flag a maybe": BadSetting({"HLFSYNC_SYNC_ENABLED": "perhaps"},
                                    "invalid setting HLFSYNC_SYNC_ENABLED: "),
    "unknown contract": BadSetting({"HLFSYNC_DYNAMICS_CONTRACT": "soap-v1"},
                                   "invalid setting HLFSYNC_DYNAMICS_CONTRACT: "),
    "Dynamics URL not a URL": BadSetting({"HLFSYNC_DYNAMICS_URL": "not a url"},
                                         "invalid setting HLFSYNC_DYNAMICS_URL: "),
    "Dynamics URL with a key, misspelt": BadSetting(
        {"HLFSYNC_DYNAMICS_URL": f"htps://hooks.example/sync?code={sweep.CLIENT_SECRET}"},
        "invalid setting HLFSYNC_DYNAMICS_URL: "),
    "entity set with SQL in it": BadSetting({"HLFSYNC_DYNAMICS_ENTITY_SET": "contacts;drop"},
                                            "invalid setting HLFSYNC_DYNAMICS_ENTITY_SET: "),
    "listing field with a space": BadSetting({"HLFSYNC_DYNAMICS_LISTING_FIELD": "hlf listed"},
                                             "invalid setting HLFSYNC_DYNAMICS_LISTING_FIELD: "),
    "Dynamics timeout zero": BadSetting({"HLFSYNC_DYNAMICS_TIMEOUT": "0"},
                                        "invalid setting HLFSYNC_DYNAMICS_TIMEOUT: "),
    "page size above Dataverse's": BadSetting({"HLFSYNC_DYNAMICS_PAGE_SIZE": "5001"},
                                              "invalid setting HLFSYNC_DYNAMICS_PAGE_SIZE: "),
    "database URL of another kind": BadSetting(
        {"HLFSYNC_DATABASE_URL": f"mysql://svc:{sweep.CLIENT_SECRET}@db/hlf"},
        "invalid setting HLFSYNC_DATABASE_URL: "),
    "database URL unparsable": BadSetting(
        {"HLFSYNC_DATABASE_URL": f"postgresql://svc:{sweep.CLIENT_SECRET}@[::1/hlf"},
        "invalid setting HLFSYNC_DATABASE_URL: "),
    "database URL not UTF-8": BadSetting(
        {"HLFSYNC_DATABASE_URL": "postgresql://svc:pass\udcff@127.0.0.1:1/hlf"},
        "invalid setting HLFSYNC_DATABASE_URL: "),
    "database unreachable, password in the user info": BadSetting(
        {"HLFSYNC_DATABASE_URL": f"postgresql://svc:{sweep.CLIENT_SECRET}@127.0.0.1:1/hlf"},
        "cannot reach the database at postgresql://svc:***@127.0.0.1:1/hlf: "),
    "database unreachable, password in the query": BadSetting(
        {"HLFSYNC_DATABASE_URL": f"postgresql://127.0.0.1:1/hlf?password={sweep.CLIENT_SECRET}"},
        "cannot reach the database at postgresql://127.0.0.1:1/hlf?password=***: "),
    "time zone unknown": BadSetting({"HLFSYNC_TIMEZONE": "Mars/Olympus"},
                                    "invalid setting HLFSYNC_TIMEZONE: "),
    "time zone a path": BadSetting({"HLFSYNC_TIMEZONE": "../../etc/passwd"},
                                   "invalid setting HLFSYNC_TIMEZONE: "),
    # Rich markup: "[/]" raised MarkupError (a traceback), "[bold]" vanished from the line.
    "time zone that reads as markup": BadSetting(
        {"HLFSYNC_TIMEZONE": "[/]"}, "invalid setting HLFSYNC_TIMEZONE: unknown time zone '[/]'"),
    "time zone with a markup tag": BadSetting(
        {"HLFSYNC_TIMEZONE": "[bold]Oslo"},
        "invalid setting HLFSYNC_TIMEZONE: unknown time zone '[bold]Oslo'"),
    "schedule in words": BadSetting({"HLFSYNC_EXPIRY_SCHEDULE": "every night"},
                                    "invalid setting HLFSYNC_EXPIRY_SCHEDULE: "),
    "schedule minute 61": BadSetting({"HLFSYNC_HEALTH_SCHEDULE": "61 * * * *"},
                                     "invalid setting HLFSYNC_HEALTH_SCHEDULE: "),
    "log level unknown": BadSetting({"HLFSYNC_LOG_LEVEL": "loud"},
                                    "invalid setting HLFSYNC_LOG_LEVEL: "),
    "FCM endpoint empty": BadSetting({"HLFSYNC_FCM_ENDPOINT": ""},
                                     "invalid setting HLFSYNC_FCM_ENDPOINT: "),
    "FCM key without a project": BadSetting({"HLFSYNC_FCM_CREDENTIALS": "/nonexistent.json"},
                                            "invalid settings: HLFSYNC_FCM_PROJECT_ID is required"),
    ".env not UTF-8": BadSetting({}, "invalid settings file .env: not UTF-8 text",
                                 dotenv=b"HLFSYNC_RETRY_MAX_RETRIES=\xff\xfe3\n"),
    ".env with a bad value": BadSetting({}, "invalid setting HLFSYNC_WORKER_CONCURRENCY: ",
                                        dotenv=b"HLFSYNC_WORKER_CONCURRENCY=0\n"),
    # Checked when the command builds its Dynamics client, FCM notifier or token signer:
    "authority over plain http": BadSetting(
        {**DYNAMICS_OK, "HLFSYNC_DYNAMICS_AUTHORITY": "http://login.example.invalid/tenant"},
        "invalid setting HLFSYNC_DYNAMICS_AUTHORITY: ", ("health",)),
    "CA bundle missing": BadSetting(
        {**DYNAMICS_OK, "HLFSYNC_DYNAMICS_CA_BUNDLE": "{tmp}/no-such-ca.pem"},
        "invalid setting HLFSYNC_DYNAMICS_CA_BUNDLE: ", ("health",)),
    "CA bundle not a certificate": BadSetting(
        {**DYNAMICS_OK, "HLFSYNC_DYNAMICS_CA_BUNDLE": "{tmp}/not-a-ca.pem"},
        "invalid setting HLFSYNC_DYNAMICS_CA_BUNDLE: ", ("health",)),
    "client secret empty": BadSetting(
        {**DYNAMICS_OK, "HLFSYNC_DYNAMICS_CLIENT_SECRET": ""},
        "missing setting HLFSYNC_DYNAMICS_CLIENT_SECRET: ", ("health",)),
    "Dynamics URL missing": BadSetting(
        {"HLFSYNC_DYNAMICS_TENANT_ID": "tenant", "HLFSYNC_DYNAMICS_CLIENT_ID": "client"},
        "missing setting HLFSYNC_DYNAMICS_URL: ", ("health",)),
    "webhook without its secret": BadSetting(
        {"HLFSYNC_DYNAMICS_CONTRACT": "webhook-v1",
         "HLFSYNC_DYNAMICS_URL": "https://portal.example.invalid/hook"},
        "missing setting HLFSYNC_DYNAMICS_WEBHOOK_SECRET: ", ("health",)),
    "FCM key file missing": BadSetting(
        {**DYNAMICS_OK, "HLFSYNC_FCM_PROJECT_ID": "hlf-app",
         "HLFSYNC_FCM_CREDENTIALS": "{tmp}/no-such-key.json"},
        "invalid setting HLFSYNC_FCM_CREDENTIALS: ", ("worker", "--once")),
    "JWT secret too short": BadSetting(
        {"HLFSYNC_JWT_SECRET": "S3CRET-but-short"},
        "HLFSYNC_JWT_SECRET must be at least 32 characters",
        ("token", "--user", str(uuid.UUID(int=1)))),
}  # fmt: skip


@pytest.fixture
def structlog_config() -> Iterator[None]:
    """A command that gets past its settings configures structlog for the process: undo it."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.mark.usefixtures("structlog_config")
@pytest.mark.parametrize("case", SETTINGS)
def test_a_bad_setting_stops_the_command_with_one_line_naming_it(  # noqa: PLR0917
    conn: sweep.Conn, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], case: str,
) -> None:  # fmt: skip
    """Exit 2 and one line on stderr naming the setting: no traceback, no secret (the client
    secret and JWT secret are set in every case), nothing printed on stdout, queue untouched."""
    bad = SETTINGS[case]
    team_org = make_org(conn, "Sweep")
    sweep.pause(conn, make_mentor(conn, team_org))  # a queued operation that must stay as it is
    was = sweep.snapshot(conn)
    (tmp_path / "not-a-ca.pem").write_text("not a certificate\n")
    env = {
        "HLFSYNC_DATABASE_URL": db_url,
        "HLFSYNC_DATA_DIR": str(tmp_path / "data"),  # never the user's embedded server
        "HLFSYNC_DYNAMICS_CLIENT_SECRET": sweep.CLIENT_SECRET,
        "HLFSYNC_JWT_SECRET": sweep.JWT_SECRET,
        **{k: v.replace("{tmp}", str(tmp_path)) for k, v in bad.env.items()},
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if bad.dotenv is not None:
        (tmp_path / ".env").write_bytes(bad.dotenv)
    monkeypatch.setattr(sys, "argv", ["hlfsync", *bad.command])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    out, err = capsys.readouterr()
    assert (exited.value.code, out) == (2, ""), err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"hlfsync: {bad.says}"), lines[0]
    assert "Traceback" not in err
    assert {
        s for s in (sweep.CLIENT_SECRET, sweep.JWT_SECRET, "S3CRET-but-short") if s in err
    } == set()
    assert sweep.snapshot(conn) == was


def test_a_real_process_with_an_unreadable_dotenv_says_one_line(
    db_url: str, tmp_path: Path
) -> None:
    """The same through a real `hlfsync` process (1 s): a .env that is not UTF-8, exit 2."""
    (tmp_path / ".env").write_bytes(b"HLFSYNC_TIMEZONE=Europe/Oslo\nHLFSYNC_X=\xff\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HLFSYNC_")}
    env |= {"HLFSYNC_DATABASE_URL": db_url, "HLFSYNC_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-m", "hlfsync", "status"], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [
        "hlfsync: invalid settings file .env: not UTF-8 text (byte 0xff at offset 39)"
    ]
