"""Tokens the verifier accepts are normalised before the database sees them; what it cannot use
is a 401 problem, never a database-worded 4xx and never a 500, on the API and the sign-in."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from tests.integration.api.conftest import SECRET
from tests.integration.api.world import World


def _token(sub: Any, **extra: Any) -> str:
    claims = {"sub": sub, "aud": "authenticated", "role": "authenticated",
              "exp": int(time.time()) + 600, **extra}  # fmt: skip
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _spellings(user: uuid.UUID) -> list[str]:
    """Other spellings of one UUID that uuid.UUID reads (PostgreSQL reads only some)."""
    return [str(user).upper(), "{" + str(user) + "}", user.hex, user.urn]


async def test_any_uuid_spelling_is_the_same_user(client: httpx.AsyncClient, world: World) -> None:
    """sub in upper case, braces, bare hex or urn:uuid: is the same caller, 200 with the same
    mentors, never a 422 from PostgreSQL."""
    user = world.users["coord_a23"]
    canonical = await client.get(
        "/api/v1/mentors", headers={"authorization": f"Bearer {_token(str(user))}"}
    )
    assert canonical.status_code == 200
    for spelling in _spellings(user):
        headers = {"authorization": f"Bearer {_token(spelling)}"}
        response = await client.get("/api/v1/mentors", headers=headers)
        assert (response.status_code, response.json()) == (200, canonical.json()), spelling
        me = await client.get("/api/v1/me", headers=headers)
        assert me.json()["id"] == str(user)


BAD_CLAIMS: dict[str, Callable[[str], str]] = {
    "exp as numeric string": lambda u: _token(u, exp=str(int(time.time()) + 600)),
    "exp infinite": lambda u: _token(u, exp=float("inf")),
    "exp a bool": lambda u: _token(u, exp=True),
    "iat as string": lambda u: _token(u, iat="1700000000"),
    "sub a number": lambda u: _token(int(uuid.UUID(u))),
    "sub a list": lambda u: _token([u]),
    "sub not a uuid": lambda u: _token(u + "x"),
    "role service": lambda u: _token(u, role="service_role"),
}


@pytest.mark.parametrize("case", sorted(BAD_CLAIMS))
async def test_unusable_claims_are_401_everywhere(
    client: httpx.AsyncClient, world: World, case: str
) -> None:
    """Each unusable claim is a 401 problem from the API and a 401 sign-in form, no cookie."""
    token = BAD_CLAIMS[case](str(world.users["admin_a"]))
    response = await client.get("/api/v1/mentors", headers={"authorization": f"Bearer {token}"})
    assert (response.status_code, response.headers["content-type"]) == (
        401, "application/problem+json"
    ), response.text  # fmt: skip
    sign_in = await client.post("/dashboard/login", data={"token": token})
    assert sign_in.status_code == 401, sign_in.text
    assert "set-cookie" not in sign_in.headers


async def test_unchecked_claims_never_reach_the_database(
    client: httpx.AsyncClient, world: World
) -> None:
    """Extra claims (here a NUL escape, which PostgreSQL's jsonb refuses) are dropped, not
    handed to the database: the request succeeds."""
    token = _token(str(world.users["admin_a"]), note="\u0000", app_metadata={"x": "\u0000"})
    response = await client.get("/api/v1/me", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
