"""The status / OData code / transport table in `outbound.errors`, row by row."""

from __future__ import annotations

import ssl

import httpx
import pytest
from _adapter_fakes import SECRET_TOKEN, FakeTokens, Recorder, change, client_for, odata

from hlfsync.core.errors import (
    AuthFailure,
    ContractFailure,
    FailureClass,
    Permanent,
    SyncFailure,
    Throttled,
    Transient,
)
from hlfsync.outbound import errors

pytestmark = pytest.mark.anyio

STATUS_ROWS = [
    (408, Transient),
    (500, Transient),
    (502, Transient),
    (503, Transient),
    (504, Transient),
    (599, Transient),
    (429, Throttled),
    (401, AuthFailure),
    (403, AuthFailure),
    (400, Permanent),
    (404, Permanent),
    (405, ContractFailure),
    (415, ContractFailure),
    (409, Permanent),
    (412, Permanent),
    (413, Permanent),
    (422, Permanent),
    (301, Permanent),
    (302, Permanent),
    (307, Permanent),
    (600, Transient),
    (99, Transient),
]


@pytest.mark.parametrize(("status", "expected"), STATUS_ROWS)
async def test_every_status_row_classifies_through_the_client(
    status: int, expected: type[SyncFailure]
) -> None:
    """Each status of the table reaches the caller of `apply` as its class, with the status."""
    recorder = Recorder(odata(status, "0x80040217", "contact With Id = x Does Not Exist"))
    client = client_for(recorder)
    with pytest.raises(expected) as caught:
        await client.apply(change())
    assert type(caught.value) is expected
    assert caught.value.status == status


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_any_2xx_is_success(status: int) -> None:
    """A 2xx answer classifies as no failure at all."""
    assert errors.classify_response(status, {}, b"") is None


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("0x80072322", 429),
        ("0x80072321", 429),
        ("0x80072326", 429),
        ("0X80072326", 503),
        ("-2147015902", 400),
        ("-2147015903", 500),
        ("-2147015898", 502),
    ],
)
def test_service_protection_codes_are_throttled_whatever_the_status(code: str, status: int) -> None:
    """A Dataverse service-protection code means Throttled even when the status says otherwise."""
    response = odata(status, code, "Number of requests exceeded the limit", **{"Retry-After": "17"})
    failure = errors.classify_response(status, response.headers, response.content)
    assert isinstance(failure, Throttled)
    assert failure.retry_after_s == 17.0
    assert failure.code == code
    assert "service protection limit" in failure.detail


def test_plain_429_without_odata_body_is_throttled_with_the_default_wait() -> None:
    """A bare 429 (no OData body, no Retry-After) waits the documented default."""
    failure = errors.classify_response(429, {"content-type": "text/plain"}, b"slow down")
    assert isinstance(failure, Throttled)
    assert failure.retry_after_s == errors.DEFAULT_RETRY_AFTER_S


@pytest.mark.parametrize(
    ("headers", "expected_s"),
    [
        ({"Retry-After": "12"}, 12.0),
        ({"Retry-After": "2.5"}, 2.5),
        ({"Retry-After": " 7 "}, 7.0),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": "00:01:30"}, 90.0),
        ({"Retry-After": "soon"}, errors.DEFAULT_RETRY_AFTER_S),
        ({"Retry-After": ""}, errors.DEFAULT_RETRY_AFTER_S),
        ({"Retry-After": "-3"}, errors.DEFAULT_RETRY_AFTER_S),
        ({"Retry-After": "nan"}, errors.DEFAULT_RETRY_AFTER_S),
        ({"Retry-After": "inf"}, errors.DEFAULT_RETRY_AFTER_S),
        ({"Retry-After": "99999999"}, errors.MAX_RETRY_AFTER_S),
        ({}, errors.DEFAULT_RETRY_AFTER_S),
        (
            {
                "Retry-After": "Mon, 06 Jan 2025 09:00:30 GMT",
                "Date": "Mon, 06 Jan 2025 09:00:00 GMT",
            },
            30.0,
        ),
        (
            {
                "Retry-After": "Mon, 06 Jan 2025 08:59:00 GMT",
                "Date": "Mon, 06 Jan 2025 09:00:00 GMT",
            },
            0.0,
        ),
        ({"Retry-After": "Mon, 06 Jan 2025 09:00:30 GMT"}, errors.DEFAULT_RETRY_AFTER_S),
        ({"retry-after-ms": "1500", "Retry-After": "9"}, 1.5),
        ({"retry-after-ms": "junk", "Retry-After": "9"}, 9.0),
        ({"x-ms-retry-after-ms": "250"}, 0.25),
    ],
)
def test_retry_after_parsing(headers: dict[str, str], expected_s: float) -> None:
    """Retry-After is read as seconds, a span or a date against Date; garbage gets the default."""
    assert errors.retry_after_s(headers) == pytest.approx(expected_s)


def test_retry_after_reads_httpx_headers_case_insensitively() -> None:
    """httpx.Headers and plain dicts are read the same way, whatever the header case."""
    assert errors.retry_after_s(httpx.Headers({"RETRY-AFTER": "4"})) == 4.0
    assert errors.retry_after_s({"rEtRy-AfTeR": "4"}) == 4.0


def test_odata_code_and_message_are_kept_folded_and_truncated() -> None:
    """The OData code and a one-line message of at most MESSAGE_LIMIT characters are kept."""
    response = odata(400, "0x80040265", "bad\npayload " + "x" * 500)
    failure = errors.classify_response(400, response.headers, response.content)
    assert isinstance(failure, Permanent)
    assert failure.code == "0x80040265"
    assert "\n" not in failure.detail
    assert "bad payload" in failure.detail
    assert len(failure.detail) < errors.MESSAGE_LIMIT + 40
    assert failure.summary().startswith("HTTP 400 0x80040265: request rejected: bad payload")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html", b"<html><body>502 Bad Gateway</body></html>"),
        ("application/json", b'{"error": {"code": "0x8'),
        ("application/json", b"[1, 2]"),
        ("application/json", b'{"error": "flat"}'),
        ("", b""),
    ],
)
def test_error_bodies_that_are_not_odata_are_described_by_type_only(
    content_type: str, body: bytes
) -> None:
    """A non-OData error body is never quoted: the detail names the status and content type."""
    failure = errors.classify_response(502, {"content-type": content_type}, body)
    assert isinstance(failure, Transient)
    assert failure.code is None
    assert "Bad Gateway</body>" not in failure.detail
    assert failure.summary().startswith("HTTP 502: server did not complete the request: ")
    assert failure.detail.endswith("body")


def test_redirect_detail_does_not_quote_the_location() -> None:
    """A 3xx is configuration: the detail says to check the URL and does not echo headers."""
    failure = errors.classify_response(302, {"location": "https://login.example/?token=abc"}, b"")
    assert isinstance(failure, Permanent)
    assert "token=abc" not in failure.summary()


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectTimeout("t"), Transient),
        (httpx.ReadTimeout("t"), Transient),
        (httpx.WriteTimeout("t"), Transient),
        (httpx.PoolTimeout("t"), Transient),
        (httpx.ConnectError("refused"), Transient),
        (httpx.ReadError("reset"), Transient),
        (httpx.WriteError("broken pipe"), Transient),
        (httpx.RemoteProtocolError("peer closed"), Transient),
        (httpx.ProxyError("proxy"), Transient),
        (httpx.DecodingError("gzip"), Transient),
        (httpx.UnsupportedProtocol("ftp"), Permanent),
        (httpx.LocalProtocolError("bad header"), Permanent),
        (httpx.InvalidURL("bad"), Permanent),
        (httpx.TooManyRedirects("loop"), Permanent),
        (ConnectionResetError(104, "Connection reset by peer"), Transient),
    ],
)
def test_transport_exceptions(exc: Exception, expected: type[SyncFailure]) -> None:
    """Every transport exception maps to its class; timeouts and network errors are Transient."""
    failure = errors.classify_exception(exc)
    assert type(failure) is expected


def test_tls_verification_failure_is_named_and_a_contract_failure() -> None:
    """A certificate the CA bundle does not trust holds everything (contract) and says so."""
    try:
        try:
            raise ssl.SSLCertVerificationError(1, "certificate verify failed")
        except ssl.SSLError as inner:
            raise httpx.ConnectError("[SSL] certificate verify failed") from inner
    except httpx.ConnectError as exc:
        failure = errors.classify_exception(exc)
    assert isinstance(failure, ContractFailure)
    assert "TLS certificate verification failed" in failure.detail


def test_connect_error_detail_names_the_os_reason_not_the_url() -> None:
    """The detail carries the OS reason (strerror) and never the message that may hold a URL."""
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as inner:
            raise httpx.ConnectError("https://h/api?code=SECRET-KEY refused") from inner
    except httpx.ConnectError as exc:
        failure = errors.classify_exception(exc)
    assert "Connection refused" in failure.detail
    assert "SECRET-KEY" not in failure.detail


def test_a_sync_failure_passes_through_unchanged() -> None:
    """classify_exception is idempotent on an already classified failure."""
    failure = Permanent("x")
    assert errors.classify_exception(failure) is failure


async def test_timeout_reaches_the_caller_as_transient_and_the_token_stays_hidden() -> None:
    """A timeout during PATCH is Transient, with no chained httpx error holding the request."""

    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    client = client_for(Recorder(hang), FakeTokens())
    with pytest.raises(Transient) as caught:
        await client.apply(change())
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert SECRET_TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (503, FailureClass.TRANSIENT),
        (429, FailureClass.THROTTLED),
        (404, FailureClass.PERMANENT),
        (401, FailureClass.AUTH),
    ],
)
def test_failure_kinds_match_the_taxonomy(status: int, kind: FailureClass) -> None:
    """The classes the table returns carry the kinds core acts on."""
    failure = errors.classify_response(status, {}, b"")
    assert failure is not None
    assert failure.kind is kind
