"""The API's response and request bodies: what the OpenAPI document promises, field by field."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

SyncStateName = Literal[
    "in_sync", "pending", "in_progress", "dead_lettered", "superseded", "not_queued"
]
Action = Literal["force_sync", "requeue", "resolve"]
# Is the website right? The view `mentor_listing` (migration 0014) decides; these are its words.
Verdict = Literal["in_step", "out_of_step", "pending", "dead_lettered", "unlinked", "unconfirmed"]
VERDICTS: tuple[Verdict, ...] = (
    "in_step",
    "out_of_step",
    "pending",
    "dead_lettered",
    "unlinked",
    "unconfirmed",
)
DeadLetterStatus = Literal["open", "requeued", "resolved"]


class SyncState(BaseModel):
    """Where a mentor's listing stands: the latest operation and what became of it."""

    state: SyncStateName = Field(
        description="in_sync: the latest operation succeeded; not_queued: never synced by "
        "hlfsync; otherwise the latest operation's status."
    )
    listed: bool = Field(description="What the website listing should be (status is active).")
    operation: Literal["remove", "restore"] | None = None
    queue_id: int | None = None
    source: str | None = None
    attempt_count: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    updated_at: datetime | None = None
    last_synced_at: datetime | None = Field(None, description="When a sync last succeeded.")
    dead_letter_id: int | None = Field(None, description="The open dead letter, if any.")
    unlinked: bool = Field(
        False, description="Held: no Dynamics contact id and no alternate key to address it by."
    )


class Listing(BaseModel):
    """Is the website right? The listing as Dynamics last confirmed it, and the verdict."""

    verdict: Verdict = Field(
        description="in_step: Dynamics confirmed what the status asks; out_of_step: it "
        "confirmed the opposite and nothing is on its way; pending: a sync is on its way; "
        "dead_lettered: a sync failed for good and waits for a person; unlinked: no Dynamics "
        "contact; unconfirmed: Dynamics has not confirmed this mentor's listing yet."
    )
    since: datetime | None = Field(
        None,
        description="out_of_step: since when; pending: queued at; dead_lettered: since when; "
        "in_step: confirmed at.",
    )
    should_be_listed: bool = Field(description="What the status asks (listed when active).")
    confirmed_listed: bool | None = Field(
        None, description="The listing as Dynamics last confirmed it; null when never."
    )
    confirmed_at: datetime | None = None
    confirmed_by: Literal["sync", "reconcile"] | None = Field(
        None, description="A successful sync, or what reconciliation read from Dynamics."
    )


class Mentor(BaseModel):
    id: UUID
    full_name: str
    organization_id: UUID
    status: Literal["active", "paused", "inactive"]
    status_reason: str | None = None
    status_changed_at: datetime
    has_contact: bool = Field(description="Whether the mentor has a Dynamics contact to sync.")
    sync: SyncState
    listing: Listing


class MentorPage(BaseModel):
    items: list[Mentor]
    next: str | None = Field(description="URL of the next page; null on the last page.")


class Attempt(BaseModel):
    """One call to Dynamics (or a lost lease) and its outcome."""

    at: datetime
    outcome: Literal["succeeded", "retry_scheduled", "throttled", "dead_lettered", "lease_expired"]
    queue_id: int | None = None
    operation: str | None = None
    attempt: int | None = None
    http_status: int | None = None
    duration_ms: float | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None


class DeadLetter(BaseModel):
    id: int
    mentor_id: UUID
    mentor_name: str | None = None
    sync_queue_id: int
    operation: Literal["remove", "restore"]
    failure_reason: str
    attempt_count: int
    status: DeadLetterStatus
    created_at: datetime
    updated_at: datetime
    requeued_as: int | None = None
    handled_by: str | None = None
    handled_at: datetime | None = None
    resolution_note: str | None = None


class DeadLetterPage(BaseModel):
    items: list[DeadLetter]
    next: str | None


class MentorSync(BaseModel):
    """What the app shows after a push: the state, the recent attempts, the dead letter, and
    what the coordinator can do about it."""

    mentor: Mentor
    sync: SyncState
    attempts: list[Attempt]
    dead_letter: DeadLetter | None
    actions: list[Action]


class Queued(BaseModel):
    """An operation queued by force-sync or re-queue."""

    mentor_id: UUID
    sync_queue_id: int
    operation: Literal["remove", "restore"]
    dead_letter_id: int | None = None


class ResolveRequest(BaseModel):
    note: str = Field(min_length=1, max_length=2000, description="What was done about it.")


class AuditEvent(BaseModel):
    id: int
    at: datetime
    event_type: str
    actor: str
    sync_queue_id: int | None = None
    details: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditEvent]
    next: str | None


class Alert(BaseModel):
    id: int
    kind: str
    mentor_id: UUID | None = None
    status: str
    created_at: datetime
    details: dict[str, Any]


class AlertPage(BaseModel):
    items: list[Alert]
    next: str | None


class Named(BaseModel):
    id: UUID
    name: str


class Me(BaseModel):
    id: UUID
    full_name: str | None
    organization_id: UUID | None
    chapters: list[Named] = Field(description="Chapters the caller coordinates.")
    administers: list[Named] = Field(description="Organisations the caller administers.")


class Overview(BaseModel):
    """Operational state (global, no mentor data) and the reasons it is degraded, if any."""

    healthy: bool
    problems: list[str]
    queue: dict[str, int]
    verdicts: dict[str, int] = Field(
        default_factory=dict, description="The caller's mentors per verdict (dashboard only)."
    )
    sync_lag_s: float
    oldest_pending_at: datetime | None
    open_dead_letters: int
    breakers: list[dict[str, Any]]
    scheduled_runs: list[dict[str, Any]]
    credentials: list[dict[str, Any]]


class HourlyActivity(BaseModel):
    """One hour of the overview's chart: calls by outcome and the sync lag."""

    hour: datetime
    succeeded: int
    retried: int
    throttled: int
    dead_lettered: int
    lag_p50_s: float | None
    lag_max_s: float | None


class Health(BaseModel):
    status: Literal["ok", "ready"]
    pending_migrations: list[str] = []
