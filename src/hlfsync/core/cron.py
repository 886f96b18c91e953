"""Cron slots in a time zone: the slot due at `now`, the one a restart must catch up, the wait.

Pure: croniter does the calendar arithmetic, `now` comes in as an argument, slots come out as
aware UTC datetimes (the key stored in scheduled_runs.slot).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo

from croniter import croniter

# No sane schedule has this many slots that DST makes us skip in a row; past it, the expression
# or croniter is broken and we say so instead of spinning.
_MAX_SKIPS = 1000


def validate(cron: str) -> str:
    """The expression itself, or ValueError naming it."""
    if not croniter.is_valid(cron):
        raise ValueError(f"not a cron expression: {cron!r}")
    return cron


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"need an aware datetime, got naive {now.isoformat()}")
    return now.astimezone(UTC)


def _wall_clock(cron: str) -> bool:
    """True for jobs at named hours (a nightly run), false for hourly-or-finer ones.

    As in Vixie cron: when autumn repeats an hour, a job at a named hour runs at the first
    occurrence only (the nightly check runs once that night), while a job whose hour field is
    `*` keeps running by elapsed time.
    """
    hours = croniter(cron).expanded[1]
    return list(hours) != ["*"]


def _repeated(local: datetime) -> bool:
    """True for the second pass through a wall-clock time that autumn's DST change repeats."""
    other = local.replace(fold=1 - local.fold)
    return local.fold == 1 and other.utcoffset() != local.utcoffset()


def _slots(cron: str, zone: tzinfo, start: datetime, *, forward: bool) -> Iterator[datetime]:
    """Slots strictly after (or before) `start`, in order, as UTC."""
    it = croniter(cron, start.astimezone(zone))
    skip_repeats = _wall_clock(cron)
    skipped = 0
    while True:
        found = it.get_next(datetime) if forward else it.get_prev(datetime)
        slot = found.astimezone(UTC)
        if skip_repeats and _repeated(slot.astimezone(zone)):
            skipped += 1
            if skipped > _MAX_SKIPS:
                raise ValueError(f"no usable slot for {cron!r} near {start.isoformat()}")
            continue
        yield slot


def due_slot(cron: str, zone: tzinfo, now: datetime) -> datetime:
    """The latest slot at or before `now`."""
    now = _aware(now)
    before = next(_slots(cron, zone, now, forward=False))
    # croniter's get_prev is strict; a slot exactly at `now` is due now.
    following = next(_slots(cron, zone, before, forward=True))
    return following if following <= now else before


def next_slot(cron: str, zone: tzinfo, now: datetime) -> datetime:
    """The first slot strictly after `now`."""
    return next(_slots(cron, zone, _aware(now), forward=True))


def slot_to_run(cron: str, zone: tzinfo, now: datetime, last: datetime | None) -> datetime | None:
    """The slot to run at `now`, given the latest slot already recorded, or None.

    After downtime only the latest missed slot runs, once: a nightly check missed for three
    nights runs one check at start, not three.
    """
    due = due_slot(cron, zone, now)
    if last is not None and _aware(last) >= due:
        return None
    return due


def wait_seconds(crons: Iterable[str], zone: tzinfo, now: datetime, cap_s: float = 60.0) -> float:
    """How long a scheduler may sleep: until the next slot of any job, at most `cap_s`."""
    now = _aware(now)
    waits = [next_slot(cron, zone, now) - now for cron in crons]
    soonest = min(waits, default=timedelta(seconds=cap_s))
    return max(0.0, min(soonest.total_seconds(), cap_s))
