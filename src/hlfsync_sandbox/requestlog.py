"""The request log: what each emulated request was, how it was answered, and running counts.

Owns the entry shape served by `GET /_sandbox/requests` and the counters of `/_sandbox/stats`.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

LOG_LIMIT = 1_000_000  # the oldest entries go first; a long benchmark must not eat all memory


@dataclass(slots=True)
class LogEntry:
    """One request as the sandbox saw it; `status` 0 means no complete response was sent."""

    method: str
    path: str
    kind: str
    at: float
    query: str = ""
    status: int = 0
    contactid: str | None = None
    correlation_id: str | None = None
    duration_ms: float = 0.0
    fault: str | None = None
    in_batch: bool = False
    listed: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "at": self.at,
            "kind": self.kind,
            "query": self.query,
            "contactid": self.contactid,
            "correlation_id": self.correlation_id,
            "duration_ms": round(self.duration_ms, 3),
            "fault": self.fault,
            "in_batch": self.in_batch,
            "listed": self.listed,
        }


class RequestLog:
    """The request log and the all-time counters behind `/_sandbox/stats`."""

    def __init__(self) -> None:
        self.entries: deque[LogEntry] = deque(maxlen=LOG_LIMIT)
        self.counts: Counter[tuple[str, int]] = Counter()

    def append(self, entry: LogEntry) -> None:
        self.entries.append(entry)
        self.counts[(entry.kind, entry.status)] += 1

    def select(
        self, since: float | None = None, kind: str | None = None, method: str | None = None
    ) -> list[LogEntry]:
        # Entries are appended when they finish but stamped when they arrive, so not sorted by
        # `at`: a scan is the honest filter, and this is an admin call, not the hot path.
        return [
            entry
            for entry in self.entries
            if (since is None or entry.at >= since)
            and (kind is None or entry.kind == kind)
            and (method is None or entry.method == method)
        ]

    def clear(self) -> None:
        self.entries.clear()

    def reset(self) -> None:
        self.entries.clear()
        self.counts.clear()
