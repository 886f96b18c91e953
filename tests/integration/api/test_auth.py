"""Access tokens: only HS256 tokens we would issue get in; everything else is a 401 problem."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import jwt
import pytest

from hlfsync import settings
from hlfsync.api import create_app, mint_token
from hlfsync.core.errors import ConfigError
from tests.integration.api.conftest import SECRET

USER = uuid.uuid4()


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": str(USER), "aud": "authenticated", "role": "authenticated",
              "iat": now, "exp": now + 600}  # fmt: skip
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


BAD_TOKENS = {
    "forged": jwt.encode(_claims(), "another-secret-of-at-least-32-bytes!!", algorithm="HS256"),
    "expired": jwt.encode(_claims(exp=int(time.time()) - 5), SECRET, algorithm="HS256"),
    "alg none": jwt.encode(_claims(), None, algorithm="none"),
    "wrong audience": jwt.encode(_claims(aud="anon"), SECRET, algorithm="HS256"),
    "missing sub": jwt.encode(_claims(sub=None), SECRET, algorithm="HS256"),
    "missing exp": jwt.encode(_claims(exp=None), SECRET, algorithm="HS256"),
    "sub not a user id": jwt.encode(_claims(sub="admin"), SECRET, algorithm="HS256"),
    "service role": jwt.encode(_claims(role="service_role"), SECRET, algorithm="HS256"),
    "other algorithm": jwt.encode(_claims(), SECRET, algorithm="HS512"),
    "garbage": "not.a.token",
}


@pytest.mark.parametrize("case", BAD_TOKENS)
async def test_a_bad_token_is_a_401_problem(client: httpx.AsyncClient, case: str) -> None:
    """Forged, expired, alg none, wrong audience, missing claims, wrong role: 401 problem+json."""
    response = await client.get(
        "/api/v1/mentors", headers={"authorization": f"Bearer {BAD_TOKENS[case]}"}
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["status"] == 401


@pytest.mark.parametrize("header", [None, "Basic dXNlcjpwYXNz", "Bearer"])
async def test_no_bearer_token_is_a_401_problem(
    client: httpx.AsyncClient, header: str | None
) -> None:
    """Without a bearer token every API route answers 401."""
    headers = {"authorization": header} if header else {}
    response = await client.get("/api/v1/dead-letters", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_minted_token_is_accepted(client: httpx.AsyncClient) -> None:
    """A token from mint_token (what `hlfsync token` prints) gets in."""
    token = mint_token(SECRET, USER, ttl_s=60)
    response = await client.get("/api/v1/me", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json()["id"] == str(USER)


def test_a_minted_token_says_who_for_how_long_and_for_whom() -> None:
    """mint_token sets sub, aud, role and exp = iat + ttl."""
    claims = jwt.decode(
        mint_token(SECRET, USER, 90, "authenticated", now=1_700_000_000),
        SECRET, algorithms=["HS256"], audience="authenticated", options={"verify_exp": False},
    )  # fmt: skip
    assert claims["sub"] == str(USER)
    assert claims["role"] == "authenticated"
    assert claims["exp"] - claims["iat"] == 90


@pytest.mark.parametrize("secret", [None, "short"])
def test_the_api_will_not_start_without_a_usable_secret(secret: str | None) -> None:
    """No HLFSYNC_JWT_SECRET, or one too short for HS256: one clear line naming the setting."""
    conf = settings.load(jwt_secret=secret, database_url="postgresql://localhost/x")
    with pytest.raises(ConfigError, match="HLFSYNC_JWT_SECRET"):
        create_app(conf)
