"""Dashboard sign-in: no login CSRF (a cross-site POST, a foreign Origin, a missing form token
are refused), and the demo's link is a one-time, short-lived code, never a token in a URL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import psycopg
import pytest

from hlfsync import settings
from hlfsync.api import create_app, sign_in_url, signin
from tests.integration.api.world import World

Conn = psycopg.Connection[Any]


@pytest.fixture
async def browser(api_settings: settings.Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-keeping client on http://127.0.0.1."""
    app = create_app(api_settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                          base_url="http://127.0.0.1") as http,
    ):  # fmt: skip
        yield http


async def _form_token(browser: httpx.AsyncClient) -> str:
    page = await browser.get("/dashboard/login")
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert found, "the sign-in form has no CSRF field"
    return found.group(1)


async def test_our_own_form_signs_in(
    browser: httpx.AsyncClient, world: World, token: Callable[..., str]
) -> None:
    """The form as served (its token and cookie, Origin ours or "null") signs in."""
    for origin in ("http://127.0.0.1", "null", None):
        csrf = await _form_token(browser)
        headers = {"origin": origin} if origin else {}
        response = await browser.post(
            "/dashboard/login", data={"token": token(world.users["coord_a1"]), "csrf": csrf},
            headers=headers,
        )  # fmt: skip
        assert (response.status_code, response.headers.get("location")) == (303, "/dashboard")
        assert "hlfsync_session=" in response.headers["set-cookie"]
        browser.cookies.clear()


async def test_a_cross_site_sign_in_is_refused(
    browser: httpx.AsyncClient, world: World, token: Callable[..., str]
) -> None:
    """Without the form's cookie (another site's POST), with a token not matching it, or from a
    foreign Origin, a valid token does not sign the browser in."""
    valid = token(world.users["coord_a1"])
    attempts: list[tuple[dict[str, str], dict[str, str], bool]] = [
        ({"token": valid}, {}, False),
        ({"token": valid, "csrf": "0" * 64}, {}, True),
        ({"token": valid}, {"origin": "https://evil.example"}, True),
    ]
    for fields, headers, with_form in attempts:
        browser.cookies.clear()
        data = {"csrf": await _form_token(browser), **fields} if with_form else fields
        response = await browser.post("/dashboard/login", data=data, headers=headers)
        assert response.status_code == 403, (data, headers)
        assert "hlfsync_session=" not in response.headers.get("set-cookie", "")


async def test_a_sign_in_code_works_once(
    browser: httpx.AsyncClient, world: World, conn: Conn
) -> None:
    """The printed link signs in once; the same link again, an unknown code or an expired one
    gets the sign-in form (401), with no session."""
    code = signin.issue(conn, world.users["admin_a"], 60)
    link = sign_in_url("", code)
    assert "token" not in link
    assert len(code) < 40
    first = await browser.get(link)
    assert (first.status_code, first.headers["location"]) == (303, "/dashboard")
    assert (await browser.get("/dashboard")).status_code == 200
    expired = signin.issue(conn, world.users["admin_a"], 60)
    conn.execute("UPDATE sign_in_codes SET created_at = created_at - interval '2 minutes',"
                 " expires_at = expires_at - interval '2 minutes'")  # fmt: skip
    for again in (link, sign_in_url("", "not-a-code"), sign_in_url("", expired)):
        browser.cookies.clear()
        response = await browser.get(again)
        assert response.status_code == 401, again
        assert "hlfsync_session=" not in response.headers.get("set-cookie", "")


async def test_a_sign_in_link_opened_from_another_site_is_refused(
    browser: httpx.AsyncClient, world: World, conn: Conn
) -> None:
    """A link followed from another site (Sec-Fetch-Site: cross-site) does not sign in, and the
    code stays unspent for its owner."""
    code = signin.issue(conn, world.users["admin_a"], 60)
    response = await browser.get(sign_in_url("", code), headers={"sec-fetch-site": "cross-site"})
    assert response.status_code == 403
    assert (await browser.get(sign_in_url("", code))).status_code == 303


def test_codes_are_kept_only_as_hashes(conn: Conn, world: World) -> None:
    """The table holds the code's SHA-256, never the code."""
    code = signin.issue(conn, world.users["admin_a"], 60)
    stored = conn.execute("SELECT code_hash FROM sign_in_codes").fetchall()
    assert len(stored) == 1
    assert code not in stored[0][0]
