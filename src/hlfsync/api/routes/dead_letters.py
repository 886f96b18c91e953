"""/api/v1/dead-letters: operations that failed for good, and what a person does about them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from hlfsync.api import models, pages, store
from hlfsync.api.deps import CallerDb
from hlfsync.api.problems import API_ERRORS, responses

router = APIRouter(
    prefix="/api/v1/dead-letters", tags=["dead letters"], responses=responses(*API_ERRORS)
)
StatusFilter = Annotated[
    models.DeadLetterStatus | None, Query(description="Only dead letters with this status.")
]
LetterId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The dead letter's id.")]


@router.get("", responses=responses(400))
async def list_dead_letters(
    request: Request, db: CallerDb,
    status: StatusFilter = None,
    limit: pages.Limit = pages.DEFAULT_LIMIT, cursor: pages.Cursor = None,
) -> models.DeadLetterPage:  # fmt: skip
    """Dead letters of the caller's mentors, newest first."""
    items, last = await store.dead_letter_page(
        db, before=pages.before_id(cursor), status=status, limit=limit
    )
    return models.DeadLetterPage(
        items=items, next=None if last is None else pages.next_link(request, last)
    )


@router.post("/{letter_id}/requeue", status_code=202, responses=responses(404, 409))
async def requeue_dead_letter(letter_id: LetterId, db: CallerDb) -> models.Queued:
    """Queue the mentor's current desired state again, ahead of the queue; the letter is then
    `requeued`. 409 when it is not open."""
    return await store.requeue(db, letter_id)


@router.post("/{letter_id}/resolve", responses=responses(400, 404, 409))
async def resolve_dead_letter(
    letter_id: LetterId, body: models.ResolveRequest, db: CallerDb
) -> models.DeadLetter:
    """Close the letter by hand, saying what was done. 409 when it is not open."""
    return await store.resolve(db, letter_id, body.note)
