"""The sandbox as Dataverse answers: stopped batches, Content-ID echo, service protection limits,
alternate keys and contract drift."""

from __future__ import annotations

import re
import uuid

import httpx
from tests.integration.sandbox.test_sandbox_batch import (
    FIELD,
    batch,
    changeset,
    patch_part,
    statuses,
)

from hlfsync_sandbox.client import AdminClient
from hlfsync_sandbox.server import SandboxServer


def _ids(response: httpx.Response) -> list[str]:
    return re.findall(r"Content-ID: (\S+)", response.text)


def test_a_batch_without_continue_on_error_takes_the_failing_status(
    api: httpx.Client, admin: AdminClient
) -> None:
    """No continue-on-error: the outer status is the failing part's, the body holds the answers
    up to it, and the parts after it never ran."""
    known = [str(uuid.uuid4()) for _ in range(3)]
    admin.put_contacts([{"contactid": c, "listed": True} for c in known])
    missing = str(uuid.uuid4())
    urls = [f"contacts({c})" for c in (known[0], missing, known[1], known[2])]
    response = batch(api, [patch_part(url, False, i) for i, url in enumerate(urls, 1)])
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("multipart/mixed")
    assert statuses(response) == [204, 404]
    listed = {c["contactid"]: c["listed"] for c in admin.contacts()}
    assert listed == {known[0]: False, known[1]: True, known[2]: True}


def test_content_id_is_echoed_only_inside_change_sets(
    api: httpx.Client, admin: AdminClient
) -> None:
    """Outside a change set no Content-ID comes back (match by position); inside, it does."""
    contact = str(uuid.uuid4())
    admin.put_contacts([{"contactid": contact, "listed": True}])
    plain = batch(api, [patch_part(f"contacts({contact})", False, 7)],
                  prefer="odata.continue-on-error")  # fmt: skip
    assert plain.status_code == 200
    assert _ids(plain) == []
    inside = batch(api, [changeset("cs_1", [patch_part(f"contacts({contact})", True, 8)])])
    assert _ids(inside) == ["8"]


def test_429_always_carries_whole_seconds(api: httpx.Client, admin: AdminClient) -> None:
    """A 429 rule without retry_after still sends Retry-After; a fraction rounds up."""
    admin.set_faults([{"path": "/api/data/v9.2/WhoAmI", "status": 429, "times": 1},
                      {"path": "/api/data/v9.2/WhoAmI", "status": 429, "retry_after": 0.2,
                       "times": 1}])  # fmt: skip
    first, second = api.get("WhoAmI"), api.get("WhoAmI")
    assert first.status_code == second.status_code == 429
    assert first.headers["Retry-After"] == "5"
    assert second.headers["Retry-After"] == "1"


def test_service_protection_counts_requests_in_a_sliding_window(
    api: httpx.Client, admin: AdminClient
) -> None:
    """Past the window's request limit: 429 0x80072322 with whole-second Retry-After, and each
    request sent while throttled pushes the wait further out."""
    admin.set_faults(service_protection={"requests": 3, "window_s": 60, "penalty_s": 2})
    answers = [api.get("WhoAmI") for _ in range(6)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429, 429]
    waits = [int(a.headers["Retry-After"]) for a in answers[3:]]
    assert waits[0] >= 59
    assert waits[0] < waits[1] < waits[2]
    assert answers[3].json()["error"]["code"] == "0x80072322"
    assert "over time window of 60 seconds" in answers[3].json()["error"]["message"]


def test_service_protection_counts_execution_time(api: httpx.Client, admin: AdminClient) -> None:
    """Slow calls use up the window's execution time: 429 0x80072321 (combined execution time)."""
    admin.set_faults(latency_ms=60, service_protection={"execution_ms": 100, "window_s": 60})
    codes = [api.get("WhoAmI") for _ in range(4)]
    throttled = [c for c in codes if c.status_code == 429]
    assert throttled
    assert throttled[0].json()["error"]["code"] == "0x80072321"
    assert codes[0].status_code == 200


def test_service_protection_can_be_turned_off(api: httpx.Client, admin: AdminClient) -> None:
    """`service_protection: null` leaves only `rate_limit_per_s` (an isolated benchmark figure)."""
    admin.set_faults(service_protection=None)
    assert admin.faults()["service_protection"] is None
    assert api.get("WhoAmI").status_code == 200


def test_alternate_key_addresses_a_contact_and_answers_its_id(
    api: httpx.Client, admin: AdminClient
) -> None:
    """PATCH contacts(hlf_mentornumber='…') with return=representation: 200 with the contactid;
    an unknown value is a 404; an attribute that is no alternate key is a 400."""
    contact = str(uuid.uuid4())
    admin.put_contacts([{"contactid": contact, "listed": True, "hlf_mentornumber": "O'Brien"}])
    headers = {"If-Match": "*", "Prefer": "return=representation"}
    ok = api.patch("contacts(hlf_mentornumber='O''Brien')?$select=contactid",
                   json={FIELD: False}, headers=headers)  # fmt: skip
    assert ok.status_code == 200
    assert ok.json()["contactid"] == contact
    assert admin.contacts()[0]["listed"] is False
    gone = api.patch("contacts(hlf_mentornumber='nobody')", json={FIELD: True}, headers=headers)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "0x80040217"
    wrong = api.patch("contacts(fullname='x')", json={FIELD: True}, headers=headers)
    assert wrong.status_code == 400


def test_drift_renames_the_field_and_drops_the_entity_set_until_cleared(
    api: httpx.Client, admin: AdminClient
) -> None:
    """Drift rules: the old field name is unknown (PATCH and $select), another entity set is
    gone; clearing the faults restores the contract."""
    contact = str(uuid.uuid4())
    admin.put_contacts([{"contactid": contact, "listed": True}])
    admin.set_faults(drift={"listing_field": "hlf_listed_v2"})
    patch = api.patch(f"contacts({contact})", json={FIELD: False}, headers={"If-Match": "*"})
    assert patch.status_code == 400
    assert patch.json()["error"]["code"] == "0x80048d19"
    probe = api.get(f"contacts?$select={FIELD}&$top=1")
    assert probe.status_code == 400
    assert "Could not find a property named" in probe.json()["error"]["message"]
    assert api.get("contacts?$select=hlf_listed_v2&$top=1").status_code == 200
    admin.set_faults(drift={"entity_set": "hlf_people"})
    dropped = api.get(f"contacts?$select={FIELD}&$top=1")
    assert dropped.status_code == 404
    assert dropped.json()["error"]["code"] == "0x8006088a"
    admin.clear_faults()
    assert api.get(f"contacts?$select={FIELD}&$top=1").status_code == 200


def test_drift_breaks_the_webhook_url(
    sandbox: SandboxServer, http: httpx.Client, admin: AdminClient
) -> None:
    """`drift.webhook: gone` answers 410 and `not_found` 404 before any signature check."""
    admin.set_faults(drift={"webhook": "gone"})
    assert http.post(f"{sandbox.url}/webhook", content=b"{}").status_code == 410
    admin.set_faults(drift={"webhook": "not_found"})
    assert http.post(f"{sandbox.url}/webhook", content=b"{}").status_code == 404


def test_the_window_slides_and_the_penalty_resets_once_the_client_waits() -> None:
    """Pure window arithmetic: the oldest request leaving the window frees a slot; a client that
    waits out Retry-After starts again without penalty."""
    from hlfsync_sandbox.faults import ServiceProtection, ServiceProtectionConfig

    limits = ServiceProtection(ServiceProtectionConfig(requests=2, window_s=10, penalty_s=1))
    assert limits.admit(0.0) is None
    assert limits.admit(1.0) is None
    assert limits.admit(2.0) == (8.0, "requests")  # the first leaves the window at 10
    assert limits.admit(3.0) == (8.0, "requests")  # sent while throttled: pushed back 1 s
    assert limits.admit(4.0) == (8.0, "requests")  # and 1 s more
    assert limits.admit(13.0) is None  # waited it out: both old requests have left
    assert limits.admit(13.5) is None
    assert limits.admit(14.0) == (9.0, "requests")  # a new throttle, no penalty carried over


def test_a_burst_sent_while_throttled_waits_at_most_one_more_window() -> None:
    """Fifty calls in flight when the limit trips all come back 429 and each pushes the end
    back, but the wait never grows past one window beyond the moment the window frees up."""
    from hlfsync_sandbox.faults import ServiceProtection, ServiceProtectionConfig

    limits = ServiceProtection(ServiceProtectionConfig(requests=1, window_s=10, penalty_s=1))
    assert limits.admit(0.0) is None
    waits = [verdict[0] for t in range(50) if (verdict := limits.admit(1.0 + t / 100))]
    assert len(waits) == 50
    assert waits == sorted(waits)
    assert max(waits) == 19.0  # freed at 10, plus one window, seen from 1.0-1.49


def test_execution_time_is_each_calls_share_of_the_server() -> None:
    """Two calls that overlap each had the server to themselves for half of the overlap."""
    from hlfsync_sandbox.faults import SharedTime

    shared = SharedTime()
    first = shared.start(0.0)
    second = shared.start(1.0)
    assert shared.finish(3.0, first) == 2.0  # alone for 1 s, then half of 2 s
    assert shared.finish(4.0, second) == 2.0  # half of 2 s, then alone for 1 s
    assert shared.in_flight == 0
