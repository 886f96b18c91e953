"""Is the website right? In a real browser: the verdict column, the filters and the search, the
24-hour chart on the overview, the Help page; photographed at a laptop's and a phone's width."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Locator, Page, expect

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
class Lived:
    url: str
    token: str
    out_of_step: str  # names
    dead: str
    pending: str
    chapter: str
    conn: psycopg.Connection[Any]
    user: uuid.UUID

    def sign_in(self) -> str:
        """A fresh one-time sign-in link (a code works once)."""
        return sign_in_url(self.url, signin.issue(self.conn, self.user, 60))


def _coordinator(conn: psycopg.Connection[Any]) -> tuple[uuid.UUID, uuid.UUID, list[Any]]:
    row = conn.execute(
        "SELECT cc.user_id, min(cc.chapter_id::text)::uuid,"
        " array_agg(DISTINCT cm.mentor_id ORDER BY cm.mentor_id)"
        " FROM coordinator_chapters cc JOIN chapter_memberships cm USING (chapter_id)"
        " JOIN peer_mentors p ON p.id = cm.mentor_id AND p.dynamics_contact_id IS NOT NULL"
        " GROUP BY cc.user_id ORDER BY count(*) DESC LIMIT 1"
    ).fetchone()
    assert row is not None
    return row[0], row[1], list(row[2])


def _name(conn: psycopg.Connection[Any], mentor: Any, name: str) -> str:
    conn.execute("UPDATE peer_mentors SET full_name = %s WHERE id = %s", [name, mentor])
    return name


@pytest.fixture
def lived(db_url: str, conn: psycopg.Connection[Any]) -> Iterator[Lived]:
    """Seeded mentors as a reconciliation confirmed them; one out of step, one dead-lettered,
    one pending; a few hours of calls; the API served on 127.0.0.1."""
    seed.seed(conn, mentors=80, orgs=2, today=date.today())
    conn.execute(
        "UPDATE listing_confirmations c SET listed = p.status = 'active',"
        " confirmed_at = now() - interval '5 hours', confirmed_by = 'reconcile'"
        " FROM peer_mentors p WHERE p.id = c.mentor_id AND p.dynamics_contact_id IS NOT NULL"
    )
    user, chapter, mentors = _coordinator(conn)
    oos, dead, pending = mentors[0], mentors[1], mentors[2]
    conn.execute(
        "UPDATE listing_confirmations SET listed = NOT should_list,"
        " differs_since = now() - interval '2 hours' WHERE mentor_id = %s",
        [oos],
    )
    queued = f.one(
        conn, "SELECT sync_queue_id FROM enqueue_sync(ARRAY[%s]::uuid[], 'force', 10, 't')",
        [dead],
    )  # fmt: skip
    dead_letter(conn, queued, "retries_exhausted: HTTP 503 from Dynamics")
    conn.execute("SELECT enqueue_sync(ARRAY[%s]::uuid[], 'force', 10, 't')", [pending])
    conn.execute(
        "INSERT INTO audit_log (occurred_at, mentor_id, event_type, details)"
        " SELECT now() - (n %% 6) * interval '1 hour', m, 'sync_succeeded', '{}'"
        " FROM unnest(%s::uuid[]) WITH ORDINALITY AS x (m, n)",
        [mentors],
    )
    names = (
        _name(conn, oos, "Zelda Outofstep"),
        _name(conn, dead, "Yngve Deadletter"),
        _name(conn, pending, "Xenia Pending"),
    )
    chapter_name = f.one(conn, "SELECT name FROM chapters WHERE id = %s", [chapter])
    conf = settings.load(database_url=db_url, jwt_secret=SECRET, db_pool_size=4)
    with LiveServer(conf) as server:
        yield Lived(server.url, mint_token(SECRET, user), *names, chapter_name, conn, user)


def _names(page: Page) -> Locator:
    return page.locator("table.mentors tbody td[data-label=Name]")


def _loaded(page: Page, query: str) -> None:
    """Waits for the page a filter's click led to: the click returns once the navigation
    commits, before the table is parsed (CI once read an empty list there)."""
    expect(page).to_have_url(re.compile(query))
    page.wait_for_load_state("load")


def test_the_overview_draws_the_chart_and_counts_the_verdicts(page: Page, lived: Lived) -> None:
    """The overview shows the caller's verdict counts and a 24-hour SVG chart with bars and a
    lag line's legend, drawn by the server (the page has no script)."""
    page.goto(lived.sign_in())
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    chart = page.locator("svg.chart")
    expect(chart).to_be_visible()
    box = chart.bounding_box()
    assert box is not None
    assert box["width"] > 300
    assert box["height"] > 80
    assert page.locator("svg.chart rect.bar.succeeded").count() >= 5
    expect(page.locator('dd[data-verdict="out_of_step"]')).to_have_text("1")
    expect(page.locator('dd[data-verdict="dead_lettered"]')).to_have_text("1")
    expect(page.locator('dd[data-verdict="pending"]')).to_have_text("1")
    assert page.locator("script").count() == 0
    shoot(page, "12-overview-chart")


def test_filters_search_and_the_verdict_column(page: Page, lived: Lived) -> None:
    """Choosing a verdict, a status or a chapter and searching by name narrows the list to the
    matching mentors; each row says what Dynamics confirmed and the verdict."""
    page.goto(lived.sign_in())
    page.get_by_role("link", name="Mentors").first.click()
    expect(page.get_by_role("columnheader", name="Verdict")).to_be_visible()
    shoot(page, "13-mentors-verdicts")

    page.get_by_label("Website").select_option("out_of_step")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"verdict=out_of_step"))
    expect(_names(page)).to_have_text([lived.out_of_step])
    row = page.locator("table.mentors tbody tr").first
    expect(row.locator("td[data-label=Verdict]")).to_contain_text("out of step")
    expect(row.locator("td[data-label=Verdict]")).to_contain_text("since")
    expect(row.locator("td[data-label=Website]")).to_contain_text("reconciliation")
    shoot(page, "14-mentors-out-of-step")

    page.get_by_label("Website").select_option("dead_lettered")
    page.get_by_role("button", name="Filter").click()
    expect(_names(page)).to_have_text([lived.dead])

    page.get_by_label("Website").select_option("")
    page.get_by_label("Name").fill("xenia pend")
    page.get_by_role("button", name="Filter").click()
    expect(_names(page)).to_have_text([lived.pending])
    expect(page.locator("table.mentors tbody td[data-label=Verdict]")).to_contain_text("pending")
    shoot(page, "15-mentors-search")

    page.get_by_label("Name").fill("")
    page.get_by_label("Status").select_option("paused")
    page.get_by_label("Chapter").select_option(label=lived.chapter)
    page.get_by_role("button", name="Filter").click()
    _loaded(page, r"status=paused")
    statuses = page.locator("table.mentors tbody td[data-label=Status]").all_inner_texts()
    assert statuses
    assert set(statuses) == {"paused"}
    page.get_by_role("link", name="Clear").click()
    _loaded(page, r"/dashboard/mentors$")
    assert _names(page).count() > 3


def test_the_help_page_is_the_coordinators_guide(page: Page, lived: Lived) -> None:
    """Help, from the navigation, explains the verdicts, the lag and Power Pages' cache."""
    page.goto(lived.sign_in())
    page.get_by_role("link", name="Help").click()
    expect(page.get_by_role("heading", name="A guide for coordinators")).to_be_visible()
    expect(page.get_by_role("heading", name="Is the website right? The verdicts")).to_be_visible()
    expect(page.get_by_text("up to 15 minutes")).to_be_visible()
    expect(page.get_by_role("cell", name="out of step", exact=True)).to_be_visible()
    shoot(page, "16-help")


def test_the_new_pages_read_at_a_phones_width(phone: Page, lived: Lived) -> None:
    """The overview with its chart, the filtered mentors and Help fit a 390 px screen."""
    phone.goto(lived.sign_in())
    for name, path in {
        "17-phone-overview-chart": "/dashboard",
        "18-phone-mentors-filters": "/dashboard/mentors?verdict=in_step",
        "19-phone-help": "/dashboard/help",
    }.items():
        phone.goto(lived.url + path)
        overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        shoot(phone, name)
        assert overflow <= 0, f"{path} scrolls sideways by {overflow} px"
