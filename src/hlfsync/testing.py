"""Test helpers shipped with hlfsync, for its own tests and for anyone embedding it.

Nothing here is used in production code paths. The fakes do no I/O; the row factories
write through the connection a test passes them, with consistent defaults, one call per
fact; `run_cli` runs the command line in this process (about 1 s faster per command than a
fresh interpreter) and puts back every piece of process state a command may change.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import io
import logging
import os
import signal
import sys
import traceback
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import psycopg

# A fixed, unremarkable instant, so that tests print the same timestamps on every run.
EPOCH = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


class FakeClock:
    """A `core.clock.Clock` that stands still until a test moves it.

    Time only moves through `advance` (forward) or `set` (anywhere, to simulate a skewed or
    restarted clock). It speaks aware UTC datetimes only, as the real clock does.
    """

    def __init__(self, start: datetime = EPOCH) -> None:
        self._now = _aware_utc(start)

    def now(self) -> datetime:
        return self._now

    def advance(self, by: float | timedelta) -> datetime:
        """Move forward by `by` (seconds or a timedelta) and return the new now."""
        step = by if isinstance(by, timedelta) else timedelta(seconds=by)
        if step < timedelta(0):
            raise ValueError(f"advance() only moves forward, got {step}; use set() to go back")
        self._now += step
        return self._now

    def set(self, when: datetime) -> datetime:
        """Jump to `when`, forward or back, and return it."""
        self._now = _aware_utc(when)
        return self._now


def _aware_utc(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"FakeClock needs an aware datetime, got naive {when.isoformat()}")
    return when.astimezone(UTC)


class RecordingNotifier:
    """A `notify.base.Notifier` that keeps every push it is asked to send, and delivers it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, str]]] = []
        self.collapse_keys: list[str | None] = []

    async def send(
        self, token: str, data: dict[str, str], *, collapse_key: str | None = None
    ) -> Any:
        from hlfsync.notify.base import DeliveryResult

        self.sent.append((token, dict(data)))
        self.collapse_keys.append(collapse_key)
        return DeliveryResult.delivered(f"recorded/{len(self.sent)}")


class ScriptedDynamics:
    """A `dynamics.port.DynamicsClient` whose answers a test scripts, per contact or for all.

    `script[contact_id]` (or `script[None]` for any contact) is a list of outcomes consumed one
    per call: None for success, an exception instance to raise. When a list runs out, calls
    succeed. Every call is recorded with the clock's time; `listed` holds each contact's state.
    """

    contract = "scripted"

    def __init__(
        self, clock: Any, script: dict[Any, list[Any]] | None = None, *, max_batch: int = 1
    ) -> None:
        self.clock = clock
        self.max_batch = max_batch
        self.batches: list[int] = []  # the size of each apply_many call
        self.script: dict[Any, list[Any]] = script or {}
        self.calls: list[tuple[datetime, Any, str]] = []
        self.listed: dict[Any, bool] = {}

    async def apply(self, change: Any) -> None:
        self.calls.append((self.clock.now(), change.contact_id, change.operation))
        queue = self.script.get(change.contact_id) or self.script.get(None) or []
        outcome = queue.pop(0) if queue else None
        if outcome is not None:
            raise outcome
        self.listed[change.contact_id] = change.listed

    async def apply_many(self, changes: Any) -> list[Exception | None]:
        self.batches.append(len(changes))
        results: list[Exception | None] = []
        for change in changes:
            try:
                await self.apply(change)
                results.append(None)
            except Exception as exc:  # noqa: BLE001 - each result stands alone
                results.append(exc)
        return results

    async def who_am_i(self) -> Any:
        from hlfsync.dynamics.port import Identity

        return Identity(user_id="scripted")

    async def probe(self) -> str:
        """The contract probe: always passes (script `who_am_i` failures to test holds)."""
        return "scripted contract"

    def credential_checks(self) -> list[Any]:
        return []

    def contract_checks(self) -> list[Any]:
        return []

    def take_write_probe(self) -> None:
        return None

    async def listings(self, page_size: int) -> AsyncIterator[list[Any]]:
        from hlfsync.dynamics.port import ContactListing

        items = [ContactListing(contact, listed) for contact, listed in self.listed.items()]
        for start in range(0, len(items), page_size):
            yield items[start : start + page_size]

    async def aclose(self) -> None:
        return None


# --- row factories ----------------------------------------------------------------------------

Conn = psycopg.Connection[Any]


async def prepared_statements(pool: Any) -> list[str]:
    """The statements the server keeps prepared on `pool`'s connection (open it with one)."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in await cur.fetchall()]


def one(conn: Conn, query: str, params: Any = None) -> Any:
    """The first column of the one row `query` returns."""
    row = conn.execute(query.encode(), params).fetchone()
    if row is None:
        raise LookupError(f"no row from {query!r}")
    return row[0]


def make_org(conn: Conn, name: str = "HLF") -> uuid.UUID:
    """An organisation with its default settings row."""
    org: uuid.UUID = one(conn, "INSERT INTO organizations (name) VALUES (%s) RETURNING id", [name])
    conn.execute("INSERT INTO org_settings (organization_id) VALUES (%s)", [org])
    return org


def make_chapter(conn: Conn, org: uuid.UUID, name: str = "Oslo") -> uuid.UUID:
    """A chapter of `org`."""
    chapter: uuid.UUID = one(
        conn,
        "INSERT INTO chapters (organization_id, name) VALUES (%s, %s) RETURNING id",
        [org, name],
    )
    return chapter


def make_mentor(
    conn: Conn,
    org: uuid.UUID,
    *,
    status: str = "active",
    chapters: tuple[uuid.UUID, ...] = (),
    contact: uuid.UUID | bool | None = True,
    expires_on: date | None = None,
) -> uuid.UUID:
    """A mentor of `org` in `chapters`, with a Dynamics contact id unless `contact=False`, and a
    two-year certification ending on `expires_on` if given."""
    contact_id = uuid.uuid4() if contact is True else (None if contact is False else contact)
    mentor: uuid.UUID = one(
        conn,
        "INSERT INTO peer_mentors (organization_id, full_name, status, dynamics_contact_id)"
        " VALUES (%s, 'Kari Nordmann', %s, %s) RETURNING id",
        [org, status, contact_id],
    )
    for chapter in chapters:
        conn.execute(
            "INSERT INTO chapter_memberships (mentor_id, chapter_id) VALUES (%s, %s)",
            [mentor, chapter],
        )
    if expires_on is not None:
        conn.execute(
            "INSERT INTO certifications (mentor_id, issued_on, expires_on) VALUES (%s, %s, %s)",
            [mentor, expires_on - timedelta(days=730), expires_on],
        )
    return mentor


def make_user(
    conn: Conn,
    org: uuid.UUID,
    *,
    coordinates: tuple[uuid.UUID, ...] = (),
    admin: bool = False,
    token: str | None = None,
) -> uuid.UUID:
    """An app user of `org`: coordinator of `coordinates`, an admin if asked, with a device."""
    user: uuid.UUID = one(
        conn,
        "INSERT INTO app_users (organization_id, full_name)"
        " VALUES (%s, 'Ola Nordmann') RETURNING id",
        [org],
    )
    for chapter in coordinates:
        conn.execute(
            "INSERT INTO coordinator_chapters (user_id, chapter_id) VALUES (%s, %s)",
            [user, chapter],
        )
    if admin:
        conn.execute(
            "INSERT INTO organization_admins (user_id, organization_id) VALUES (%s, %s)",
            [user, org],
        )
    if token is not None:
        conn.execute("INSERT INTO device_tokens (user_id, token) VALUES (%s, %s)", [user, token])
    return user


def make_alert(conn: Conn, now: datetime) -> tuple[int, uuid.UUID]:
    """A sync-failure alert about a mentor of a chapter of its own, raised at `now`, and the
    chapter's coordinator (no device: a test adds the deliveries it needs)."""
    from psycopg.types.json import Jsonb

    from hlfsync.db.queries import q

    org = make_org(conn)
    chapter = make_chapter(conn, org)
    user = make_user(conn, org, coordinates=(chapter,))
    mentor = make_mentor(conn, org, chapters=(chapter,))
    alert: int = one(
        conn,
        q("raise_mentor_alert"),
        {"kind": "sync_failure", "key": f"{mentor}:1", "mentor": mentor,
         "payload": Jsonb({}), "details": Jsonb({}), "now": now},
    )  # fmt: skip
    return alert, user


@dataclass(frozen=True)
class CommandResult:
    """What `run_cli` saw: the same three fields as `subprocess.CompletedProcess`."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    input: str = "",  # the name subprocess.run uses
    main: Callable[[], object] | None = None,
) -> CommandResult:
    """Run `hlfsync ARGS` in this process as a fresh `hlfsync` process would run it.

    The environment is this one without any HLFSYNC_* variable, plus `env`; stdin reads
    `input`; stdout and stderr are captured (neither is a terminal). The exit code is
    SystemExit's; 0 when `main` returns; 1 with the traceback on stderr when it raises (-2 for
    KeyboardInterrupt), as the interpreter does. Afterwards the environment, working directory,
    argv, standard streams, signal handlers, warning filters, stdlib logging and structlog
    configuration are as they were, whatever the command changed. Commands that need their own
    process (signals, a worker to kill, the console script itself) belong in a real subprocess.
    """
    if main is None:
        from hlfsync.cli import main as cli_main

        main = cli_main
    out, err = _capture(), _capture()
    # A copied context: whatever the command binds in contextvars (structlog's among them)
    # stays behind with it.
    run = contextvars.copy_context().run
    with contextlib.ExitStack() as stack:
        stack.enter_context(_environment(env or {}))
        if cwd is not None:
            stack.enter_context(contextlib.chdir(cwd))
        stack.enter_context(warnings.catch_warnings())
        stack.enter_context(_logging_preserved())
        stack.enter_context(_signals_preserved())
        stack.enter_context(_swapped(sys, "argv", ["hlfsync", *args]))
        stack.enter_context(_swapped(sys, "stdin", io.StringIO(input)))
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        if _loop_running():
            # asyncio.run inside a command cannot nest in an async test's loop: use a thread.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                code = pool.submit(run, _exit_code_of, main).result()
        else:
            code = run(_exit_code_of, main)
    return CommandResult(tuple(args), code, _text(out), _text(err))


def _capture() -> io.TextIOWrapper:
    # A text stream with a binary buffer underneath, as sys.stdout has: some writers use .buffer.
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace", write_through=True)


def _text(stream: io.TextIOWrapper) -> str:
    stream.flush()
    buffer = cast(io.BytesIO, stream.buffer)
    return buffer.getvalue().decode("utf-8", errors="replace")


def _exit_code_of(main: Callable[[], object]) -> int:
    try:
        main()
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code
        print(exc.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # The interpreter prints the traceback and dies of SIGINT: returncode -2 to a parent.
        traceback.print_exc(file=sys.stderr)
        return -signal.SIGINT
    except BaseException:  # noqa: BLE001 - reported as the interpreter would, exit 1
        traceback.print_exc(file=sys.stderr)
        return 1
    return 0


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@contextlib.contextmanager
def _swapped(owner: object, name: str, value: object) -> Iterator[None]:
    saved = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, saved)


@contextlib.contextmanager
def _environment(extra: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith("HLFSYNC_")]:
        del os.environ[key]
    os.environ.update(extra)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _signals_preserved() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            with contextlib.suppress(ValueError, TypeError):  # not the main thread / not ours
                signal.signal(sig, handler)


@contextlib.contextmanager
def _logging_preserved() -> Iterator[None]:
    """Stdlib loggers and structlog as they were, whatever the command configured.

    structlog's `cache_logger_on_first_use` would pin a module's logger to this run's captured
    stderr for the rest of the process, out of reach of any later configuration (and of
    `structlog.testing.capture_logs`), so caching is turned off while the command runs.
    """
    import structlog

    manager = logging.Logger.manager
    existing = {
        name for name, item in manager.loggerDict.items() if isinstance(item, logging.Logger)
    }
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in existing)]
    saved = [(lg, lg.level, list(lg.handlers), lg.propagate, lg.disabled) for lg in loggers]
    disabled = manager.disable
    structlog_config = structlog.get_config()
    configure = structlog.configure

    def configure_uncached(*args: Any, **kwargs: Any) -> None:
        if len(args) < 5:
            kwargs["cache_logger_on_first_use"] = False
        configure(*args, **kwargs)

    structlog.configure = configure_uncached
    try:
        yield
    finally:
        structlog.configure = configure
        structlog.configure(**structlog_config)
        for lg, level, handlers, propagate, was_disabled in saved:
            lg.setLevel(level)
            lg.handlers[:] = handlers
            lg.propagate, lg.disabled = propagate, was_disabled
        for name, item in list(manager.loggerDict.items()):
            if name not in existing and isinstance(item, logging.Logger):
                item.setLevel(logging.NOTSET)
                item.handlers.clear()
                item.propagate, item.disabled = True, False
        logging.disable(disabled)
