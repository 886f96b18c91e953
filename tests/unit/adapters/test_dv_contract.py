"""Contract drift at the adapter: what holds everyone, what dead-letters one, and $batch answers
as Dataverse sends them (stopped at the first failure, Content-ID echoed or not)."""

from __future__ import annotations

import json
from uuid import uuid4

import httpx
import pytest
from _adapter_fakes import ROOT, Recorder, change, client_for, json_response, odata

from hlfsync.core.errors import (
    ContractFailure,
    NotRun,
    Permanent,
    Throttled,
    Transient,
)
from hlfsync.dataverse import wire
from hlfsync.outbound import errors

pytestmark = pytest.mark.anyio

MISSING = ("0x80040217", "contact With Id = x Does Not Exist")
NO_PROPERTY = ("0x80060888", "Could not find a property named 'hlf_listedonwebsite' on type")
NO_SEGMENT = ("0x8006088a", "Resource not found for the segment 'contactz'.")
PAYLOAD = ("0x80048d19", "Error identified in Payload provided by the user for Entity")


def _page(rows: int = 1) -> httpx.Response:
    return json_response(200, {"value": [{"hlf_listedonwebsite": True}] * rows})


def _probe_or(answer: httpx.Response, probe: httpx.Response) -> Recorder:
    """PATCHes get `answer`; the known-good probe (a GET) gets `probe`."""
    return Recorder(lambda r: probe if r.method == "GET" else answer)


def _part(status: int, body: str = "", content_id: str | None = None) -> str:
    cid = f"Content-ID: {content_id}\r\n" if content_id else ""
    kind = "Content-Type: application/json\r\n" if body else ""
    return (
        "--batchresponse_Z\r\nContent-Type: application/http\r\n"
        f"Content-Transfer-Encoding: binary\r\n{cid}\r\n"
        f"HTTP/1.1 {status} X\r\n{kind}\r\n{body}\r\n"
    )


def _error(code: str, message: str = "m") -> str:
    return json.dumps({"error": {"code": code, "message": message}})


def _batch(status: int, *parts: str, **headers: str) -> httpx.Response:
    body = "".join(parts) + "--batchresponse_Z--\r\n"
    return httpx.Response(
        status,
        content=body.encode(),
        headers={"content-type": "multipart/mixed; boundary=batchresponse_Z", **headers},
    )


@pytest.mark.parametrize(
    ("status", "code_message"),
    [(400, NO_PROPERTY), (404, NO_SEGMENT), (400, PAYLOAD), (405, NO_PROPERTY), (415, PAYLOAD)],
)
async def test_answers_that_say_the_contract_is_wrong_hold_everyone(
    status: int, code_message: tuple[str, str]
) -> None:
    """Unknown property or entity set, refused payload, 405, 415: ContractFailure, not Permanent."""
    client = client_for(Recorder(odata(status, *code_message)))
    with pytest.raises(ContractFailure) as caught:
        await client.apply(change())
    assert caught.value.status == status
    assert code_message[0] in caught.value.summary()


async def test_a_deleted_contact_dead_letters_when_the_probe_passes() -> None:
    """404 0x80040217 with a passing probe (entity set and field readable): Permanent, one op."""
    recorder = _probe_or(odata(404, *MISSING), _page())
    with pytest.raises(Permanent) as caught:
        await client_for(recorder).apply(change())
    assert not isinstance(caught.value, ContractFailure)
    probe = [r for r in recorder.requests if r.method == "GET"]
    assert [str(r.url) for r in probe] == [f"{ROOT}/contacts?$select=hlf_listedonwebsite&$top=1"]


async def test_a_404_is_contract_when_the_probe_fails_too() -> None:
    """A code-less 404 whose probe answers 'no such entity set' holds everyone (contract)."""
    recorder = _probe_or(httpx.Response(404), odata(404, *NO_SEGMENT))
    with pytest.raises(ContractFailure) as caught:
        await client_for(recorder).apply(change())
    assert "probe failed" in caught.value.detail


async def test_one_probe_answers_for_a_burst_of_404s() -> None:
    """The probe's verdict stands for a while: ten deleted contacts cost one probe, not ten."""
    recorder = _probe_or(odata(404, *MISSING), _page())
    client = client_for(recorder)
    for _ in range(10):
        with pytest.raises(Permanent):
            await client.apply(change())
    assert sum(r.method == "GET" for r in recorder.requests) == 1


async def test_retry_after_on_a_503_is_kept_as_the_floor() -> None:
    """503 with Retry-After 20: Transient carrying 20 s; without the header, no floor."""
    answers = [httpx.Response(503, headers={"Retry-After": "20"}), httpx.Response(503)]
    client = client_for(Recorder(*answers))
    with pytest.raises(Transient) as first:
        await client.apply(change())
    with pytest.raises(Transient) as second:
        await client.apply(change())
    assert first.value.retry_after_s == 20.0
    assert second.value.retry_after_s is None


@pytest.mark.parametrize("status", [502, 504, 500])
async def test_every_retryable_status_keeps_its_retry_after(status: int) -> None:
    """502, 504 and 500 keep their Retry-After too (a .NET span or delta-seconds)."""
    client = client_for(Recorder(httpx.Response(status, headers={"Retry-After": "00:00:09"})))
    with pytest.raises(Transient) as caught:
        await client.apply(change())
    assert caught.value.retry_after_s == 9.0


async def test_an_alternate_key_addresses_the_contact_and_learns_its_id() -> None:
    """No contact id: PATCH contacts(key='value') with If-Match: *, return=representation and
    $select=contactid; the contactid of the answer is returned."""
    contact = uuid4()
    recorder = Recorder(json_response(200, {"contactid": str(contact)}))
    client = client_for(recorder, alternate_key="hlf_mentornumber")
    learned = await client.apply(change(contact_id=None, key_value="O'Brien 7"))
    assert learned == contact
    (sent,) = recorder.requests
    assert sent.method == "PATCH"
    assert str(sent.url) == (f"{ROOT}/contacts(hlf_mentornumber='O''Brien%207')?$select=contactid")
    assert sent.headers["If-Match"] == "*"
    assert sent.headers["Prefer"] == "return=representation"


async def test_an_alternate_key_answer_without_a_body_is_read_from_odata_entityid() -> None:
    """A 204 naming the record in OData-EntityId gives the contactid as well."""
    contact = uuid4()
    entity = f"{ROOT}/contacts({contact})"
    client = client_for(Recorder(httpx.Response(204, headers={"OData-EntityId": entity})),
                        alternate_key="hlf_mentornumber")  # fmt: skip
    assert await client.apply(change(contact_id=None, key_value="7")) == contact


def test_key_values_cannot_break_out_of_the_key_segment() -> None:
    """Quotes are doubled and everything else that matters is percent-encoded."""
    url = wire.key_url(ROOT, "contacts", "k", "a')/x?$y=1&'")
    assert url == f"{ROOT}/contacts(k='a''%29%2Fx%3F%24y%3D1%26''')"


# --- $batch as Dataverse answers it --------------------------------------------------------


async def test_batch_stopped_at_a_failure_reads_each_part() -> None:
    """Outer 400 with a multipart body (no continue-on-error applied): the applied part
    succeeds, the failing part is classified alone, the unanswered parts are NotRun."""
    answer = _batch(400, _part(204), _part(400, _error(*NO_PROPERTY)))
    results = await client_for(Recorder(answer)).apply_many([change(), change(), change()])
    assert results[0] is None
    assert isinstance(results[1], ContractFailure)
    assert isinstance(results[2], NotRun)


async def test_batch_stopped_at_a_deleted_contact_dead_letters_only_that_one() -> None:
    """Outer 404 stopped at a 0x80040217 part: that change is Permanent (the probe passes), the
    one before it applied, the ones after it were never run."""
    answer = _batch(404, _part(204), _part(404, _error(*MISSING)))
    recorder = Recorder(lambda r: _page() if r.method == "GET" else answer)
    results = await client_for(recorder).apply_many([change() for _ in range(4)])
    assert results[0] is None
    assert isinstance(results[1], Permanent)
    assert not isinstance(results[1], ContractFailure)
    assert all(isinstance(r, NotRun) for r in results[2:])


async def test_batch_answers_without_content_id_are_matched_by_position() -> None:
    """Outside change sets Dataverse echoes no Content-ID: answers match changes in order."""
    answer = _batch(200, _part(204), _part(412, _error("0x80060882")), _part(204))
    results = await client_for(Recorder(answer)).apply_many([change(), change(), change()])
    assert results[0] is None
    assert results[2] is None
    assert isinstance(results[1], Permanent)


async def test_batch_answers_with_content_id_are_matched_by_it_whatever_the_order() -> None:
    """With every Content-ID echoed, answers match by id even out of order."""
    answer = _batch(200, _part(204, content_id="2"), _part(412, _error("0x80060882"), "1"))
    results = await client_for(Recorder(answer)).apply_many([change(), change()])
    assert isinstance(results[0], Permanent)
    assert results[1] is None


async def test_a_batch_refused_whole_without_parts_holds_rather_than_dead_letters() -> None:
    """An outer 4xx JSON error (no parts: the batch itself refused) holds every change."""
    client = client_for(Recorder(odata(400, "0x80040265", "batch malformed")))
    results = await client.apply_many([change(), change()])
    assert all(isinstance(r, ContractFailure) for r in results)


async def test_a_batch_answered_503_with_retry_after_carries_it_to_every_change() -> None:
    """An outer 503 with Retry-After: every change is Transient with that floor."""
    client = client_for(Recorder(httpx.Response(503, headers={"Retry-After": "12"})))
    results = await client.apply_many([change(), change()])
    assert all(isinstance(r, Transient) and r.retry_after_s == 12.0 for r in results)


async def test_a_throttled_part_in_a_stopped_batch_keeps_its_retry_after() -> None:
    """Stopped at a 429 part: Throttled with the part's Retry-After, the rest NotRun."""
    part = (
        "--batchresponse_Z\r\nContent-Type: application/http\r\n\r\n"
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
        f"Retry-After: 17\r\n\r\n{_error('0x80072322')}\r\n"
    )
    results = await client_for(Recorder(_batch(429, _part(204), part))).apply_many(
        [change(), change(), change()]
    )
    assert results[0] is None
    assert isinstance(results[1], Throttled)
    assert results[1].retry_after_s == 17.0
    assert isinstance(results[2], NotRun)


def test_not_run_spends_nothing_and_a_contract_failure_holds() -> None:
    """The retry decision: NotRun retries at once without spending; ContractFailure holds."""
    import random
    from datetime import UTC, datetime

    from hlfsync.core import retry

    now = datetime(2026, 1, 1, tzinfo=UTC)
    policy = retry.RetryPolicy()
    rng = random.Random(0)
    not_run = retry.decide(policy, 1, NotRun("x"), now, rng)
    assert isinstance(not_run, retry.Retry)
    assert not not_run.spend_attempt
    assert not_run.at == now
    assert isinstance(retry.decide(policy, 0, ContractFailure("x"), now, rng), retry.Hold)
    floor = retry.decide(policy, 0, Transient("x", retry_after_s=30), now, rng)
    assert isinstance(floor, retry.Retry)
    assert (floor.at - now).total_seconds() == 30
    short = retry.decide(policy, 0, Transient("x", retry_after_s=1), now, rng)
    assert isinstance(short, retry.Retry)
    assert (short.at - now).total_seconds() == 2


def test_is_missing_record_needs_a_404() -> None:
    """Only a 404 with 0x80040217 or no code counts as one missing record."""
    assert errors.is_missing_record(Permanent("x", status=404, code="0x80040217"))
    assert errors.is_missing_record(Permanent("x", status=404))
    assert not errors.is_missing_record(Permanent("x", status=400))
    assert not errors.is_missing_record(ContractFailure("x", status=404))
