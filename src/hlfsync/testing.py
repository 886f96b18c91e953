"""Test helpers shipped with hlfsync, for its own tests and for anyone embedding it.

Nothing here is used in production code paths. The fakes do no I/O; the row factories at the end
write through the connection a test passes them, with consistent defaults, one call per fact.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

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
    """A `dataverse.base.DynamicsClient` whose answers a test scripts, per contact or for all.

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
        from hlfsync.dataverse.base import Identity

        return Identity(user_id="scripted")

    async def probe(self) -> str:
        """The contract probe: always passes (script `who_am_i` failures to test holds)."""
        return "scripted contract"

    async def listings(self, page_size: int) -> AsyncIterator[list[Any]]:
        from hlfsync.dataverse.base import ContactListing

        items = [ContactListing(contact, listed) for contact, listed in self.listed.items()]
        for start in range(0, len(items), page_size):
            yield items[start : start + page_size]

    async def aclose(self) -> None:
        return None


# --- row factories ----------------------------------------------------------------------------

Conn = psycopg.Connection[Any]


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
