"""`hlfsync demo`: the whole system on embedded defaults, for a first look and for trying things.

Starts (or reuses) the embedded PostgreSQL, applies migrations, starts the sandbox (Dataverse,
its token endpoint and FCM, over HTTPS) in this process, seeds sample data on the first run,
mirrors the mentors' contacts into the sandbox, then runs the worker until stopped (Ctrl-C) or
for `--duration` seconds, printing where everything is and what the queue does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from typing import Any

from pydantic import SecretStr
from rich.console import Console

from hlfsync import services
from hlfsync.core.errors import ConfigError
from hlfsync.db import connect
from hlfsync.db.queries import q
from hlfsync.settings import DEMO_ENV, DEMO_JWT_SECRET, DEMO_PID, Settings

REPORT_EVERY_S = 5.0


def _sandbox_settings(settings: Settings, sandbox: Any, url: str) -> Settings:
    values: dict[str, Any] = {
        key.removeprefix("HLFSYNC_").lower(): value for key, value in sandbox.env().items()
    }
    # Validated as settings first, then laid over the user's: the sandbox's values win.
    pointed = Settings(**values).model_dump(include=set(values))
    return settings.model_copy(update={**pointed, "database_url": url})


async def _report(settings: Settings, console: Console, stop: asyncio.Event) -> None:
    while not stop.is_set():
        snap = await asyncio.to_thread(services.status_snapshot, settings)
        queue = ", ".join(f"{k} {v}" for k, v in sorted(snap.queue.items())) or "empty"
        breaker = snap.breakers[0]["state"] if snap.breakers else "?"
        console.print(
            f"queue: {queue}; open dead letters {snap.open_dead_letters}; circuit {breaker}",
            highlight=False,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), REPORT_EVERY_S)


def _with_jwt_secret(settings: Settings) -> Settings:
    """The demo signs its own tokens: a secret kept in the data directory, made on first run."""
    if settings.jwt_secret is not None:
        return settings
    path = settings.data_dir / DEMO_JWT_SECRET
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return settings.model_copy(update={"jwt_secret": SecretStr(path.read_text().strip())})


def _coordinator(url: str) -> Any:
    """The coordinator with the most mentors, to sign in as."""
    with connect.connect(url) as conn:
        row = conn.execute(q("demo_coordinator")).fetchone()
    return row[0] if row else None


async def _api(settings: Settings, stop: asyncio.Event, pool: Any, console: Console) -> None:
    from hlfsync.api import serve, sign_in_url, signin

    url = str(settings.database_url)
    user = _coordinator(url)

    def ready(where: str) -> None:
        console.print(f"dashboard: {where}/dashboard")
        if user is not None:
            # A one-time code, valid for minutes: the URL carries no token.
            with connect.connect(url) as conn:
                code = signin.issue(conn, user, settings.sign_in_code_ttl)
            link = sign_in_url(settings.public_url or where, code)
            minutes = max(1, round(settings.sign_in_code_ttl / 60))
            console.print(
                f"sign in:   {link} (works once, for {minutes} min)", soft_wrap=True,
                highlight=False,
            )  # fmt: skip

    try:
        await serve(settings, stop, pool=pool, port=settings.api_port, on_ready=ready)
    except ConfigError as exc:  # the usual port is taken: any free one will do for a demo
        console.print(f"api: {exc}; using a free port")
        await serve(settings, stop, pool=pool, port=0, on_ready=ready)


def _live_events(settings: Settings, console: Console) -> Any:
    """On a terminal, log events feed the live view (and demo.log) instead of scrolling by."""
    if not console.is_terminal:
        return None
    from hlfsync import demo_view, observability

    events = demo_view.EventLog(settings.data_dir / "demo.log")
    fmt = "json" if settings.log_format == "json" else "console"
    observability.configure(settings.log_level, fmt, logger_factory=events.factory)
    return events


async def _serve(settings: Settings, duration_s: float | None, console: Console) -> None:
    from hlfsync.worker import process
    from hlfsync.worker.background import BackgroundFailed, Outcome

    events = _live_events(settings, console)
    built = await services.build_worker(settings)
    stop = asyncio.Event()
    process.install_signal_handlers(stop)
    if duration_s is not None:
        asyncio.get_running_loop().call_later(duration_s, stop.set)
    if events is not None:
        from hlfsync import demo_view

        console.print(f"events:    {settings.data_dir / 'demo.log'} (all of them)")
        view = demo_view.run(console, lambda: services.status_snapshot(settings), events, [], stop)
        reporter = asyncio.create_task(view)
    else:
        reporter = asyncio.create_task(_report(settings, console, stop))
    # As a worker process runs: live work on this loop; bulk work, the scheduler and alert
    # delivery on the background loop.
    ended = Outcome()
    beside = services.beside_the_loop(settings, built, stop, ended)
    api = asyncio.create_task(_api(settings, stop, built.pool, console), name="api")
    try:
        await process.serve(built.worker, None, stop, extra=[*beside, api])
        if ended.error is not None:
            raise BackgroundFailed(ended.error)
    finally:
        stop.set()
        await reporter
        await built.aclose()
        if events is not None:
            events.close()


def run(settings: Settings, *, duration_s: float | None, mentors: int, console: Console) -> None:
    from hlfsync_sandbox.server import SandboxServer

    url = services.database_url(settings)
    sandbox_dir = settings.data_dir / "sandbox"
    sandbox_dir.mkdir(parents=True, exist_ok=True)
    with SandboxServer(sandbox_dir) as sandbox:
        live = _with_jwt_secret(_sandbox_settings(settings, sandbox, url))
        with connect.connect(url) as conn:
            row = conn.execute(q("seed_mentor_count")).fetchone()
            existing = int(str(row[0])) if row else 0
        if existing == 0:
            counts = services.seed(live, mentors=mentors, orgs=2, chapters=None, seed=1)
            console.print(f"seeded {counts['mentors']} mentors in {counts['chapters']} chapters")
        else:
            services.push_contacts_to_sandbox(live, services.mentor_contacts(url))
            console.print(f"found {existing} mentors from an earlier run")
        console.print(f"database:  {connect.redact(url)}")
        console.print(f"sandbox:   {sandbox.url} (Dataverse, token endpoint, FCM)")
        env_file = settings.data_dir / DEMO_ENV
        sandbox.write_env(env_file)
        console.print(f"settings:  {env_file} (HLFSYNC_* that point at this sandbox)")
        console.print(
            'try:       psql "$(hlfsync db url)" -c "UPDATE peer_mentors SET status = \'paused\''
            " WHERE id = (SELECT id FROM peer_mentors WHERE status = 'active' LIMIT 1)\"",
            highlight=False,
            soft_wrap=True,
        )
        console.print("stop:      Ctrl-C")
        # Other hlfsync commands on this machine find the demo's sandbox through these two
        # files (settings.with_running_demo); both go when the demo stops.
        pid_file = settings.data_dir / DEMO_PID
        pid_file.write_text(str(os.getpid()))
        try:
            asyncio.run(_serve(live, duration_s, console))
        finally:
            pid_file.unlink(missing_ok=True)
