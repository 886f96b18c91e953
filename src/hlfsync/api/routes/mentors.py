"""/api/v1/mentors: the caller's mentors, each one's sync state and audit trail, force sync."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Request, status

from hlfsync.api import models, pages, store
from hlfsync.api.deps import CallerDb
from hlfsync.api.problems import API_ERRORS, responses

router = APIRouter(prefix="/api/v1/mentors", tags=["mentors"], responses=responses(*API_ERRORS))
MentorId = Annotated[UUID, Path(description="The mentor's id.")]


@router.get("", responses=responses(400))
async def list_mentors(
    request: Request, db: CallerDb, limit: pages.Limit = pages.DEFAULT_LIMIT,
    cursor: pages.Cursor = None,
) -> models.MentorPage:  # fmt: skip
    """The caller's mentors with their sync state, in id order, a page at a time."""
    items, last = await store.mentor_page(db, after=pages.after_id(cursor), limit=limit)
    return models.MentorPage(
        items=items, next=None if last is None else pages.next_link(request, str(last))
    )


@router.get("/{mentor_id}/sync", responses=responses(404))
async def mentor_sync(mentor_id: MentorId, db: CallerDb) -> models.MentorSync:
    """What the app shows after a push: the state, the latest attempts with their outcome and
    time, the open dead letter, and what the caller can do about it."""
    return await store.mentor_sync(db, mentor_id)


@router.post(
    "/{mentor_id}/force-sync", status_code=status.HTTP_202_ACCEPTED, responses=responses(404, 409)
)
async def force_sync(mentor_id: MentorId, db: CallerDb) -> models.Queued:
    """Queue an immediate sync of the mentor to what its status asks for, ahead of the queue."""
    return await store.force_sync(db, mentor_id)


@router.get("/{mentor_id}/audit", responses=responses(400, 404))
async def mentor_audit(
    request: Request, mentor_id: MentorId, db: CallerDb,
    limit: pages.Limit = pages.DEFAULT_LIMIT, cursor: pages.Cursor = None,
) -> models.AuditPage:  # fmt: skip
    """The mentor's audit trail, newest first: every change, attempt and manual action."""
    items, last = await store.audit_page(db, mentor_id, before=pages.before_id(cursor), limit=limit)
    return models.AuditPage(
        items=items, next=None if last is None else pages.next_link(request, last)
    )
