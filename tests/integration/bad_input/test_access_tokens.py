"""Bad access tokens: a 401 on every route, the data unchanged, no secret echoed."""

from __future__ import annotations

import base64
import json
import time
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from tests.integration.api import world as world_mod
from tests.integration.bad_input import sweep


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": str(uuid.uuid4()), "aud": "authenticated", "role": "authenticated",
              "iat": now, "exp": now + 600}  # fmt: skip
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(**changes: Any) -> str:
    return jwt.encode(_claims(**changes), sweep.JWT_SECRET, algorithm="HS256")


def _tampered() -> str:
    header, _payload, signature = _signed().split(".")
    payload = base64.urlsafe_b64encode(json.dumps(_claims(role="service_role")).encode())
    return f"{header}.{payload.decode().rstrip('=')}.{signature}"


def _hs512() -> str:
    with warnings.catch_warnings():  # the key is short for HS512: the point is the algorithm
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        return jwt.encode(_claims(), sweep.JWT_SECRET, algorithm="HS512")


TOKENS: dict[str, Callable[[], str]] = {
    "forged signature": lambda: jwt.encode(_claims(), "another-secret-of-32-bytes-or-more!!",
                                           algorithm="HS256"),
    "payload swapped under a good signature": _tampered,
    "signature stripped": lambda: _signed().rsplit(".", 1)[0] + ".",
    "expired": lambda: _signed(exp=int(time.time()) - 5),
    "not valid yet": lambda: _signed(nbf=int(time.time()) + 3600),
    "alg none": lambda: jwt.encode(_claims(), None, algorithm="none"),
    "HS512 with the right secret": _hs512,
    "wrong audience": lambda: _signed(aud="anon"),
    "audience list without ours": lambda: _signed(aud=["service", "anon"]),
    "missing sub": lambda: _signed(sub=None),
    "missing exp": lambda: _signed(exp=None),
    "missing aud": lambda: _signed(aud=None),
    "sub not a user id": lambda: _signed(sub="admin"),
    "exp a word": lambda: _signed(exp="tomorrow"),
    "role service_role": lambda: _signed(role="service_role"),
    "role anon": lambda: _signed(role="anon"),
    "no role": lambda: _signed(role=None),
    "garbage": lambda: "not.a.token",
    "one segment": lambda: "eyJhbGciOiJIUzI1NiJ9",
    "20 kB of base64": lambda: base64.urlsafe_b64encode(b"\x00" * 15_000).decode(),
}  # fmt: skip


@pytest.mark.parametrize("case", TOKENS)
async def test_a_bad_token_is_a_401_everywhere_and_changes_nothing(
    api: httpx.AsyncClient, world: world_mod.World, conn: sweep.Conn, watch: sweep.Watch, case: str
) -> None:
    """Forged, expired, alg none, wrong audience or role, missing claims, garbage: 401 problem
    from the API (reading and writing), 401 from the dashboard's sign-in with no cookie set, a
    redirect to sign in for a session cookie; the token is never echoed; nothing moves."""
    token = TOKENS[case]()
    was = sweep.snapshot(conn)
    letter = world.dead_letters["m_a1"]
    for method, path in (("GET", "/api/v1/mentors"), ("GET", "/api/v1/me"),
                         ("POST", f"/api/v1/dead-letters/{letter}/requeue")):  # fmt: skip
        response = await api.request(method, path, headers=sweep.bearer(token))
        assert (response.status_code, response.headers["content-type"]) == (
            401, "application/problem+json"
        ), (path, response.text)  # fmt: skip
        assert response.headers["www-authenticate"] == "Bearer"
        assert sweep.one_line(response.json()["detail"])
        assert token not in response.text
    sign_in = await api.post("/dashboard/login", data={"token": token})
    assert sign_in.status_code == 401
    assert "set-cookie" not in sign_in.headers
    assert token not in sign_in.text
    api.cookies.set("hlfsync_session", token, path="/dashboard")
    page = await api.get("/dashboard/mentors")
    api.cookies.clear()
    assert (page.status_code, page.headers["location"]) == (303, "/dashboard/login")
    assert sweep.snapshot(conn) == was
    assert watch.named("api_unhandled") == []
    assert token not in watch.text()
    await sweep.api_still_works(api, world)
    assert watch.leaks(conn) == set()
