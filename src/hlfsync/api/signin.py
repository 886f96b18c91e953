"""One-time sign-in codes: how `hlfsync demo` signs a browser in without a token in a URL.

A code is 128 random bits, kept only as its SHA-256 in `sign_in_codes`, valid once and for
HLFSYNC_SIGN_IN_CODE_TTL seconds. Opening `/dashboard/login?code=…` redeems it for a session
cookie holding a fresh access token; the code is then spent, so a copy in a browser history,
a proxy log or a terminal scroll-back signs nobody in.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any

import psycopg

from hlfsync.db.queries import q


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def issue(conn: psycopg.Connection[Any], user_id: uuid.UUID, ttl_s: float) -> str:
    """A new code for `user_id` (on a service connection; committed by the caller)."""
    code = secrets.token_urlsafe(16)
    conn.execute(q("sign_in_code_issue"), {"hash": _hash(code), "user": user_id, "ttl_s": ttl_s})
    return code


async def redeem(conn: psycopg.AsyncConnection[Any], code: str) -> uuid.UUID | None:
    """The user a code was for, spending it; None when unknown, used or expired (alike)."""
    if not code or len(code) > 64:
        return None
    cur = await conn.execute(q("sign_in_code_redeem"), {"hash": _hash(code)})
    row = await cur.fetchone()
    return None if row is None else uuid.UUID(str(row[0]))
