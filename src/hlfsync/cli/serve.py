"""The long-running commands: `sandbox`, `api`, `run`, `demo`, and `token` for the API."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hlfsync.cli.app import CommandError, app, load_settings, out, uuids
from hlfsync.core.errors import ConfigError

if TYPE_CHECKING:
    from hlfsync import settings as settings_mod


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8443,
    env_file: Annotated[
        Path | None, typer.Option(help="Write the HLFSYNC_* settings that point at it here.")
    ] = None,
) -> None:
    """Run the local Dataverse + token + FCM emulator (HTTPS, with fault injection)."""
    from hlfsync_sandbox import server

    settings = load_settings(demo_sandbox=False)
    data_dir = settings.data_dir / "sandbox"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        server.serve(host, port, env_file, data_dir, on_ready=_mirror_contacts_later(settings))
    except OSError as exc:
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def _mirror_contacts_later(settings: settings_mod.Settings) -> Any:
    """Once the sandbox listens, give it the contacts of the mentors already in the database, so
    a worker pointed at it finds them (as the demo does); in a thread, off the server's loop."""
    import threading

    def mirror(running: Any) -> None:
        from hlfsync import services
        from hlfsync.db import embedded

        if settings.database_url is None and not embedded.exists(settings.data_dir):
            # Nothing to mirror, and a sandbox must not set up (and leave running) a database.
            print(f"  contacts:  none (no database in {settings.data_dir})", flush=True)
            return

        def work() -> None:
            try:
                pointed = settings.model_copy(
                    update={"dynamics_url": running.url, "dynamics_ca_bundle": running.ca_path}
                )
                contacts = services.mentor_contacts(services.database_url(settings, upgrade=False))
                if services.push_contacts_to_sandbox(pointed, contacts):
                    print(f"  contacts:  {len(contacts)} from the database", flush=True)
            except ConfigError as exc:  # no database here: the sandbox starts empty
                print(f"  contacts:  none ({exc})", flush=True)

        threading.Thread(target=work, name="mirror-contacts", daemon=True).start()

    return mirror


# --- API ---------------------------------------------------------------------------------


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Address (default HLFSYNC_API_HOST).")] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Port (default HLFSYNC_API_PORT).")
    ] = None,
) -> None:
    """The HTTP API (/api/v1, /openapi.json, /metrics) and the dashboard (/dashboard)."""
    import asyncio

    from hlfsync import services

    settings = load_settings()
    asyncio.run(services.api_forever(settings, host=host, port=port))


@app.command()
def run() -> None:
    """Production all-in-one: worker, scheduler and API in one process."""
    import asyncio

    from hlfsync import services
    from hlfsync.worker.background import BackgroundFailed

    settings = load_settings()
    try:
        asyncio.run(services.run_forever(settings))
    except BackgroundFailed as exc:
        raise CommandError(f"hlfsync run stopped: its background loop failed: {exc}") from None


@app.command()
def token(
    user: Annotated[str, typer.Option("--user", help="The user id (the JWT sub).")],
    ttl: Annotated[float, typer.Option(min=1, help="Lifetime in seconds.")] = 3600,
) -> None:
    """Mint an API token for a user (needs HLFSYNC_JWT_SECRET; for development and tests)."""
    from hlfsync import services

    uuids([user])
    settings = load_settings()
    sys.stdout.write(services.mint(settings, user=user, ttl_s=ttl) + "\n")


# --- demo ----------------------------------------------------------------------------------


@app.command()
def demo(
    duration: Annotated[
        float | None, typer.Option(min=0, help="Stop after this many seconds.")
    ] = None,
    mentors: Annotated[int, typer.Option(min=0, help="Mentors to seed on first run.")] = 200,
) -> None:
    """Embedded PostgreSQL + sandbox + sample data + worker + API; prints where things are."""
    from hlfsync import demo as demo_mod
    from hlfsync.worker.background import BackgroundFailed

    settings = load_settings(demo_sandbox=False)
    try:
        demo_mod.run(settings, duration_s=duration, mentors=mentors, console=out.get())
    except BackgroundFailed as exc:
        raise CommandError(f"the demo stopped: its background loop failed: {exc}") from None
