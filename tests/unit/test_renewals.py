"""Renewal history entries: version 1 validated, unknown versions kept opaque, nothing raised."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from hlfsync.core import renewals

V1 = {
    "schema_version": 1,
    "renewed_at": "2026-04-01T09:15:00.123456Z",
    "previous_expires_on": "2026-03-31",
    "new_expires_on": "2028-03-31",
    "renewed_by": "coordinator:42",
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
entry_like = st.fixed_dictionaries(
    {
        "schema_version": st.one_of(
            st.integers(-2, 4), st.none(), st.booleans(), st.text(max_size=2)
        )
    },
    optional={
        "renewed_at": st.sampled_from([V1["renewed_at"], "2026-04-01T09:15:00", "nonsense"]),
        "previous_expires_on": st.sampled_from(["2026-03-31", "2029-01-01", "31.03.2026"]),
        "new_expires_on": st.sampled_from(["2028-03-31", "2026-01-01"]),
        "renewed_by": st.sampled_from(["seed", "", "x" * 300]),
        "extra": json_values,
    },
)


def test_a_version_1_entry_reads_as_a_renewal_entry() -> None:
    """The shape the database trigger writes validates as RenewalEntry with aware times."""
    entry = renewals.parse_entry(V1)
    assert isinstance(entry, renewals.RenewalEntry)
    assert entry.renewed_at == datetime(2026, 4, 1, 9, 15, 0, 123456, tzinfo=UTC)
    assert entry.previous_expires_on == date(2026, 3, 31)
    assert entry.new_expires_on == date(2028, 3, 31)
    assert entry.renewed_by == "coordinator:42"


def test_an_entry_round_trips_through_its_stored_json() -> None:
    """What to_json writes, parse_entry reads back unchanged."""
    entry = renewals.RenewalEntry(
        renewed_at=datetime(2026, 4, 1, 9, tzinfo=UTC),
        previous_expires_on=date(2026, 3, 31),
        new_expires_on=date(2028, 3, 31),
        renewed_by="seed",
    )
    stored = json.loads(json.dumps(entry.to_json()))
    assert stored["schema_version"] == 1
    assert renewals.parse_entry(stored) == entry


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"new_expires_on": "2026-03-31"}, "later"),
        ({"new_expires_on": "2026-01-01"}, "later"),
        ({"renewed_by": ""}, "renewed_by"),
        ({"renewed_at": "2026-04-01T09:15:00"}, "renewed_at"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_bad_version_1_entry_is_refused_on_write(change: dict[str, Any], field: str) -> None:
    """A v1 entry must move the date later, name who renewed, carry an aware time, and no more."""
    with pytest.raises(ValidationError, match=field):
        renewals.parse_entry({**V1, **change})


def test_unknown_versions_are_kept_opaque_in_place_and_counted() -> None:
    """A v2 entry (or one with no version) is kept whole, in order, and reported, not raised."""
    v2 = {"schema_version": 2, "renewed_at": "2030-01-01T00:00:00Z", "by": {"id": 7}}
    entries, problems = renewals.parse_history([V1, v2, {"note": "legacy"}, V1])
    assert [type(e).__name__ for e in entries] == [
        "RenewalEntry", "UnknownEntry", "UnknownEntry", "RenewalEntry"
    ]  # fmt: skip
    unknown = entries[1]
    assert isinstance(unknown, renewals.UnknownEntry)
    assert unknown.schema_version == 2
    assert unknown.raw == v2
    assert [(p.index, p.kind) for p in problems] == [(1, "unknown_version"), (2, "unknown_version")]


def test_a_malformed_known_version_is_kept_and_reported_invalid() -> None:
    """A v1 entry that fails validation is kept opaque with the failing field named."""
    broken = {**V1, "renewed_by": ""}
    entries, problems = renewals.parse_history([broken, "not an entry", 7])
    assert all(isinstance(e, renewals.UnknownEntry) for e in entries)
    assert [(p.index, p.kind) for p in problems] == [(0, "invalid"), (1, "invalid"), (2, "invalid")]
    assert "renewed_by" in problems[0].detail
    assert problems[1].detail == "not an object: str"


def test_true_is_not_version_1() -> None:
    """JSON true is not the integer 1, even though Python's bool is an int."""
    entries, problems = renewals.parse_history([{**V1, "schema_version": True}])
    assert isinstance(entries[0], renewals.UnknownEntry)
    assert problems[0].kind == "unknown_version"


@given(items=st.lists(st.one_of(entry_like, json_values), max_size=12))
def test_reading_any_history_never_raises_and_loses_nothing(items: list[Any]) -> None:
    """Whatever the stored list holds, every item comes back, and problems name the rest."""
    entries, problems = renewals.parse_history(items)
    assert len(entries) == len(items)
    flagged = {p.index for p in problems}
    for index, (raw, entry) in enumerate(zip(items, entries, strict=True)):
        if isinstance(entry, renewals.UnknownEntry):
            assert index in flagged
            assert entry.raw == raw
        else:
            assert index not in flagged
            assert renewals.parse_entry(entry.to_json()) == entry


def test_the_size_guard_trips_above_500_entries() -> None:
    """500 entries is within the guard; 501 is over it."""
    assert renewals.SIZE_GUARD == 500
    assert not renewals.exceeds_size_guard(500)
    assert renewals.exceeds_size_guard(501)
