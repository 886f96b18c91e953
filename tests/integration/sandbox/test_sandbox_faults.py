"""Fault injection: every rule field and top-level knob of POST /_sandbox/faults."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from hlfsync_sandbox.client import AdminClient

FIELD = "hlf_listedonwebsite"


@pytest.fixture
def contact(admin: AdminClient) -> str:
    cid = str(uuid.uuid4())
    admin.put_contacts([{"contactid": cid, "listed": True}])
    return cid


def patch(
    api: httpx.Client, cid: str, listed: bool = False, timeout: float = 10.0
) -> httpx.Response:
    return api.patch(
        f"contacts({cid})", json={FIELD: listed}, headers={"If-Match": "*"}, timeout=timeout
    )


def test_status_rule_fires_times_then_stops(
    api: httpx.Client, admin: AdminClient, contact: str
) -> None:
    """A rule with times=2 answers its status twice, then requests pass; the log names the rule."""
    admin.set_faults([{"method": "PATCH", "status": 503, "times": 2}])
    codes = [patch(api, contact).status_code for _ in range(3)]
    assert codes == [503, 503, 204]
    assert admin.faults()["rules"][0]["remaining"] == 0
    faults = [entry["fault"] for entry in admin.requests(method="PATCH")]
    assert faults == ["rule:0", "rule:0", None]


def test_dataverse_5xx_body_is_an_odata_error(
    api: httpx.Client, admin: AdminClient, contact: str
) -> None:
    """An injected 500 on the Web API carries Dataverse's JSON error body."""
    admin.set_faults([{"method": "PATCH", "status": 500}])
    response = patch(api, contact)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "0x80040216"


def test_probability_is_reproducible_with_a_seed(
    api: httpx.Client, admin: AdminClient, contact: str
) -> None:
    """The same seed gives the same sequence of faults; about `probability` of requests fail."""
    rule = {"method": "PATCH", "status": 502, "probability": 0.5}
    runs = []
    for _ in range(2):
        admin.set_faults([rule], seed=42)
        runs.append([patch(api, contact).status_code for _ in range(30)])
    assert runs[0] == runs[1]
    assert 5 < runs[0].count(502) < 25


def test_retry_after_on_429(api: httpx.Client, admin: AdminClient, contact: str) -> None:
    """A 429 rule with retry_after sends Retry-After and a service-protection error body."""
    admin.set_faults([{"method": "PATCH", "status": 429, "retry_after": 3, "times": 1}])
    response = patch(api, contact)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert response.json()["error"]["code"] == "0x80072322"


def test_contactid_targets_one_contact(api: httpx.Client, admin: AdminClient) -> None:
    """A rule with contactid fails that contact only; others go through."""
    good, bad = str(uuid.uuid4()), str(uuid.uuid4())
    admin.put_contacts([{"contactid": c, "listed": True} for c in (good, bad)])
    admin.set_faults([{"method": "PATCH", "status": 400, "contactid": bad}])
    assert patch(api, bad).status_code == 400
    assert patch(api, good).status_code == 204


def test_path_prefix_and_regex(api: httpx.Client, admin: AdminClient, contact: str) -> None:
    """`path` matches as a prefix, or as a regular expression when it starts with ^."""
    admin.set_faults([{"path": "/api/data/v9.2/WhoAmI", "status": 500}])
    assert api.get("WhoAmI").status_code == 500
    assert patch(api, contact).status_code == 204
    admin.set_faults([{"path": r"^/api/data/v9\.2/contacts\(", "status": 500}])
    assert api.get("WhoAmI").status_code == 200
    assert patch(api, contact).status_code == 500


def test_timeout_hangs_until_the_client_gives_up(
    api: httpx.Client, admin: AdminClient, contact: str
) -> None:
    """status=timeout sends nothing; a client with a short timeout raises ReadTimeout."""
    admin.set_faults([{"method": "PATCH", "status": "timeout", "times": 1}])
    with pytest.raises(httpx.ReadTimeout):
        patch(api, contact, timeout=0.3)
    deadline = time.monotonic() + 5
    while not admin.requests(method="PATCH") and time.monotonic() < deadline:
        time.sleep(0.01)  # the server notices the disconnect just after the client leaves
    (entry,) = admin.requests(method="PATCH")
    assert entry["status"] == 0
    assert entry["fault"] == "rule:0"
    assert patch(api, contact).status_code == 204


def test_timeout_bounded_by_hang_s_answers_504(
    api: httpx.Client, admin: AdminClient, contact: str
) -> None:
    """With hang_s the hang ends in a gateway-style 504."""
    admin.set_faults([{"method": "PATCH", "status": "timeout", "hang_s": 0.1}])
    response = patch(api, contact)
    assert response.status_code == 504
    assert response.headers["content-type"] == "text/html"


def test_reset_drops_the_connection_mid_response(
    api: httpx.Client, admin: AdminClient, contact: str
) -> None:
    """status=reset closes the connection mid-body: httpx raises RemoteProtocolError."""
    admin.set_faults([{"method": "PATCH", "status": "reset", "times": 1}])
    with pytest.raises(httpx.RemoteProtocolError):
        patch(api, contact)
    assert admin.requests(method="PATCH")[0]["status"] == 0
    assert patch(api, contact).status_code == 204


def test_body_and_content_type_junk(api: httpx.Client, admin: AdminClient, contact: str) -> None:
    """A rule's body and content_type replace the error body: HTML pages, truncated JSON."""
    page = "<html><body>Bad Gateway</body></html>"
    admin.set_faults(
        [
            {
                "method": "PATCH",
                "status": 502,
                "body": page,
                "content_type": "text/html",
                "times": 1,
            },
            {"method": "PATCH", "status": 200, "body": '{"value": [', "times": 1},
        ]
    )
    first = patch(api, contact)
    assert (first.status_code, first.text, first.headers["content-type"]) == (
        502,
        page,
        "text/html",
    )
    second = patch(api, contact)
    assert second.status_code == 200
    with pytest.raises(ValueError, match="Expecting"):
        second.json()


def test_latency_is_added(api: httpx.Client, admin: AdminClient) -> None:
    """latency_ms delays every emulated response by at least that much."""
    admin.set_faults(latency_ms=150)
    started = time.perf_counter()
    assert api.get("WhoAmI").status_code == 200
    assert time.perf_counter() - started >= 0.15


def test_rate_limit_answers_429_with_retry_after(api: httpx.Client, admin: AdminClient) -> None:
    """Past rate_limit_per_s the Web API answers 429 with Retry-After, like service protection."""
    admin.set_faults(rate_limit_per_s=5)
    codes = [api.get("WhoAmI") for _ in range(8)]
    throttled = [response for response in codes if response.status_code == 429]
    assert 1 <= len(throttled) <= 3
    assert throttled[0].headers["Retry-After"] == "1"
    assert throttled[0].json()["error"]["code"] == "0x80072322"
    assert {entry["fault"] for entry in admin.requests(kind="dataverse")} >= {"rate_limit"}


def test_read_lag_shows_old_state(api: httpx.Client, admin: AdminClient, contact: str) -> None:
    """With read_lag_ms, GETs see contacts as they were that long ago (eventual consistency)."""
    admin.set_faults(read_lag_ms=60_000)
    assert patch(api, contact).status_code == 204
    newcomer = str(uuid.uuid4())
    assert api.patch(f"contacts({newcomer})", json={FIELD: True}).status_code == 204
    rows = api.get(f"contacts?$select=contactid,{FIELD}").json()["value"]
    assert [(row["contactid"], row[FIELD]) for row in rows] == [(contact, True)]
    assert api.get(f"contacts({contact})").json()[FIELD] is True
    admin.set_faults(read_lag_ms=0)
    assert api.get(f"contacts({contact})").json()[FIELD] is False


def test_bad_rule_is_422(admin: AdminClient) -> None:
    """A fault body the sandbox cannot use is refused with 422 and the reason."""
    with pytest.raises(httpx.HTTPStatusError) as refused:
        admin.set_faults([{"method": "PATCH", "status": "sometimes"}])
    assert refused.value.response.status_code == 422


def test_delete_faults_clears_them(api: httpx.Client, admin: AdminClient) -> None:
    """DELETE /_sandbox/faults removes every rule and knob."""
    admin.set_faults([{"status": 500}], latency_ms=10)
    admin.clear_faults()
    assert api.get("WhoAmI").status_code == 200
    assert admin.faults()["rules"] == []
