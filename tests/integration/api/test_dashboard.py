"""The dashboard over HTTP (no browser): sign-in, the session cookie's flags, CSRF, the pages."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import psycopg
import pytest

from hlfsync import settings
from hlfsync.api import create_app, sign_in_url, signin
from tests.integration.api.world import World, ids


@pytest.fixture
async def browser(api_settings: settings.Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-keeping client on http://127.0.0.1, where the cookie may go without Secure."""
    app = create_app(api_settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                          base_url="http://127.0.0.1") as http,
    ):  # fmt: skip
        yield http


@pytest.fixture
def signed_in(
    browser: httpx.AsyncClient, world: World, conn: psycopg.Connection[Any]
) -> Callable[[str], Any]:
    """Sign in as a world user through a one-time link, as `hlfsync demo` prints it."""

    async def sign_in(user: str) -> httpx.Response:
        return await browser.get(sign_in_url("", signin.issue(conn, world.users[user], 60)))

    return sign_in


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


async def test_pages_need_a_session(browser: httpx.AsyncClient) -> None:
    """Without a session every dashboard page sends the browser to the sign-in page."""
    for path in ("/dashboard", "/dashboard/mentors", "/dashboard/dead-letters"):
        response = await browser.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == "/dashboard/login"


async def test_the_sign_in_link_sets_a_strict_http_only_cookie(
    browser: httpx.AsyncClient, signed_in: Any
) -> None:
    """The link signs in and keeps the token in an HttpOnly, SameSite=Strict cookie."""
    response = await signed_in("coord_a1")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/dashboard" in cookie
    assert "Secure" not in cookie  # plain http to 127.0.0.1 only
    assert (await browser.get("/dashboard")).status_code == 200


async def test_the_cookie_is_secure_anywhere_but_local_http(
    api_settings: settings.Settings, world: World, conn: psycopg.Connection[Any]
) -> None:
    """On any other host, or over https, the session cookie is Secure."""
    app = create_app(api_settings)
    for base in ("http://dashboard.example.org", "https://127.0.0.1"):
        link = sign_in_url("", signin.issue(conn, world.users["coord_a1"], 60))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base) as c,
        ):
            response = await c.get(link)
        assert "Secure" in response.headers["set-cookie"], base


async def test_a_bad_token_does_not_sign_in(browser: httpx.AsyncClient) -> None:
    """A forged or malformed token gets the sign-in form back with the reason, and no cookie."""
    response = await browser.post("/dashboard/login", data={"token": "not.a.token"})
    assert response.status_code == 401
    assert "Sign-in failed" in response.text
    assert "set-cookie" not in response.headers


async def test_forms_without_the_csrf_token_do_nothing(
    browser: httpx.AsyncClient, conn: psycopg.Connection[Any], world: World, signed_in: Any
) -> None:
    """A POST without (or with a wrong) CSRF token changes nothing; with it, the action runs."""
    await signed_in("coord_a1")
    letter = world.dead_letters["m_a1"]
    for data in ({}, {"csrf": "0" * 64}):
        response = await browser.post(f"/dashboard/dead-letters/{letter}/requeue", data=data)
        assert response.headers["location"].endswith("notice=csrf")
    assert ids(conn, "SELECT status FROM dead_letter_queue WHERE id = %s", [letter]) == {"open"}
    page = await browser.get("/dashboard/dead-letters")
    response = await browser.post(
        f"/dashboard/dead-letters/{letter}/requeue", data={"csrf": _csrf(page.text)}
    )
    assert response.headers["location"].endswith("notice=requeued")
    assert ids(conn, "SELECT status FROM dead_letter_queue WHERE id = %s", [letter]) == {"requeued"}


async def test_the_pages_show_the_callers_world(
    browser: httpx.AsyncClient, world: World, signed_in: Any
) -> None:
    """Overview, mentors, a mentor's timeline and dead letters render for a coordinator, with
    only their mentors; security headers keep scripts and framing out."""
    await signed_in("coord_a1")
    overview = await browser.get("/dashboard")
    assert "Circuit breaker" in overview.text
    assert "default-src 'none'" in overview.headers["content-security-policy"]
    mentors = await browser.get("/dashboard/mentors")
    shown = set(re.findall(r'href="/dashboard/mentors/([0-9a-f-]{36})"', mentors.text))
    assert shown == {str(m) for m in world.visible_mentors("coord_a1")}
    timeline = await browser.get(f"/dashboard/mentors/{world.mentors['m_a1']}")
    assert "dead lettered" in timeline.text
    assert "Timeline" in timeline.text
    other = await browser.get(f"/dashboard/mentors/{world.mentors['m_b1']}")
    assert other.status_code == 404
    letters = await browser.get("/dashboard/dead-letters")
    shown_letters = set(re.findall(r'id="letter-(\d+)"', letters.text))
    assert shown_letters == {str(world.dead_letters[n]) for n in world.mentor_names("coord_a1")}


async def test_someone_with_no_role_sees_no_data(
    browser: httpx.AsyncClient, signed_in: Any
) -> None:
    """A signed-in user who coordinates nothing gets a plain 403 page, no operational state."""
    await signed_in("idle_a")
    response = await browser.get("/dashboard")
    assert response.status_code == 403
    assert "Circuit breaker" not in response.text


async def test_the_session_cookie_is_not_an_api_credential(
    browser: httpx.AsyncClient, signed_in: Any
) -> None:
    """The JSON API wants a bearer token; the dashboard cookie (not even sent there) is no key."""
    await signed_in("admin_a")
    assert (await browser.get("/api/v1/mentors")).status_code == 401


async def test_signing_out_forgets_the_session(browser: httpx.AsyncClient, signed_in: Any) -> None:
    """After signing out the pages ask for sign-in again."""
    await signed_in("admin_a")
    response = await browser.post("/dashboard/logout")
    assert response.headers["location"] == "/dashboard/login?notice=signed-out"
    assert (await browser.get("/dashboard")).status_code == 303


async def test_names_are_escaped_not_executed(
    browser: httpx.AsyncClient, conn: psycopg.Connection[Any], world: World, signed_in: Any
) -> None:
    """Whatever a mentor's name holds is shown as text, never as markup."""
    conn.execute(
        "UPDATE peer_mentors SET full_name = '<script>alert(1)</script>' WHERE id = %s",
        [world.mentors["m_a1"]],
    )
    await signed_in("coord_a1")
    page = await browser.get("/dashboard/mentors")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
