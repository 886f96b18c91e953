"""The demo's live view: one compact screen of queue, sync lag, circuit, dead letters and the
last few events, redrawn in place (rich), instead of a flood of log lines.

The events are the process's own log lines: while the view is up, structlog writes to a small
ring buffer shown at the bottom, and every line also goes to a log file for later reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from hlfsync.core import status as verdict

EVENTS_SHOWN = 8
REFRESH_S = 1.0


class EventLog:
    """Log lines kept for the view (the last few) and appended to a file (all of them)."""

    def __init__(self, path: Path, keep: int = EVENTS_SHOWN) -> None:
        self.lines: deque[str] = deque(maxlen=keep)
        self._file: IO[str] = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()  # the sandbox's thread logs too

    def msg(self, message: str) -> None:
        with self._lock:
            self.lines.append(message)
            self._file.write(message + "\n")
            self._file.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = msg

    def factory(self, *_: Any) -> EventLog:
        """A structlog logger factory that hands out this log."""
        return self

    def close(self) -> None:
        with self._lock:
            self._file.close()


def render(snap: Any, events: list[str], now: datetime, header: list[str]) -> Group:
    """The view for one status snapshot: pure, so it is tested without a terminal."""
    queue = snap.queue
    numbers = Table.grid(padding=(0, 3))
    for _ in range(6):
        numbers.add_column(justify="right")
    numbers.add_row(
        "[dim]pending[/]", "[dim]in flight[/]", "[dim]succeeded[/]", "[dim]superseded[/]",
        "[dim]dead letters (open)[/]", "[dim]sync lag[/]",
    )  # fmt: skip
    lag = verdict.lag_seconds(snap, now)
    numbers.add_row(
        str(queue.get("pending", 0)),
        str(queue.get("in_progress", 0)),
        str(queue.get("succeeded", 0)),
        str(queue.get("superseded", 0)),
        _red_if(snap.open_dead_letters, str(snap.open_dead_letters)),
        _red_if(lag > 60, f"{lag:.1f} s"),
    )
    circuits = "  ".join(
        f"circuit {b['name']}: " + _circuit_colour(str(b["state"])) for b in snap.breakers
    )
    problems = verdict.problems(snap, now)
    health = (
        "[green]healthy[/]"
        if not problems
        else "[yellow]degraded:[/] " + escape("; ".join(problems))
    )
    recent = Text("\n".join(events[-EVENTS_SHOWN:]) or "(no events yet)", overflow="ellipsis")
    recent.no_wrap = True
    return Group(
        *(Text(line, overflow="fold") for line in header),
        Panel(
            Group(numbers, Text.from_markup(circuits or "circuit: ?"), Text.from_markup(health)),
            title="hlfsync demo",
            subtitle=f"{now:%H:%M:%S}",
        ),
        Panel(recent, title="recent events"),
    )


def _red_if(condition: object, text: str) -> str:
    return f"[bold red]{text}[/]" if condition else text


def _circuit_colour(state: str) -> str:
    colour = {"closed": "green", "open": "bold red", "half_open": "yellow"}.get(state, "white")
    return f"[{colour}]{state}[/]"


async def run(
    console: Console,
    snapshot: Callable[[], Any],
    events: EventLog,
    header: list[str],
    stop: asyncio.Event,
) -> None:
    """Redraw the view every second until `stop` is set."""
    with Live(console=console, auto_refresh=False, transient=False) as live:
        while not stop.is_set():
            snap = await asyncio.to_thread(snapshot)
            live.update(render(snap, list(events.lines), datetime.now(UTC), header), refresh=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), REFRESH_S)
