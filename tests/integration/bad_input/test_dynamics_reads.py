"""Bad Dynamics answers to WhoAmI, the token authority and the paged GET of reconciliation:
an inconclusive check, held operations, a clear error; no alarm and no dead letter by mistake."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from hlfsync.core.errors import Permanent, SyncFailure, Transient
from hlfsync.db import reconcile as reconcile_mod
from hlfsync.testing import one
from hlfsync.worker.health import check_credentials
from tests.integration.bad_input import sweep

WHOAMI_OFF_CONTRACT = "HTTP 200: WhoAmI does not follow the contract: WhoAmI answer"

WHOAMI = {  # the answer → the WhoAmI check's detail and its failure class
    "an empty object": (200, "{}", None, f"{WHOAMI_OFF_CONTRACT} has no UserId", "permanent"),
    "UserId a number": (200, '{"UserId": 42}', None, f"{WHOAMI_OFF_CONTRACT} has no UserId",
                        "permanent"),
    "a JSON list": (200, "[]", None, f"{WHOAMI_OFF_CONTRACT} is not a JSON object", "permanent"),
    "an HTML page": (200, sweep.HTML_PAGE, "text/html",
                     "HTTP 200: expected JSON, got a text/html body", "transient"),
    "truncated JSON": (200, '{"UserId": "', None, "HTTP 200: truncated or invalid JSON body",
                       "transient"),
    "an empty body": (200, "", None, "HTTP 200: expected JSON, got an empty body", "transient"),
    "JSON sent as text/plain": (200, '{"UserId": "x"}', "text/plain",
                                "HTTP 200: expected JSON, got a text/plain body", "transient"),
    "500 with an HTML page": (500, sweep.HTML_PAGE, "text/html",
                              "HTTP 500: server did not complete the request: text/html body",
                              "transient"),
}  # fmt: skip

SUMMARY_KEYS = ("ok", "auth", "contract", "detail", "alerted", "recovered")


@pytest.mark.parametrize("case", WHOAMI)
async def test_a_malformed_whoami_is_an_inconclusive_check_not_a_credential_alarm(
    rig: sweep.Rig, case: str
) -> None:
    """The health check's WhoAmI answered with junk: an inconclusive WhoAmI check saying what
    came back, no credential or contract alert, the queue untouched; once WhoAmI is sane the
    check and the sync pass."""
    status, body, content_type, detail, failure = WHOAMI[case]
    conn, admin = rig.conn, rig.admin
    team = sweep.team(conn, admin, 2)
    sweep.pause(conn, *team.mentors)
    rule: dict[str, Any] = {"method": "GET", "path": "/api/data/v9.2/WhoAmI", "status": status,
                            "body": body}  # fmt: skip
    if content_type:
        rule["content_type"] = content_type
    admin.set_faults([rule])
    worker = await rig.engine()
    was = sweep.snapshot(conn)
    ctx = worker.worker.ctx
    result = await check_credentials(worker.pool, worker.client, ctx.breaker, rig.clock)
    # Issue 14: the health check runs named checks. A junk WhoAmI is neither a refusal (auth)
    # nor contract drift: the one inconclusive check, the summary quoting it, nothing alerted.
    assert {k: result[k] for k in SUMMARY_KEYS} == {
        "ok": False, "auth": False, "contract": False, "detail": detail, "alerted": False,
        "recovered": False,
    }  # fmt: skip
    checks = {c["name"]: c for c in result["checks"]}
    assert list(checks)[:2] == ["token", "whoami"]
    assert checks["whoami"] == {"name": "whoami", "verdict": "inconclusive", "detail": detail,
                                "failure": failure}  # fmt: skip
    assert sweep.one_line(checks["whoami"]["detail"])
    assert {c["verdict"] for n, c in checks.items() if n != "whoami"} == {"pass"}
    assert sweep.snapshot(conn) == was
    assert one(conn, "SELECT count(*) FROM alerts WHERE id > %s"
               " AND kind IN ('auth_failure', 'contract_failure')",
               [rig.watch.marks["alerts"]]) == 0  # fmt: skip
    admin.clear_faults()
    result = await check_credentials(worker.pool, worker.client, ctx.breaker, rig.clock)
    assert result["ok"] is True
    assert {c["verdict"] for c in result["checks"]} == {"pass"}
    await sweep.cycles(worker, rig.clock, rounds=2)
    assert sweep.latest(conn, team) == dict.fromkeys(team.mentors, ("succeeded", 1))
    assert rig.watch.leaks(conn) == set()


REFUSAL_QUOTING_THE_SECRET = json.dumps({
    "error": "invalid_client",
    "error_description": f"AADSTS7000215: Invalid client secret provided: {sweep.CLIENT_SECRET}\r\n"
                         "Trace ID: 0000\r\nCorrelation ID: 1111",
    "error_codes": [7000215],
})  # fmt: skip

AUTHORITY = {
    "token: an HTML page": (
        {"kind": "token", "status": 200, "body": sweep.HTML_PAGE, "content_type": "text/html"},
        "transient: token authority answered with something other than JSON",
    ),
    "token: 500 with an HTML page": (  # Retry-After 0, or msal holds the answer 5 s
        {
            "kind": "token",
            "status": 500,
            "body": sweep.HTML_PAGE,
            "content_type": "text/html",
            "retry_after": 0,
        },
        "transient: token authority answered with a server error",
    ),
    "token: an empty object": (
        {"kind": "token", "status": 200, "body": "{}"},
        "auth: token request refused: no access_token in the answer",
    ),
    "token: access_token a number": (
        {"kind": "token", "status": 200, "body": '{"access_token": 5, "expires_in": 3600}'},
        "auth: token request refused: no access_token in the answer",
    ),
    "token: a JSON list": (
        {"kind": "token", "status": 200, "body": "[]"},
        "auth: token authority answered in an unexpected shape",
    ),
    "token: a JSON string": (
        {"kind": "token", "status": 200, "body": '"sbx-entra-not-really"'},
        "auth: token authority answered in an unexpected shape",
    ),
    "token: a refusal quoting the client secret": (
        {"kind": "token", "status": 401, "body": REFUSAL_QUOTING_THE_SECRET},
        "auth AADSTS7000215: token request refused: invalid_client (AADSTS7000215: Invalid "
        "client secret provided: ***)",
    ),
    "discovery: an HTML page": (
        {"kind": "discovery", "status": 200, "body": sweep.HTML_PAGE, "content_type": "text/html"},
        "transient: token authority answered with something other than JSON",
    ),
    "discovery: an empty object": (
        {"kind": "discovery", "status": 200, "body": "{}"},
        "auth: token authority answered in an unexpected shape (KeyError)",
    ),
    "discovery: a JSON list": (
        {"kind": "discovery", "status": 200, "body": "[]"},
        "auth: token authority answered in an unexpected shape",
    ),
}


@pytest.mark.parametrize("case", AUTHORITY)
async def test_a_malformed_token_authority_holds_everything_and_dead_letters_nothing(
    rig: sweep.Rig, case: str
) -> None:
    """The token endpoint or its discovery document answers junk: every call fails before
    Dynamics; operations are held or retried, never dead-lettered; the check says what is wrong
    (credentials: one administrator alert); the secret appears nowhere; all drains after."""
    rule, detail = AUTHORITY[case]
    conn, admin = rig.conn, rig.admin
    team = sweep.team(conn, admin, 2)
    sweep.pause(conn, *team.mentors)
    admin.set_faults([rule])
    worker = await rig.engine()
    await worker.worker.run_once()
    ctx = worker.worker.ctx
    result = await check_credentials(worker.pool, worker.client, ctx.breaker, rig.clock)
    auth = detail.startswith("auth")
    assert result["ok"] is False
    assert result["detail"].startswith(detail), result["detail"]
    assert sweep.one_line(result["detail"])
    assert result["auth"] is auth  # alerted already by the worker's first refused call
    assert {status for status, _ in sweep.latest(conn, team).values()} == {"pending"}
    assert sweep.letters(conn, team) == {}
    assert sweep.patches(admin, team.pairs[0][1]) + sweep.patches(admin, team.pairs[1][1]) == 0
    alerts = conn.execute(
        "SELECT payload, details->>'detail' FROM alerts WHERE id > %s AND kind = 'auth_failure'",
        [rig.watch.marks["alerts"]],
    ).fetchall()
    assert alerts == ([({"type": "hlf_sync_auth_failure", "contract": "dataverse-v9"},
                        result["detail"])] if auth else [])  # fmt: skip
    admin.clear_faults()
    result = await check_credentials(worker.pool, worker.client, ctx.breaker, rig.clock)
    assert result["ok"] is True
    rig.clock.advance(61)
    await sweep.cycles(worker, rig.clock, rounds=3)
    assert {status for status, _ in sweep.latest(conn, team).values()} == {"succeeded"}
    assert rig.watch.leaks(conn) == set()


PAGES = {
    "an empty object": (200, "{}", None, Permanent,
                        "HTTP 200: page does not follow the contract: page is not an OData "
                        "collection (no `value` array)"),
    "value not a list": (200, '{"value": {"contactid": 1}}', None, Permanent,
                         "HTTP 200: page does not follow the contract: page is not an OData "
                         "collection (no `value` array)"),
    "a JSON list": (200, "[]", None, Permanent,
                    "HTTP 200: page does not follow the contract: page is not an OData "
                    "collection (no `value` array)"),
    "nextLink a number": (200, '{"value": [], "@odata.nextLink": 7}', None, Permanent,
                          "HTTP 200: page does not follow the contract: @odata.nextLink is not "
                          "a string"),
    "nextLink to another host": (
        200, '{"value": [], "@odata.nextLink": "https://evil.example/api/data/v9.2/contacts"}',
        None, Permanent,
        "permanent: page does not follow the contract: @odata.nextLink leaves the organisation",
    ),
    "nextLink back to the first page": (
        200, '{"value": [], "@odata.nextLink": "{first}"}', None, Permanent,
        "permanent: page does not follow the contract: @odata.nextLink repeats a page",
    ),
    "an HTML page": (200, sweep.HTML_PAGE, "text/html", Transient,
                     "HTTP 200: expected JSON, got a text/html body"),
    "truncated JSON": (200, '{"value": [{"contactid": "', None, Transient,
                       "HTTP 200: truncated or invalid JSON body"),
    "an empty body": (200, "", None, Transient, "HTTP 200: expected JSON, got an empty body"),
    "503 with an HTML page": (503, sweep.HTML_PAGE, "text/html", Transient,
                              "HTTP 503: server did not complete the request: text/html body"),
}  # fmt: skip


@pytest.mark.parametrize("case", PAGES)
async def test_a_malformed_listing_page_stops_reconciliation_with_a_clear_error(
    rig: sweep.Rig, case: str
) -> None:
    """Reconciliation reads a page it cannot trust: it stops with the classified failure and
    queues nothing (an unreadable page must not read as "nobody is listed"); the operation
    queued before is still there; on the same pool the next reconciliation works."""
    status, body, content_type, kind, summary = PAGES[case]
    conn, admin = rig.conn, rig.admin
    team = sweep.team(conn, admin, 3)
    waiting, waiting_contact = team.pairs[0]
    sweep.pause(conn, waiting)
    worker = await rig.engine()
    conf = sweep.settings_for(rig.sandbox, "postgresql://unused")
    collection = f"/api/data/v9.2/{conf.dynamics_entity_set}"
    first = f"{rig.sandbox.url}{collection}?$select=contactid,{conf.dynamics_listing_field}"
    rule: dict[str, Any] = {"method": "GET", "path": collection, "status": status,
                            "body": body.replace("{first}", first)}  # fmt: skip
    if content_type:
        rule["content_type"] = content_type
    admin.set_faults([rule])
    was = sweep.snapshot(conn)
    with pytest.raises(SyncFailure) as failed:
        await reconcile_mod.reconcile(
            worker.pool, worker.client, now=rig.clock.now(), dry_run=False, page_size=100
        )
    assert type(failed.value) is kind
    assert failed.value.summary() == summary
    assert sweep.snapshot(conn) == was
    admin.clear_faults()
    report = await reconcile_mod.reconcile(
        worker.pool, worker.client, now=rig.clock.now(), dry_run=False, page_size=100
    )
    assert report.contacts_read == 3
    await sweep.cycles(worker, rig.clock, rounds=2)
    assert sweep.latest(conn, team)[waiting] == ("succeeded", 1)
    assert sweep.listed(admin)[str(waiting_contact)] is False
    assert rig.watch.leaks(conn) == set()


async def test_listing_rows_of_junk_are_skipped_and_counted_not_trusted(rig: sweep.Rig) -> None:
    """Rows without a usable id or listing value are skipped and counted, never read as a
    contact; the operation queued before is untouched."""
    conn, admin = rig.conn, rig.admin
    team = sweep.team(conn, admin, 2)
    waiting, _ = team.pairs[0]
    sweep.pause(conn, waiting)
    worker = await rig.engine()
    conf = sweep.settings_for(rig.sandbox, "postgresql://unused")
    field_name = conf.dynamics_listing_field
    junk = {"value": [{"contactid": "nope", field_name: True},
                      {"contactid": str(uuid.uuid4()), field_name: "yes"},
                      5, None, {field_name: False}, {"contactid": str(uuid.uuid4())}]}  # fmt: skip
    admin.set_faults([{"method": "GET", "path": f"/api/data/v9.2/{conf.dynamics_entity_set}",
                       "status": 200, "body": json.dumps(junk)}])  # fmt: skip
    was = sweep.snapshot(conn)
    report = await reconcile_mod.reconcile(
        worker.pool, worker.client, now=rig.clock.now(), dry_run=True, page_size=100
    )
    assert (report.contacts_read, worker.client.skipped_rows) == (0, 6)
    assert sweep.snapshot(conn) == was
    assert rig.watch.named("dataverse.listings.skipped_rows") == [
        {"event": "dataverse.listings.skipped_rows", "count": 6, "log_level": "warning"}
    ]
    assert rig.watch.leaks(conn) == set()
