"""API test fixtures: the isolation world, tokens, and the app in-process over ASGI."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import psycopg
import pytest

from hlfsync import settings
from hlfsync.api import create_app, mint_token
from tests.integration.api import world as world_mod

SECRET = "test-secret-for-hlfsync-api-tests-0123456789-abcdefghijklmnopqrstu"


@pytest.fixture
def world(conn: psycopg.Connection[Any]) -> world_mod.World:
    """Two organisations with every visibility case, rows in every table (see world.py)."""
    return world_mod.build(conn)


@pytest.fixture
def token() -> Callable[..., str]:
    """Mint a valid token for a user id (or a world user's name via `world.users`)."""

    def make(user_id: uuid.UUID | str, **kwargs: Any) -> str:
        return mint_token(SECRET, user_id, **kwargs)

    return make


@pytest.fixture
def api_settings(db_url: str) -> settings.Settings:
    return settings.load(database_url=db_url, jwt_secret=SECRET, db_pool_size=4)


@pytest.fixture
async def client(api_settings: settings.Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process, its lifespan run (the pool opened and closed) around the test."""
    app = create_app(api_settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as http,
    ):
        yield http


@pytest.fixture
def auth(world: world_mod.World, token: Callable[..., str]) -> Callable[[str], dict[str, str]]:
    """Authorization headers for a world user by name."""
    return lambda user: {"authorization": f"Bearer {token(world.users[user])}"}
