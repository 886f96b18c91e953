"""One-shot commands on the data: sample data, status, force-sync, dead letters, the sandbox's
contacts, API tokens. Each opens a connection for its call and closes it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from hlfsync.core.status import Snapshot
from hlfsync.db import connect
from hlfsync.services import parts
from hlfsync.settings import Settings

if TYPE_CHECKING:
    from hlfsync.db.operations import ForceResult


def seed(
    settings: Settings, *, mentors: int, orgs: int, chapters: int | None, seed: int
) -> dict[str, int]:
    """`hlfsync seed`: sample data, and its contacts in the sandbox when Dynamics is one."""
    from hlfsync.db import seed as seed_mod

    with connect.connect(parts.database_url(settings)) as conn:
        result = seed_mod.seed(
            conn,
            mentors=mentors,
            orgs=orgs,
            chapters=chapters,
            today=parts.today(settings),
            seed=seed,
        )
    counts = result.counts()
    pushed = push_contacts_to_sandbox(settings, result.contacts)
    counts["sandbox_contacts"] = len(result.contacts) if pushed else 0
    return counts


def status_snapshot(settings: Settings) -> Snapshot:
    from hlfsync.db import status

    with connect.connect(connect.database_url(settings)) as conn:
        return status.read(conn)


def force_sync(
    settings: Settings, mentors: Sequence[UUID] | None, *, chapter: UUID | None, actor: str
) -> ForceResult:
    """`hlfsync force-sync`: an immediate sync of some mentors, a chapter's, or everyone's."""
    from hlfsync.db import operations

    with connect.connect(parts.database_url(settings)) as conn:
        return operations.force_sync(conn, mentors, actor=actor, chapter=chapter)


def dead_letters(settings: Settings, *, status: str | None, limit: int) -> list[dict[str, Any]]:
    """`hlfsync dlq list`: dead letters, newest first."""
    from hlfsync.db import operations

    with connect.connect(parts.database_url(settings)) as conn:
        return operations.list_dead_letters(conn, status=status, limit=limit)


def requeue(settings: Settings, ids: Sequence[int] | None, *, actor: str) -> list[tuple[int, int]]:
    """`hlfsync dlq requeue`: (dead letter, new operation) for each one re-queued."""
    from hlfsync.db import operations

    with connect.connect(parts.database_url(settings)) as conn:
        return operations.requeue(conn, ids, actor=actor)


def resolve(settings: Settings, letter: int, *, note: str, actor: str) -> bool:
    """`hlfsync dlq resolve`: False when the dead letter is not open or does not exist."""
    from hlfsync.db import operations

    with connect.connect(parts.database_url(settings)) as conn:
        return operations.resolve(conn, letter, note=note, actor=actor)


def mentor_contacts(url: str) -> list[tuple[UUID, bool]]:
    """Every mentor's contact id and whether it should be listed: what a sandbox must hold."""
    from hlfsync.db import seed as seed_mod

    with connect.connect(url) as conn:
        return seed_mod.contacts(conn)


def push_contacts_to_sandbox(settings: Settings, contacts: list[tuple[UUID, bool]]) -> bool:
    """When HLFSYNC_DYNAMICS_URL is the sandbox, create the seeded contacts there.

    Returns False (and does nothing) when the URL is not a sandbox.
    """
    import httpx

    from hlfsync.outbound.tls import tls_verify

    if not settings.dynamics_url or not contacts:
        return False
    body = [{"contactid": str(contact), "listed": listed} for contact, listed in contacts]
    with httpx.Client(verify=tls_verify(settings.dynamics_ca_bundle), timeout=60) as http:
        try:
            response = http.post(f"{settings.dynamics_url}/_sandbox/contacts", json=body)
        except httpx.HTTPError:
            return False
    return response.status_code < 300


def mint(settings: Settings, *, user: str, ttl_s: float) -> str:
    """`hlfsync token`: an API token for a user (development and tests)."""
    from hlfsync.api import mint_token
    from hlfsync.core.errors import ConfigError

    if settings.jwt_secret is None:
        raise ConfigError("missing setting HLFSYNC_JWT_SECRET: needed to sign API tokens")
    return mint_token(settings.jwt_secret.get_secret_value(), user, ttl_s, settings.jwt_audience)
