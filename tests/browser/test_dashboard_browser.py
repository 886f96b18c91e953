"""The dashboard in a real browser: sign in, see a dead letter, re-queue it and see it leave,
force a sync; every page photographed, at a laptop's and at a phone's width."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Page, expect

from hlfsync import settings
from hlfsync import testing as f
from hlfsync.api import mint_token, sign_in_url, signin
from hlfsync.db import seed
from tests.browser.conftest import shoot
from tests.integration.api.live import LiveServer
from tests.integration.api.world import dead_letter

pytestmark = pytest.mark.browser
SECRET = "browser-test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"


@dataclass
class Demo:
    url: str
    token: str
    coordinator: uuid.UUID
    letters: dict[int, uuid.UUID]  # dead letter -> mentor


@pytest.fixture
def demo(db_url: str, conn: psycopg.Connection[Any]) -> Iterator[Demo]:
    """Sample data as `hlfsync seed` makes it, two dead letters for one coordinator's mentors,
    and the API served on 127.0.0.1."""
    seed.seed(conn, mentors=80, orgs=2, today=date.today())
    coordinator, mentors = _a_coordinator_with_mentors(conn)
    letters: dict[int, uuid.UUID] = {}
    for mentor in mentors[:2]:
        queued = f.one(
            conn, "SELECT sync_queue_id FROM enqueue_sync(ARRAY[%s]::uuid[], 'force', 10, 'demo')",
            [mentor],
        )  # fmt: skip
        letters[dead_letter(conn, queued, "retries_exhausted: HTTP 503 from Dynamics")] = mentor
    conf = settings.load(database_url=db_url, jwt_secret=SECRET, db_pool_size=4)
    with LiveServer(conf) as server:
        yield Demo(server.url, mint_token(SECRET, coordinator), coordinator, letters)


def _a_coordinator_with_mentors(conn: psycopg.Connection[Any]) -> tuple[uuid.UUID, list[Any]]:
    row = conn.execute(
        "SELECT cc.user_id, array_agg(DISTINCT cm.mentor_id ORDER BY cm.mentor_id)"
        " FROM coordinator_chapters cc JOIN chapter_memberships cm USING (chapter_id)"
        " JOIN peer_mentors p ON p.id = cm.mentor_id AND p.dynamics_contact_id IS NOT NULL"
        " GROUP BY cc.user_id ORDER BY count(*) DESC LIMIT 1"
    ).fetchone()
    assert row is not None
    return row[0], list(row[1])


def _sign_in_by_pasting(page: Page, demo: Demo) -> None:
    page.goto(f"{demo.url}/dashboard")
    expect(page).to_have_url(re.compile(r"/dashboard/login$"))
    shoot(page, "01-sign-in")
    page.get_by_label("Access token").fill(demo.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def test_a_coordinator_requeues_a_dead_letter_and_forces_a_sync(
    page: Page, demo: Demo, conn: psycopg.Connection[Any]
) -> None:
    """Sign in with a pasted token, see the dead letter, re-queue it and watch it leave the open
    list, then force a sync from the mentors page; each step lands in the database."""
    _sign_in_by_pasting(page, demo)
    shoot(page, "02-overview")

    page.get_by_role("link", name="Dead letters").first.click()
    letter = min(demo.letters)
    row = page.locator(f"#letter-{letter}")
    expect(row).to_be_visible()
    expect(row).to_contain_text("retries_exhausted")
    shoot(page, "03-dead-letters")
    row.get_by_role("button", name="Re-queue").click()
    expect(page.get_by_role("status")).to_have_text("Dead letter re-queued.")
    expect(page.locator(f"#letter-{letter}")).to_have_count(0)
    expect(page.locator(f"#letter-{max(demo.letters)}")).to_be_visible()
    shoot(page, "04-dead-letter-requeued")
    status = conn.execute("SELECT status FROM dead_letter_queue WHERE id = %s", [letter])
    assert status.fetchone() == ("requeued",)

    page.get_by_role("link", name="Mentors").first.click()
    expect(page.get_by_role("heading", name="Mentors")).to_be_visible()
    shoot(page, "05-mentors")
    first = page.locator("table tbody tr").first
    mentor = first.get_by_role("link").first.get_attribute("href")
    assert mentor is not None
    first.get_by_role("button", name="Force sync").click()
    expect(page.get_by_role("status")).to_have_text(re.compile("Sync queued"))
    mentor_id = mentor.rsplit("/", 1)[1]
    queued = conn.execute(
        "SELECT source, status FROM sync_queue WHERE mentor_id = %s ORDER BY id DESC LIMIT 1",
        [mentor_id],
    )
    assert queued.fetchone() == ("force", "pending")
    shoot(page, "06-force-synced")

    page.goto(f"{demo.url}/dashboard/mentors/{demo.letters[max(demo.letters)]}")
    expect(page.get_by_role("heading", name="Timeline")).to_be_visible()
    expect(page.get_by_text("Dead letter #")).to_be_visible()
    shoot(page, "07-mentor-timeline")


def test_the_dashboard_reads_at_a_phones_width(
    phone: Page, demo: Demo, conn: psycopg.Connection[Any]
) -> None:
    """Signed in through the printed one-time link, every page fits a 390 px screen without
    sideways scrolling."""
    phone.goto(sign_in_url(demo.url, signin.issue(conn, demo.coordinator, 60)))
    expect(phone.get_by_role("heading", name="Overview")).to_be_visible()
    pages = {
        "08-phone-overview": "/dashboard",
        "09-phone-mentors": "/dashboard/mentors",
        "10-phone-dead-letters": "/dashboard/dead-letters",
        "11-phone-timeline": f"/dashboard/mentors/{demo.letters[min(demo.letters)]}",
    }
    for name, path in pages.items():
        phone.goto(demo.url + path)
        overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        shoot(phone, name)
        assert overflow <= 0, f"{path} scrolls sideways by {overflow} px"
