"""The `hlfsync` command line's frame: the Typer apps, consoles, settings and the one-line
failure every command ends with. Commands live beside it, one module per area.

Bad input gets one line on stderr and a non-zero exit (2 for configuration and usage), never a
traceback. Data goes to stdout (`--json` where a command prints data); logs go to stderr.
Nothing heavy is imported here: `hlfsync --help` must answer at once.
"""

from __future__ import annotations

import os
import sys
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer

from hlfsync.core.errors import ConfigError, SyncFailure

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from hlfsync import settings as settings_mod

# Plain help (no rich markup): rendering help through rich costs more start-up than the rest
# of the command line together, and `--help` should answer at once.
app = typer.Typer(
    help="Keeps HLF's public peer-mentor listing in Dynamics in step with PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
db_app = typer.Typer(
    help="Database: migrations and the embedded server.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(db_app, name="db")
dlq_app = typer.Typer(
    help="The dead-letter queue: list, re-queue, resolve.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(dlq_app, name="dlq")


class _LazyConsole:
    """A rich Console made on first use: importing rich costs ~0.15 s a command may not need."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def get(self) -> Console:
        """The Console itself, for code that needs the real object (rich's Live, Progress)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


out: Any = _LazyConsole(stderr=False)
err: Any = _LazyConsole(stderr=True)


def table(*columns: str, title: str) -> Table:
    """A rich table, rich imported only now."""
    from rich.table import Table

    return Table(*columns, title=title)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class CommandError(Exception):
    """A command failed for a reason the user can act on; the message is the one line shown."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def load_settings(*, demo_sandbox: bool = True, **overrides: object) -> settings_mod.Settings:
    """Settings for a command, logging configured; beside a running demo, pointed at its sandbox
    (see `settings.with_running_demo`), which the command says on stderr."""
    from hlfsync import observability
    from hlfsync import settings as settings_mod

    loaded = settings_mod.load(**overrides)
    observability.configure(loaded.log_level, loaded.log_format)
    if demo_sandbox:
        pointed = settings_mod.with_running_demo(loaded)
        if pointed is not loaded:
            err.print(
                f"hlfsync: using the running demo's sandbox at {pointed.dynamics_url}",
                highlight=False,
                markup=False,
            )
        return pointed
    return loaded


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def print_json(data: Any) -> None:
    import json

    sys.stdout.write(json.dumps(data, default=_default, indent=2, ensure_ascii=False) + "\n")


def actor() -> str:
    """Who did it, for the audit log: the operating-system user at this command line."""
    import getpass

    return f"cli:{getpass.getuser()}"


def uuids(values: list[str]) -> list[UUID]:
    """Ids given on the command line, or one line saying which is not one."""
    parsed = []
    for value in values:
        try:
            parsed.append(UUID(value))
        except ValueError:
            raise CommandError(f"not a mentor id (UUID): {value!r}", code=2) from None
    return parsed


def main() -> None:
    """Entry point: turns every anticipated failure into one line and an exit code.

    The line is printed as it is (`markup=False`): it may quote a bad value, and a value such as
    `[/]` read as Rich markup would raise instead of being shown.
    """
    try:
        app()
    except ConfigError as exc:
        _fail(str(exc), 2)
    except CommandError as exc:
        _fail(str(exc), exc.code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against a traceback
        _fail_unexpected(exc)


def _fail(message: str, code: int) -> None:
    err.print(f"hlfsync: {message}", highlight=False, soft_wrap=True, markup=False)
    sys.exit(code)


def _fail_unexpected(exc: Exception) -> None:
    """Known kinds of failure from libraries become one line; anything else is a bug, said so.

    pydantic is looked up rather than imported: a command that never loaded settings must not
    pay its import for the sake of this check.
    """
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(exc, pydantic.ValidationError):
        from hlfsync import settings as settings_mod

        _fail(settings_mod.describe_error(exc), 2)
    described = _describe_library_error(exc)
    if described is not None:
        _fail(described, 1)
    if os.environ.get("HLFSYNC_DEBUG"):
        raise exc
    _fail(
        f"unexpected error ({type(exc).__name__}: {_one_line(str(exc))}); this is a bug —"
        " set HLFSYNC_DEBUG=1 to see where",
        70,
    )


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _describe_library_error(exc: Exception) -> str | None:
    """The failures a user causes from outside (a server down, a file unreadable) as one line."""
    if isinstance(exc, SyncFailure):
        return f"Dynamics or FCM did not answer as asked: {_one_line(exc.summary())}"
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.OperationalError):
        return f"database unreachable: {_one_line(str(exc))}"
    if psycopg is not None and isinstance(exc, psycopg.Error):
        return f"database error: {_one_line(str(exc))}"
    httpx = sys.modules.get("httpx")
    if httpx is not None and isinstance(exc, httpx.HTTPError):
        return f"cannot reach {_host_of(exc)}: {_one_line(str(exc)) or type(exc).__name__}"
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or _one_line(str(exc))}{where}"
    return None


def _host_of(exc: Exception) -> str:
    request = getattr(exc, "_request", None)
    if request is None:
        return "the remote service"
    return f"{request.url.scheme}://{request.url.host}:{request.url.port or ''}".rstrip(":")
