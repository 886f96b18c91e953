"""Fixtures for the adapter tests: asyncio as the only anyio backend."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Adapters run on asyncio in production, so the tests do too."""
    return "asyncio"
