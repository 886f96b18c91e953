"""Browser tests: Debian's Chromium, headless, driven by Playwright against the API and dashboard
served by uvicorn on 127.0.0.1. Screenshots go to test-artifacts/ at the repository root.

Playwright cannot download its own browser here, so the system one is used; without it these
tests are skipped with the line that installs it, and fail in CI (tests/system.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests import system

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def chromium(pytestconfig: pytest.Config) -> Iterator[Browser]:
    """One headless Chromium per module.

    Not per session: Playwright's sync API keeps an event loop marked running in this thread
    until it stops, and every asyncio test after it would fail to start its own.
    """
    executable = system.chromium_path()
    system.require(pytestconfig, executable, "Debian's Chromium", system.CHROMIUM_INSTALL)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) at a laptop's size."""
    context = chromium.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def phone(chromium: Browser) -> Iterator[Page]:
    """A fresh context at a phone's width."""
    context = chromium.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    page = context.new_page()
    yield page
    context.close()


def shoot(page: Page, name: str, **kwargs: Any) -> Path:
    """Save a full-page screenshot as test-artifacts/<name>.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True, **kwargs)
    return path
