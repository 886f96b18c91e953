"""Pure wire-format functions: URLs, pages, WhoAmI and multipart `$batch` building and parsing."""

from __future__ import annotations

from uuid import UUID

import pytest
from _adapter_fakes import ORG, ROOT

from hlfsync.dataverse import wire
from hlfsync.dynamics.port import ContactListing, Identity

A = UUID("6a1f9c1e-0000-4000-8000-000000000001")
B = UUID("6a1f9c1e-0000-4000-8000-000000000002")


def test_urls_follow_the_web_api_layout() -> None:
    """Record, WhoAmI, $batch and listing URLs are built under /api/data/<version>."""
    assert wire.api_root(ORG + "/", "v9.2") == ROOT
    assert wire.record_url(ROOT, "contacts", A) == f"{ROOT}/contacts({A})"
    assert wire.who_am_i_url(ROOT) == f"{ROOT}/WhoAmI"
    assert wire.batch_url(ROOT) == f"{ROOT}/$batch"
    assert (
        wire.listing_url(ROOT, "contacts", "contactid", "hlf_listedonwebsite")
        == f"{ROOT}/contacts?$select=contactid,hlf_listedonwebsite"
    )


def test_listing_body_holds_only_the_listing_field() -> None:
    """The PATCH body names the listing field alone, so nothing else on the contact changes."""
    assert wire.listing_body("hlf_listedonwebsite", True) == b'{"hlf_listedonwebsite":true}'
    assert wire.listing_body("hlf_listedonwebsite", False) == b'{"hlf_listedonwebsite":false}'


@pytest.mark.parametrize("size", [0, 5001, -1])
def test_page_size_outside_dataverse_bounds_is_refused(size: int) -> None:
    """odata.maxpagesize must be within 1..5000."""
    with pytest.raises(ValueError, match="page_size"):
        wire.max_page_size_header(size)


def test_same_origin_compares_scheme_host_and_port() -> None:
    """A nextLink is followed only on the organisation's own scheme, host and port."""
    assert wire.same_origin(f"{ROOT}/contacts?$skiptoken=1", ORG)
    assert wire.same_origin("https://HLF.crm4.dynamics.com/x", ORG)
    assert not wire.same_origin("https://evil.example/x", ORG)
    assert not wire.same_origin("http://hlf.crm4.dynamics.com/x", ORG)
    assert not wire.same_origin("https://hlf.crm4.dynamics.com:444/x", ORG)


def test_who_am_i_parses_user_and_organisation() -> None:
    """WhoAmI's UserId and OrganizationId become an Identity."""
    doc = {"BusinessUnitId": "b", "UserId": "u-1", "OrganizationId": "o-1"}
    assert wire.parse_who_am_i(doc) == Identity(user_id="u-1", organization_id="o-1")


@pytest.mark.parametrize("doc", [[], {"OrganizationId": "o"}, {"UserId": ""}, {"UserId": 7}, None])
def test_who_am_i_without_user_id_is_a_wire_error(doc: object) -> None:
    """A WhoAmI answer without a UserId does not follow the contract."""
    with pytest.raises(wire.WireError):
        wire.parse_who_am_i(doc)


def test_page_rows_nulls_and_skips() -> None:
    """Rows parse to ContactListing; null reads as unlisted; unusable rows are skipped, counted."""
    doc = {
        "value": [
            {"contactid": str(A), "hlf_listedonwebsite": True},
            {"contactid": str(B), "hlf_listedonwebsite": None},
            {"contactid": "not-a-guid", "hlf_listedonwebsite": True},
            {"contactid": None, "hlf_listedonwebsite": True},
            {"contactid": str(A), "hlf_listedonwebsite": "yes"},
            {"contactid": str(A)},
            "junk",
        ],
        "@odata.nextLink": f"{ROOT}/contacts?$skiptoken=abc",
    }
    page = wire.parse_page(doc, "contactid", "hlf_listedonwebsite")
    assert page.rows == [ContactListing(A, True), ContactListing(B, False)]
    assert page.skipped == 5
    assert page.next_link == f"{ROOT}/contacts?$skiptoken=abc"


@pytest.mark.parametrize(
    "doc",
    [{"values": []}, {"value": {}}, [], "x", {"value": [], "@odata.nextLink": 3}],
)
def test_a_page_that_is_not_an_odata_collection_is_a_wire_error(doc: object) -> None:
    """No `value` array, or a non-string nextLink, does not follow the contract."""
    with pytest.raises(wire.WireError):
        wire.parse_page(doc, "contactid", "hlf_listedonwebsite")


def test_last_page_has_no_next_link() -> None:
    """An empty or missing nextLink ends the paging."""
    assert wire.parse_page({"value": []}, "contactid", "f").next_link is None
    assert wire.parse_page({"value": [], "@odata.nextLink": ""}, "contactid", "f").next_link is None


def test_build_batch_frames_one_part_per_request_without_a_changeset() -> None:
    """Each request is its own application/http part with a Content-ID; CRLF line ends."""
    requests = [
        wire.BatchRequest("PATCH", f"{ROOT}/contacts({A})", {"If-Match": "*"}, b'{"f":true}'),
        wire.BatchRequest("PATCH", f"{ROOT}/contacts({B})", {"If-Match": "*"}, b'{"f":false}'),
    ]
    content_type, body = wire.build_batch(requests, "batch_X")
    assert content_type == "multipart/mixed; boundary=batch_X"
    expected = (
        "--batch_X\r\n"
        "Content-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        "Content-ID: 1\r\n"
        "\r\n"
        f"PATCH {ROOT}/contacts({A}) HTTP/1.1\r\n"
        "If-Match: *\r\n"
        "\r\n"
        '{"f":true}\r\n'
        "--batch_X\r\n"
        "Content-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        "Content-ID: 2\r\n"
        "\r\n"
        f"PATCH {ROOT}/contacts({B}) HTTP/1.1\r\n"
        "If-Match: *\r\n"
        "\r\n"
        '{"f":false}\r\n'
        "--batch_X--\r\n"
    ).encode()
    assert body == expected
    assert b"changeset" not in body


def test_build_batch_refuses_empty_and_oversized_batches() -> None:
    """A batch holds 1..1000 requests."""
    with pytest.raises(ValueError, match="at least one"):
        wire.build_batch([], "b")
    with pytest.raises(ValueError, match="at most"):
        wire.build_batch([wire.BatchRequest("PATCH", "u")] * 1001, "b")


DATAVERSE_ANSWER = (
    b"--batchresponse_1\r\n"
    b"Content-Type: application/http\r\n"
    b"Content-Transfer-Encoding: binary\r\n"
    b"\r\n"
    b"HTTP/1.1 204 No Content\r\n"
    b"OData-Version: 4.0\r\n"
    b"\r\n"
    b"\r\n"
    b"--batchresponse_1\r\n"
    b"Content-Type: application/http\r\n"
    b"Content-Transfer-Encoding: binary\r\n"
    b"\r\n"
    b"HTTP/1.1 404 Not Found\r\n"
    b"Content-Type: application/json; odata.metadata=minimal\r\n"
    b"OData-Version: 4.0\r\n"
    b"\r\n"
    b'{"error":{"code":"0x80040217","message":"contact Does Not Exist"}}\r\n'
    b"--batchresponse_1--\r\n"
)


def test_parse_batch_reads_a_dataverse_answer() -> None:
    """Status, headers and body of each part come back in order."""
    answers = wire.parse_batch("multipart/mixed; boundary=batchresponse_1", DATAVERSE_ANSWER)
    assert [a.status for a in answers] == [204, 404]
    assert answers[0].body == b""
    assert answers[1].headers["content-type"].startswith("application/json")
    assert answers[1].body == b'{"error":{"code":"0x80040217","message":"contact Does Not Exist"}}'


def test_parse_batch_tolerates_bare_lf_quoted_boundaries_and_preamble() -> None:
    """LF line ends, a quoted boundary and a preamble are all read."""
    body = b"preamble\n" + DATAVERSE_ANSWER.replace(b"\r\n", b"\n")
    answers = wire.parse_batch('multipart/mixed; boundary="batchresponse_1"', body)
    assert [a.status for a in answers] == [204, 404]


def test_parse_batch_flattens_changeset_answers() -> None:
    """A nested changeset answer contributes its parts in order, with their Content-IDs."""
    body = (
        b"--b\r\n"
        b"Content-Type: multipart/mixed; boundary=cs\r\n"
        b"\r\n"
        b"--cs\r\n"
        b"Content-Type: application/http\r\n"
        b"Content-ID: 1\r\n"
        b"\r\n"
        b"HTTP/1.1 204 No Content\r\n"
        b"\r\n"
        b"\r\n"
        b"--cs\r\n"
        b"Content-Type: application/http\r\n"
        b"Content-ID: 2\r\n"
        b"\r\n"
        b"HTTP/1.1 204 No Content\r\n"
        b"\r\n"
        b"\r\n"
        b"--cs--\r\n"
        b"--b--\r\n"
    )
    answers = wire.parse_batch("multipart/mixed; boundary=b", body)
    assert [(a.status, a.content_id) for a in answers] == [(204, "1"), (204, "2")]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"{}"),
        ("multipart/mixed", DATAVERSE_ANSWER),
        ("multipart/mixed; boundary=batchresponse_1", DATAVERSE_ANSWER[:-30]),
        ("multipart/mixed; boundary=other", DATAVERSE_ANSWER),
        (
            "multipart/mixed; boundary=b",
            b"--b\r\nContent-Type: application/http\r\n\r\nnot a status line\r\n--b--\r\n",
        ),
        ("multipart/mixed; boundary=b", b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n"),
        (
            "multipart/mixed; boundary=b",
            b"--b\r\nContent-Type: application/http\r\n\r\n"
            b"HTTP/1.1 204 OK\r\nbroken\r\n\r\n--b--\r\n",
        ),
    ],
)
def test_unreadable_batch_answers_are_wire_errors(content_type: str, body: bytes) -> None:
    """Not multipart, no boundary, truncated, wrong part type, no status line: WireError."""
    with pytest.raises(wire.WireError):
        wire.parse_batch(content_type, body)


def _answer(status: int, content_id: str | None = None) -> wire.BatchResponse:
    return wire.BatchResponse(status=status, headers={}, body=b"", content_id=content_id)


def test_match_batch_uses_content_ids_when_all_are_known() -> None:
    """Answers carrying every Content-ID are matched by it, whatever their order."""
    matched = wire.match_batch(3, [_answer(404, "3"), _answer(204, "1")])
    assert [m.status if m else None for m in matched] == [204, None, 404]


def test_match_batch_falls_back_to_order_and_pads_missing_answers() -> None:
    """Without usable Content-IDs answers match by position; missing ones are None."""
    matched = wire.match_batch(3, [_answer(204), _answer(404, "9")])
    assert [m.status if m else None for m in matched] == [204, 404, None]
    assert wire.match_batch(1, [_answer(204), _answer(204)])[0] is not None
    assert wire.match_batch(2, []) == [None, None]
