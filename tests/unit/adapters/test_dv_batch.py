"""DataverseClient.apply_many: one `$batch` per chunk, one result per change, mixed outcomes."""

from __future__ import annotations

import json

import httpx
import pytest
from _adapter_fakes import (
    ROOT,
    FakeTokens,
    Recorder,
    change,
    client_for,
    odata,
    parse_batch_request,
)

from hlfsync.core.errors import AuthFailure, Permanent, Throttled, Transient

pytestmark = pytest.mark.anyio


def _part(status: int, body: str = "", content_id: str | None = None, **headers: str) -> str:
    cid = f"Content-ID: {content_id}\r\n" if content_id else ""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (
        "--batchresponse_Z\r\n"
        "Content-Type: application/http\r\n"
        f"{cid}"
        "\r\n"
        f"HTTP/1.1 {status} X\r\n"
        f"{head}"
        "\r\n"
        f"{body}\r\n"
    )


def _batch_answer(*parts: str) -> httpx.Response:
    body = "".join(parts) + "--batchresponse_Z--\r\n"
    return httpx.Response(
        200,
        content=body.encode(),
        headers={"content-type": "multipart/mixed; boundary=batchresponse_Z"},
    )


def _odata_part(
    status: int, code: str, retry_after: str | None = None, content_id: str | None = None
) -> str:
    headers = {"Content-Type": "application/json; odata.metadata=minimal"}
    if retry_after:
        headers["Retry-After"] = retry_after
    body = json.dumps({"error": {"code": code, "message": "m"}})
    return _part(status, body, content_id, **headers)


async def test_batch_request_is_one_multipart_post_without_changesets() -> None:
    """apply_many POSTs multipart/mixed to $batch, continue-on-error, one PATCH part per change."""
    changes = [change("remove"), change("restore")]
    recorder = Recorder(_batch_answer(_part(204), _part(204)))
    results = await client_for(recorder).apply_many(changes)
    assert results == [None, None]
    (request,) = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == f"{ROOT}/$batch"
    assert request.headers["Prefer"] == "odata.continue-on-error"
    assert request.headers["OData-Version"] == "4.0"
    assert request.headers["x-ms-client-request-id"]
    assert request.headers["Authorization"].startswith("Bearer ")
    content_type = request.headers["Content-Type"]
    sent = parse_batch_request(content_type, request.content)
    assert [(r.method, r.url) for r in sent] == [
        ("PATCH", f"{ROOT}/contacts({c.contact_id})") for c in changes
    ]
    assert [json.loads(r.body) for r in sent] == [
        {"hlf_listedonwebsite": False},
        {"hlf_listedonwebsite": True},
    ]
    assert all(r.headers["if-match"] == "*" for r in sent)
    assert [r.headers["x-ms-client-request-id"] for r in sent] == [
        c.correlation_id for c in changes
    ]
    assert b"changeset" not in request.content


async def test_mixed_outcomes_give_one_result_per_change() -> None:
    """Each part is classified on its own: one bad contact fails alone."""
    recorder = Recorder(
        _batch_answer(
            _part(204),
            _odata_part(404, "0x80040217"),
            _odata_part(429, "0x80072322", retry_after="11"),
            _odata_part(500, "0x80040216"),
            _odata_part(403, "0x80040220"),
            _part(200, "<html>proxy</html>", **{"Content-Type": "text/html"}),
        )
    )
    results = await client_for(recorder).apply_many([change() for _ in range(6)])
    assert results[0] is None
    assert isinstance(results[1], Permanent)
    assert isinstance(results[2], Throttled)
    assert results[2].retry_after_s == 11.0
    assert isinstance(results[3], Transient)
    assert isinstance(results[4], AuthFailure)
    assert isinstance(results[5], Transient)


async def test_answers_are_matched_by_content_id() -> None:
    """When the answers carry Content-IDs, each result goes to the change it belongs to."""
    recorder = Recorder(
        _batch_answer(_odata_part(404, "x", content_id="2"), _part(204, content_id="1"))
    )
    results = await client_for(recorder).apply_many([change(), change()])
    assert results[0] is None
    assert isinstance(results[1], Permanent)


async def test_missing_answers_are_transient() -> None:
    """A change the batch answer says nothing about is Transient (send it again)."""
    recorder = Recorder(_batch_answer(_part(204)))
    results = await client_for(recorder).apply_many([change(), change(), change()])
    assert results[0] is None
    assert all(isinstance(r, Transient) for r in results[1:])


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, content=b"<html/>", headers={"content-type": "text/html"}),
        httpx.Response(
            200, content=b"--x\r\nbroken", headers={"content-type": "multipart/mixed; boundary=x"}
        ),
        httpx.Response(200, content=b"", headers={"content-type": "multipart/mixed; boundary=x"}),
    ],
)
async def test_an_unparsable_batch_answer_makes_every_change_transient(
    response: httpx.Response,
) -> None:
    """When the multipart answer cannot be read, no change is known to have applied."""
    results = await client_for(Recorder(response)).apply_many([change(), change()])
    assert len(results) == 2
    assert all(isinstance(r, Transient) for r in results)


async def test_changes_beyond_batch_size_are_chunked() -> None:
    """Five changes with batch_size 2 go out as three $batch requests of 2, 2 and 1 parts."""

    def answer(request: httpx.Request) -> httpx.Response:
        count = request.content.count(b"Content-Type: application/http")
        return _batch_answer(*[_part(204) for _ in range(count)])

    recorder = Recorder(answer)
    results = await client_for(recorder, batch_size=2).apply_many([change() for _ in range(5)])
    assert results == [None] * 5
    assert [r.content.count(b"Content-Type: application/http") for r in recorder.requests] == [
        2,
        2,
        1,
    ]


async def test_a_throttled_batch_stops_the_remaining_chunks() -> None:
    """A batch-wide 429 is given to its changes and to later chunks, which are not sent."""
    recorder = Recorder(odata(429, "0x80072326", "concurrency", **{"Retry-After": "30"}))
    results = await client_for(recorder, batch_size=2).apply_many([change() for _ in range(5)])
    assert len(recorder.requests) == 1
    assert all(isinstance(r, Throttled) and r.retry_after_s == 30.0 for r in results)


async def test_a_transient_batch_failure_does_not_stop_later_chunks() -> None:
    """A 503 on one chunk fails that chunk only; the next chunk is still sent."""
    recorder = Recorder(odata(503, "x", "busy"), _batch_answer(_part(204)))
    results = await client_for(recorder, batch_size=1).apply_many([change(), change()])
    assert isinstance(results[0], Transient)
    assert results[1] is None


async def test_a_batch_401_refreshes_once_then_succeeds() -> None:
    """The whole $batch gets the same one-refresh-one-resend rule as a single PATCH."""
    tokens = FakeTokens()
    recorder = Recorder(odata(401, "x", "expired"), _batch_answer(_part(204)))
    assert await client_for(recorder, tokens).apply_many([change()]) == [None]
    assert len(tokens.invalidated) == 1
    assert len(recorder.requests) == 2


async def test_a_persistent_batch_401_fails_every_change_with_auth() -> None:
    """Two 401s on a $batch give AuthFailure to every change, and later chunks are not sent."""
    recorder = Recorder(odata(401, "x", "no"))
    results = await client_for(recorder, batch_size=1).apply_many([change(), change()])
    assert len(recorder.requests) == 2
    assert all(isinstance(r, AuthFailure) for r in results)


async def test_empty_apply_many_sends_nothing() -> None:
    """No changes, no request."""
    recorder = Recorder(httpx.Response(500))
    assert await client_for(recorder).apply_many([]) == []
    assert recorder.requests == []


def test_batch_size_is_bounded() -> None:
    """batch_size must be within Dataverse's 1..1000."""
    with pytest.raises(ValueError, match="batch_size"):
        client_for(Recorder(httpx.Response(204)), batch_size=1001)
