"""The failure taxonomy's promises: kinds, defaults and the one-line summary."""

from __future__ import annotations

import pytest

from hlfsync.core import errors


@pytest.mark.parametrize(
    ("cls", "kind"),
    [
        (errors.SyncFailure, errors.FailureClass.TRANSIENT),
        (errors.Transient, errors.FailureClass.TRANSIENT),
        (errors.Permanent, errors.FailureClass.PERMANENT),
        (errors.AuthFailure, errors.FailureClass.AUTH),
    ],
)
def test_each_class_carries_its_failure_class(
    cls: type[errors.SyncFailure], kind: errors.FailureClass
) -> None:
    """Every failure says what it means for the operation through its kind."""
    assert cls().kind is kind


def test_throttled_is_a_sync_failure_of_its_own_class() -> None:
    """A throttle is a SyncFailure of kind throttled, and a 429 unless told otherwise."""
    throttled = errors.Throttled(retry_after_s=3)
    assert isinstance(throttled, errors.SyncFailure)
    assert throttled.kind is errors.FailureClass.THROTTLED
    assert throttled.status == 429


def test_summary_with_status_and_code() -> None:
    """A failure with a status and a code reads `HTTP <status> <code>: <detail>`."""
    failure = errors.Permanent("contact not found", status=404, code="0x80040217")
    assert failure.summary() == "HTTP 404 0x80040217: contact not found"


def test_summary_without_status_names_the_kind() -> None:
    """Without a status the summary starts with the failure class instead."""
    assert errors.Transient("connection reset").summary() == "transient: connection reset"
    assert errors.AuthFailure("invalid_client").summary() == "auth: invalid_client"
    assert errors.Throttled("busy", retry_after_s=1, status=None).summary() == "throttled: busy"


def test_summary_with_status_but_no_code() -> None:
    """With a status and no code the summary is `HTTP <status>: <detail>`."""
    assert errors.Transient("bad gateway", status=502).summary() == "HTTP 502: bad gateway"


def test_summary_is_cut_at_500_characters() -> None:
    """A long detail (an error page, say) is cut so the summary fits one column."""
    failure = errors.Transient("x" * 2000, status=500)
    assert len(failure.summary()) == 500
    assert failure.summary().startswith("HTTP 500: xxx")


def test_the_docstring_is_the_default_message() -> None:
    """A failure raised without a detail explains itself with its class docstring."""
    failure = errors.Permanent()
    assert failure.detail == errors.Permanent.__doc__
    assert str(failure) == failure.detail
    assert errors.ConfigError.__doc__


def test_throttled_clamps_a_negative_retry_after_to_zero() -> None:
    """A negative Retry-After (clock skew, a bad header) means "now", never the past."""
    assert errors.Throttled(retry_after_s=-5).retry_after_s == 0.0
    assert errors.Throttled(retry_after_s=7.5).retry_after_s == 7.5


def test_config_error_is_not_a_sync_failure() -> None:
    """Bad configuration is a start-up error, never mistaken for a remote failure."""
    assert not issubclass(errors.ConfigError, errors.SyncFailure)


def test_summary_is_one_line_and_retry_after_is_capped() -> None:
    """A multi-line detail collapses to one line, and an infinite Retry-After is capped at a day."""
    assert errors.Transient("line one\n  line two", status=502).summary() == (
        "HTTP 502: line one line two"
    )
    assert errors.Throttled(retry_after_s=float("inf")).retry_after_s == 86_400.0
    assert errors.Throttled(retry_after_s=float("nan")).retry_after_s == 0.0
