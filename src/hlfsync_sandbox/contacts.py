"""The emulated contact table: rows by id, keyset paging, a change journal for read lag.

Owns the data only; the Web API rules (If-Match, OData errors) live in `dataverse`. Mutated on the
server's event-loop thread only, so it takes no locks.
"""

from __future__ import annotations

import bisect
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

# Contact attributes besides the listing field that the Web API accepts in a PATCH; anything else
# is an unknown property, which Dataverse refuses.
KNOWN_ATTRIBUTES = frozenset({"fullname", "firstname", "lastname", "emailaddress1", "description"})

# Journal entries are kept at least this long, so a read lag set after the fact still has history.
JOURNAL_RETENTION_S = 60.0


def canonical_id(text: str) -> str:
    """The lower-case hyphenated form of a GUID, with or without braces; ValueError if not one."""
    return str(uuid.UUID(text.strip().strip("{}")))


@dataclass(slots=True)
class Contact:
    """One contact row: its listing state, a row version for etags, and a few plain attributes."""

    listed: bool
    version: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def copy(self) -> Contact:
        return Contact(self.listed, self.version, dict(self.extra))

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'


class ContactView(Protocol):
    """What the Web API needs to read and write contacts: the live table or a staged changeset."""

    def get(self, contactid: str) -> Contact | None: ...

    def write(self, contactid: str, listed: bool | None, extra: dict[str, Any]) -> Contact: ...


class ContactStore:
    """All contacts. Sorting happens once per change of the id set, not once per page."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._rows: dict[str, Contact] = {}
        self._sorted: list[str] | None = None
        # (at, contactid, listed before the change or None if the row did not exist)
        self._journal: deque[tuple[float, str, bool | None]] = deque()
        self.retention_s = JOURNAL_RETENTION_S

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[tuple[str, Contact]]:
        for contactid in self.sorted_ids():
            yield contactid, self._rows[contactid]

    def get(self, contactid: str) -> Contact | None:
        return self._rows.get(contactid)

    def find(self, attribute: str, value: str) -> str | None:
        """The contactid whose `attribute` equals `value` (an alternate key); a scan, which is
        fine for the sandbox's sizes where Dataverse uses the key's index."""
        return next(
            (cid for cid, row in self._rows.items() if row.extra.get(attribute) == value), None
        )

    def write(self, contactid: str, listed: bool | None, extra: dict[str, Any]) -> Contact:
        """A Web API write (update or upsert-create), journaled so lagged reads can undo it."""
        row = self._rows.get(contactid)
        self._remember(contactid, None if row is None else row.listed)
        if row is None:
            row = Contact(listed=bool(listed), version=0)
            self._rows[contactid] = row
            if self._sorted is not None:  # one insert beats re-sorting 100k ids on the next page
                bisect.insort(self._sorted, contactid)
        if listed is not None:
            row.listed = listed
        row.extra.update(extra)
        row.version += 1
        return row

    def replace(self, rows: Iterable[tuple[str, Contact]]) -> int:
        """Admin writes: the world as it already was, so they bypass the journal."""
        count = 0
        for contactid, row in rows:
            if contactid not in self._rows:
                self._sorted = None
            old = self._rows.get(contactid)
            row.version = 1 if old is None else old.version + 1
            self._rows[contactid] = row
            count += 1
        return count

    def clear(self) -> None:
        self._rows.clear()
        self._sorted = None
        self._journal.clear()

    def sorted_ids(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self._rows)
        return self._sorted

    def page_after(self, last: str | None, size: int) -> tuple[list[str], bool]:
        """Up to `size` ids after `last` in id order, and whether more follow (keyset paging)."""
        ids = self.sorted_ids()
        start = 0 if last is None else bisect.bisect_right(ids, last)
        page = ids[start : start + size]
        return page, start + size < len(ids)

    def lagged(self, lag_s: float) -> dict[str, bool | None]:
        """For rows changed in the last `lag_s`: what they were before (None: did not exist)."""
        if lag_s <= 0:
            return {}
        cutoff = self._clock() - lag_s
        before: dict[str, bool | None] = {}
        for at, contactid, previous in reversed(self._journal):
            if at <= cutoff:
                break
            before[contactid] = previous  # older entries overwrite newer: the earliest wins
        return before

    def _remember(self, contactid: str, previous: bool | None) -> None:
        now = self._clock()
        journal = self._journal
        journal.append((now, contactid, previous))
        horizon = now - self.retention_s
        while journal and journal[0][0] < horizon:
            journal.popleft()


class Staged:
    """A change set's private view: reads see its own writes; the table sees them on commit."""

    def __init__(self, store: ContactStore) -> None:
        self._store = store
        self._rows: dict[str, Contact] = {}
        self._writes: list[tuple[str, bool | None, dict[str, Any]]] = []

    def get(self, contactid: str) -> Contact | None:
        staged = self._rows.get(contactid)
        return staged if staged is not None else self._store.get(contactid)

    def write(self, contactid: str, listed: bool | None, extra: dict[str, Any]) -> Contact:
        current = self.get(contactid)
        row = Contact(bool(listed), 0) if current is None else current.copy()
        if listed is not None:
            row.listed = listed
        row.extra.update(extra)
        row.version += 1
        self._rows[contactid] = row
        self._writes.append((contactid, listed, extra))
        return row

    def commit(self) -> None:
        for contactid, listed, extra in self._writes:
            self._store.write(contactid, listed, extra)
        self._writes.clear()
