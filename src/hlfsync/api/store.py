"""What the API and the dashboard read and do, on a connection already running as the caller.

Both front ends call these functions, so a rule (what "in sync" means, when a dead letter may
be re-queued, which actions to offer) is written once. Not visible and not existing are the same
answer, 404, so nobody learns what lies outside their scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from hlfsync.api import models, rls
from hlfsync.api.problems import Problem, not_found
from hlfsync.core import status as verdict

FIRST_UUID = UUID(int=0)
LAST_ID = 2**63 - 1
ATTEMPTS_SHOWN = 10
_OUTCOMES = {
    "sync_succeeded": "succeeded",
    "sync_retry_scheduled": "retry_scheduled",
    "sync_throttled": "throttled",
    "dead_lettered": "dead_lettered",
    "lease_expired": "lease_expired",
}


def _sync(row: dict[str, Any]) -> models.SyncState:
    queued = row["queue_status"]
    return models.SyncState(
        state="not_queued" if queued is None else "in_sync" if queued == "succeeded" else queued,
        listed=row["status"] == "active",
        operation=row["operation"],
        queue_id=row["queue_id"],
        source=row["source"],
        attempt_count=row["attempt_count"] or 0,
        next_attempt_at=row["next_attempt_at"] if queued == "pending" else None,
        last_error=row["last_error"],
        updated_at=row["queue_updated_at"],
        last_synced_at=row["last_synced_at"],
        dead_letter_id=row["dead_letter_id"],
        unlinked=queued == "pending" and (row["last_error"] or "").startswith("unlinked:"),
    )


_SINCE = {
    "out_of_step": "differs_since",
    "pending": "queued_at",
    "dead_lettered": "dead_lettered_at",
    "in_step": "confirmed_at",
}


def _listing(row: dict[str, Any]) -> models.Listing:
    verdict = row["verdict"]
    since = _SINCE.get(verdict)
    return models.Listing(
        verdict=verdict,
        since=row[since] if since else None,
        should_be_listed=row["status"] == "active",
        confirmed_listed=row["confirmed_listed"],
        confirmed_at=row["confirmed_at"],
        confirmed_by=row["confirmed_by"],
    )


def _mentor(row: dict[str, Any]) -> models.Mentor:
    return models.Mentor.model_validate({**row, "sync": _sync(row), "listing": _listing(row)})


@dataclass(frozen=True)
class MentorFilter:
    """What a mentor list may be narrowed to; None everywhere is every mentor."""

    status: str | None = None
    verdict: models.Verdict | None = None
    chapter: UUID | None = None
    search: str | None = None

    def pattern(self) -> str | None:
        """The search as an ILIKE pattern matching any part of the name, wildcards escaped."""
        term = (self.search or "").strip()
        if not term:
            return None
        escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return f"%{escaped}%"


# Small sets walked from their own index, whatever else is asked.
_BY_VERDICT = {
    "dead_lettered": "api_mentor_page_dead_lettered",
    "pending": "api_mentor_page_pending",
    "out_of_step": "api_mentor_page_out_of_step",
    "unlinked": "api_mentor_page_unlinked",
    "unconfirmed": "api_mentor_page_unconfirmed",
}
# Trigrams need three characters; a shorter search filters the walk instead.
_TRIGRAM = 3


def _page_query(where: MentorFilter) -> str:
    """The walk that reaches a page of matches soonest: the smallest set the filter names."""
    if where.verdict in _BY_VERDICT:
        return _BY_VERDICT[where.verdict]
    if where.verdict is not None:
        return "api_mentor_page_judged"
    if len((where.search or "").strip()) >= _TRIGRAM:
        return "api_mentor_page_named"
    if where.chapter is not None:
        return "api_mentor_page_of_chapter"
    if where.status is not None:
        return "api_mentor_page_of_status"
    return "api_mentor_page"


async def mentor_page(
    conn: rls.Conn, *, after: UUID | None, limit: int, where: MentorFilter | None = None
) -> tuple[list[models.Mentor], UUID | None]:
    """A page of the caller's mentors in id order, and the key of the next page (None: last)."""
    where = where or MentorFilter()
    params = {
        "after": after or FIRST_UUID,
        "limit": limit + 1,
        "status": where.status,
        "verdict": where.verdict,
        "chapter": where.chapter,
        "pattern": where.pattern(),
    }
    query = _page_query(where)
    found = await rls.rows(conn, query, params)
    if query == "api_mentor_page_of_status" and found and found[-1]["id"] is None:
        # The status's walk met too few of the caller's mentors: walk their chapters instead.
        found = await rls.rows(conn, "api_mentor_page", params)
    items = [_mentor(r) for r in found[:limit]]
    return items, (items[-1].id if len(found) > limit else None)


async def mentor(conn: rls.Conn, mentor_id: UUID) -> models.Mentor:
    found = await rls.row(conn, "api_mentor", {"mentor": mentor_id})
    if found is None:
        raise not_found("mentor")
    return _mentor(found)


async def mentor_sync(conn: rls.Conn, mentor_id: UUID) -> models.MentorSync:
    """The state, the latest attempts, the open dead letter and the actions on offer."""
    current = await mentor(conn, mentor_id)
    audit = await rls.rows(
        conn, "api_mentor_attempts", {"mentor": mentor_id, "limit": ATTEMPTS_SHOWN}
    )
    letter = None
    if current.sync.dead_letter_id is not None:
        letter = await dead_letter(conn, current.sync.dead_letter_id)
    actions: list[models.Action] = ["force_sync"] if current.has_contact else []
    if letter is not None:
        actions += ["requeue", "resolve"]
    return models.MentorSync(
        mentor=current,
        sync=current.sync,
        attempts=[_attempt(a) for a in audit],
        dead_letter=letter,
        actions=actions,
    )


def _attempt(row: dict[str, Any]) -> models.Attempt:
    details = row["details"]
    return models.Attempt(
        at=row["occurred_at"],
        outcome=_OUTCOMES[row["event_type"]],  # type: ignore[arg-type]
        queue_id=row["sync_queue_id"],
        operation=details.get("operation"),
        attempt=details.get("attempt"),
        http_status=details.get("http_status"),
        duration_ms=details.get("duration_ms"),
        error=details.get("error") or details.get("reason"),
        next_attempt_at=details.get("next_attempt_at"),
    )


async def force_sync(conn: rls.Conn, mentor_id: UUID) -> models.Queued:
    current = await mentor(conn, mentor_id)
    if not current.has_contact:
        raise Problem(409, "the mentor has no Dynamics contact: nothing to sync", kind="no-contact")
    queued = await rls.row(conn, "api_force_sync", {"mentor": mentor_id})
    if queued is None:
        raise Problem(409, "nothing was queued", kind="not-queued")
    return models.Queued.model_validate(queued)


async def dead_letter_page(
    conn: rls.Conn, *, before: int | None, status: str | None, limit: int
) -> tuple[list[models.DeadLetter], int | None]:
    params = {"before": before or LAST_ID, "status": status, "limit": limit + 1}
    found = await rls.rows(conn, "api_dead_letter_page", params)
    items = [_letter(r) for r in found[:limit]]
    return items, (items[-1].id if len(found) > limit else None)


def _letter(row: dict[str, Any]) -> models.DeadLetter:
    return models.DeadLetter.model_validate({**row, "operation": row["operation_type"]})


async def dead_letter(conn: rls.Conn, letter: int) -> models.DeadLetter:
    found = await rls.row(conn, "api_dead_letter", {"letter": letter})
    if found is None:
        raise not_found("dead letter")
    return _letter(found)


def _not_open(letter: models.DeadLetter) -> Problem:
    return Problem(409, f"the dead letter is {letter.status}, not open", kind="not-open")


async def requeue(conn: rls.Conn, letter_id: int) -> models.Queued:
    letter = await dead_letter(conn, letter_id)
    if letter.status != "open":
        raise _not_open(letter)
    done = await rls.row(conn, "api_requeue_dead_letter", {"letter": letter_id})
    if done is None:
        raise Problem(409, "the mentor has no Dynamics contact: nothing to sync", kind="no-contact")
    # The caller sees the letter, so they see its mentor's queue.
    queued = await rls.one(conn, "api_queue_row", {"id": done["sync_queue_id"]})
    return models.Queued(
        mentor_id=queued["mentor_id"],
        sync_queue_id=queued["id"],
        operation=queued["operation"],
        dead_letter_id=letter_id,
    )


async def resolve(conn: rls.Conn, letter_id: int, note: str) -> models.DeadLetter:
    letter = await dead_letter(conn, letter_id)
    if letter.status != "open":
        raise _not_open(letter)
    if not note.strip():
        raise Problem(422, "a resolution note is required", kind="invalid-request")
    await rls.row(conn, "api_resolve_dead_letter", {"letter": letter_id, "note": note.strip()})
    return await dead_letter(conn, letter_id)


async def audit_page(
    conn: rls.Conn, mentor_id: UUID, *, before: int | None, limit: int
) -> tuple[list[models.AuditEvent], int | None]:
    await mentor(conn, mentor_id)  # 404 rather than an empty page for an unknown mentor
    params = {"mentor": mentor_id, "before": before or LAST_ID, "limit": limit + 1}
    found = await rls.rows(conn, "api_mentor_audit_page", params)
    items = [models.AuditEvent.model_validate({**r, "at": r["occurred_at"]}) for r in found[:limit]]
    return items, (items[-1].id if len(found) > limit else None)


async def alert_page(
    conn: rls.Conn, *, before: int | None, limit: int
) -> tuple[list[models.Alert], int | None]:
    found = await rls.rows(
        conn, "api_alert_page", {"before": before or LAST_ID, "limit": limit + 1}
    )
    items = [models.Alert.model_validate(r) for r in found[:limit]]
    return items, (items[-1].id if len(found) > limit else None)


async def me(conn: rls.Conn) -> models.Me:
    return models.Me.model_validate(await rls.one(conn, "api_me"))


async def overview(conn: rls.Conn, now: datetime, *, mine: bool = False) -> models.Overview:
    """Operational state for staff: the `status` snapshot, judged by the same rules. With
    `mine`, every number about mentors (queue, lag, dead letters) counts the caller's only."""
    verdicts: dict[str, int] = {}
    if mine:
        # Not the global totals: they count every operation ever queued, and are not the
        # caller's to see. (The page shows the overview to staff only.)
        counts = await rls.one(conn, "dashboard_counts")
        verdicts = counts["verdicts"]
        totals = {
            "queue": {},
            "oldest_pending_at": counts["oldest_pending_at"],
            "open_dead_letters": counts["open_dead_letters"],
        }
    else:
        totals = await rls.one(conn, "api_queue_overview")  # also refuses non-staff
    snapshot = verdict.Snapshot(
        queue=totals["queue"],
        oldest_pending_at=totals["oldest_pending_at"],
        open_dead_letters=totals["open_dead_letters"],
        breakers=await rls.rows(conn, "breaker_state"),
        scheduled=await rls.rows(conn, "api_last_scheduled_runs"),
        credentials=await rls.rows(conn, "credential_health"),
    )
    found = verdict.problems(snapshot, now)
    return models.Overview(
        healthy=not found,
        problems=found,
        queue=snapshot.queue,
        verdicts=verdicts,
        sync_lag_s=round(verdict.lag_seconds(snapshot, now), 3),
        oldest_pending_at=snapshot.oldest_pending_at,
        open_dead_letters=snapshot.open_dead_letters,
        breakers=[dict(b) for b in snapshot.breakers],
        scheduled_runs=[dict(r) for r in snapshot.scheduled],
        credentials=[dict(c) for c in snapshot.credentials],
    )


async def hourly(conn: rls.Conn, upto: datetime, hours: int = 24) -> list[models.HourlyActivity]:
    """The caller's mentors' calls per hour by outcome and the sync lag, oldest hour first."""
    found = await rls.rows(conn, "dashboard_hourly", {"upto": upto, "hours": hours})
    return [models.HourlyActivity.model_validate(r) for r in found]


async def chapters(conn: rls.Conn) -> list[models.Named]:
    """The chapters the caller may filter by."""
    return [models.Named.model_validate(r) for r in await rls.rows(conn, "dashboard_chapters")]
