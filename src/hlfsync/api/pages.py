"""Keyset pagination: opaque cursors and the `next` link.

A cursor is the last key of the page, base64url-encoded with a version, so clients treat it as
opaque and we may change what is inside. A cursor that does not decode is a 400, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any
from uuid import UUID

from fastapi import Query, Request

from hlfsync.api.problems import Problem

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

Limit = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page (default {DEFAULT_LIMIT}).")
]
Cursor = Annotated[
    str | None,
    Query(max_length=200, description="Opaque: pass the `next` link's cursor unchanged."),
]


def encode(key: Any) -> str:
    raw = json.dumps({"v": 1, "k": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str | None) -> Any:
    """The key inside a cursor (None without one)."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        body = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise _bad() from exc
    if not isinstance(body, dict) or body.get("v") != 1 or "k" not in body:
        raise _bad()
    return body["k"]


def next_link(request: Request, key: Any) -> str:
    """This request's URL with the cursor moved on to `key`."""
    return str(request.url.include_query_params(cursor=encode(key)))


def after_id(cursor: str | None) -> UUID | None:
    """The uuid key of an id-ordered page's cursor."""
    key = decode(cursor)
    try:
        return None if key is None else UUID(str(key))
    except ValueError as exc:
        raise _bad() from exc


def before_id(cursor: str | None) -> int | None:
    """The bigint key of a newest-first page's cursor."""
    key = decode(cursor)
    if key is not None and (type(key) is not int or not 0 < key < 2**63):
        raise _bad()
    return key


def _bad() -> Problem:
    return Problem(400, "cursor is not one this API issued", kind="bad-cursor")
