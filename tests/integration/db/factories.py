"""Row factories for database tests: consistent defaults, one call per fact."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]


def one(conn: Conn, query: str, params: Any = None) -> Any:
    row = conn.execute(query.encode(), params).fetchone()
    assert row is not None
    return row[0]


def make_org(conn: Conn, name: str = "HLF") -> uuid.UUID:
    org: uuid.UUID = one(conn, "INSERT INTO organizations (name) VALUES (%s) RETURNING id", [name])
    conn.execute("INSERT INTO org_settings (organization_id) VALUES (%s)", [org])
    return org


def make_chapter(conn: Conn, org: uuid.UUID, name: str = "Oslo") -> uuid.UUID:
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
