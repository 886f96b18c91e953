"""Async fixtures for the scheduler tests: a pool on the test's database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hlfsync.db.pool import Pool, open_pool


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[Pool]:
    """A small pool of autocommit connections to the test's database."""
    opened = await open_pool(db_url, max_size=4, name="expiry-test")
    yield opened
    await opened.close()
