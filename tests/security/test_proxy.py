"""Behind a proxy: with HLFSYNC_PUBLIC_URL the links and the cookie's Secure flag come from it,
whatever Host says; X-Forwarded-Proto/-Host count only from HLFSYNC_TRUSTED_PROXIES."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from hlfsync import settings
from hlfsync.api import create_app, sign_in_url, signin
from tests.integration.api.world import World

Auth = Callable[[str], dict[str, str]]


async def _get(conf: settings.Settings, url: str, headers: dict[str, str], peer: str,
               base: str = "http://127.0.0.1") -> httpx.Response:  # fmt: skip
    app = create_app(conf)
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=base) as http,
    ):
        return await http.get(url, headers=headers)


async def test_links_come_from_the_public_url_not_host(
    api_settings: settings.Settings, world: World, auth: Auth
) -> None:
    """With a public URL, a `next` link names it even when Host (and an untrusted proxy header)
    say otherwise."""
    conf = api_settings.model_copy(update={"public_url": "https://hlf.example.org"})
    headers = {**auth("admin_a"), "host": "evil.example", "x-forwarded-host": "evil.example"}
    response = await _get(conf, "/api/v1/mentors?limit=1", headers, "203.0.113.9")
    assert response.json()["next"].startswith("https://hlf.example.org/api/v1/mentors?")


async def test_forwarded_headers_count_only_from_trusted_proxies(
    api_settings: settings.Settings, auth: Auth, world: World
) -> None:
    """Without a public URL, X-Forwarded-Proto/-Host shape links only when the peer is a
    trusted proxy; from anyone else they are ignored."""
    conf = api_settings.model_copy(update={"trusted_proxies": "10.0.0.0/8"})
    headers = {**auth("admin_a"), "x-forwarded-proto": "https",
               "x-forwarded-host": "hlf.example.org"}  # fmt: skip
    trusted = await _get(conf, "/api/v1/mentors?limit=1", headers, "10.1.2.3")
    assert trusted.json()["next"].startswith("https://hlf.example.org/")
    untrusted = await _get(conf, "/api/v1/mentors?limit=1", headers, "198.51.100.7")
    assert untrusted.json()["next"].startswith("http://127.0.0.1/")


@pytest.mark.parametrize(
    ("public_url", "host", "secure"),
    [("https://hlf.example.org", "127.0.0.1", True),
     (None, "localhost", True),  # http to a non-loopback address, Host notwithstanding
     ("http://127.0.0.1:8000", "hlf.example.org", False)],
)  # fmt: skip
async def test_the_cookie_flag_comes_from_the_public_url_or_the_socket(  # noqa: PLR0917 - fixtures
    api_settings: settings.Settings, world: World, conn: psycopg.Connection[Any],
    public_url: str | None, host: str, secure: bool,
) -> None:  # fmt: skip
    """Secure is dropped only for plain http on this machine, judged from the public URL or the
    address the connection came in on, never from the Host header."""
    conf = api_settings.model_copy(update={"public_url": public_url})
    link = sign_in_url("", signin.issue(conn, world.users["coord_a1"], 60))
    response = await _get(conf, link, {"host": host}, "192.0.2.1", base="http://192.0.2.10")
    assert response.status_code == 303
    assert ("Secure" in response.headers["set-cookie"]) is secure


def test_a_public_url_is_an_origin_and_proxies_are_addresses() -> None:
    """A public URL with a path, or a proxy entry that is not an address, is refused by name."""
    with pytest.raises(ValueError, match="public_url"):
        settings.Settings(public_url="https://hlf.example.org/sync")
    with pytest.raises(ValueError, match="trusted_proxies"):
        settings.Settings(trusted_proxies="10.0.0.1, proxy.internal")
