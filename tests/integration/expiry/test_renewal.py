"""Renewal on real PostgreSQL: the history entry, the restore of an expiry pause only, the time
zone "not in the past" is judged in, versioned reading and the size guard."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import structlog
from prometheus_client import REGISTRY
from pydantic import ValidationError

from hlfsync.core import renewals
from hlfsync.db import expiry
from tests.integration.expiry.world import Conn, alerts, check, mentor, queue, status, world

# The renewal trigger judges "not in the past" by the database's clock: dates far from today
# keep these tests independent of when they run.
FUTURE = date.today() + timedelta(days=400)


def _expiry_paused(conn: Conn, name: str = "HLF") -> Any:
    """A mentor paused by the check for a certificate that expired 30 days ago."""
    return mentor(conn, world(conn, name), -30, status="paused", reason="certification_expired",
                  today=date.today())  # fmt: skip


def _guard_count(source: str) -> float:
    value = REGISTRY.get_sample_value(
        "hlfsync_renewal_history_size_guard_total", {"source": source}
    )
    return value or 0.0


def test_renewal_restores_an_expiry_paused_mentor_and_queues_restore(conn: Conn) -> None:
    """Renewed into the future: active again for `certification_renewed`, one restore queued."""
    m = _expiry_paused(conn)
    result = expiry.renew(conn, m, FUTURE, "coordinator:7", timezone="Europe/Oslo")
    assert result.restored
    assert status(conn, m) == ("active", "certification_renewed")
    assert queue(conn, m) == [("restore", "pending")]
    [(kind, _key, alert_mentor, payload)] = alerts(conn, "cert_restored")
    assert (kind, alert_mentor) == ("cert_restored", m)
    assert payload == {"type": "hlf_cert_restored", "mentor_id": str(m), "operation": "restore"}
    actor = conn.execute(
        "SELECT actor FROM audit_log WHERE mentor_id = %s AND event_type = 'status_changed'", [m]
    ).fetchone()
    assert actor == ("coordinator:7",)


def test_renewal_appends_a_valid_version_1_history_entry(conn: Conn) -> None:
    """The stored entry validates as RenewalEntry and names the dates and who renewed."""
    m = _expiry_paused(conn)
    previous = date.today() - timedelta(days=30)
    result = expiry.renew(conn, m, FUTURE, "coordinator:7")
    entries, problems = expiry.read_history(conn, m)
    assert problems == []
    assert entries == [result.entry]
    entry = result.entry
    assert (entry.previous_expires_on, entry.new_expires_on) == (previous, FUTURE)
    assert entry.renewed_by == "coordinator:7"
    assert abs(entry.renewed_at - datetime.now(UTC)) < timedelta(minutes=5)


@pytest.mark.parametrize(
    ("state", "reason"), [("paused", "manual"), ("paused", "sick_leave"), ("paused", None),
                          ("inactive", "certification_expired")],
)  # fmt: skip
def test_a_mentor_paused_by_hand_or_for_another_reason_stays_paused(
    conn: Conn, state: str, reason: str | None
) -> None:
    """Only a pause for expiry is undone by renewal; the history entry is still written."""
    m = mentor(conn, world(conn), -30, status=state, reason=reason, today=date.today())
    result = expiry.renew(conn, m, FUTURE, "coordinator:7")
    assert not result.restored
    assert status(conn, m) == (state, reason)
    assert queue(conn, m) == []
    assert alerts(conn, "cert_restored") == []
    assert len(expiry.read_history(conn, m)[0]) == 1


def test_a_renewal_still_in_the_past_does_not_restore(conn: Conn) -> None:
    """Moved later but still before today: recorded, and the mentor stays paused."""
    m = _expiry_paused(conn)
    expiry.renew(conn, m, date.today() - timedelta(days=10), "coordinator:7")
    assert status(conn, m) == ("paused", "certification_expired")
    assert queue(conn, m) == []


def test_a_direct_update_records_the_actor_setting_or_the_database_user(conn: Conn) -> None:
    """Renewed by plain SQL: renewed_by is hlfsync.actor if set, else the session user."""
    m = _expiry_paused(conn)
    with conn.transaction():
        conn.execute("SELECT set_config('hlfsync.actor', 'app:renewal-form', true)")
        conn.execute(
            "UPDATE certifications SET expires_on = expires_on + 1 WHERE mentor_id = %s", [m]
        )
    conn.execute("UPDATE certifications SET expires_on = %s WHERE mentor_id = %s", [FUTURE, m])
    user = conn.execute("SELECT session_user").fetchone()
    entries, _ = expiry.read_history(conn, m)
    assert [e.renewed_by for e in entries if isinstance(e, renewals.RenewalEntry)] == [
        "app:renewal-form", user[0] if user else None
    ]  # fmt: skip
    assert status(conn, m) == ("active", "certification_renewed")


def test_moving_the_date_earlier_is_a_correction_not_a_renewal(conn: Conn) -> None:
    """An earlier date appends no history and restores no one."""
    m = _expiry_paused(conn)
    conn.execute("UPDATE certifications SET expires_on = expires_on - 1 WHERE mentor_id = %s", [m])
    assert expiry.read_history(conn, m) == ([], [])
    assert status(conn, m) == ("paused", "certification_expired")


def test_an_invalid_renewal_is_refused_before_anything_is_written(conn: Conn) -> None:
    """Not later than the current date, or no one named: ValueError, nothing changes."""
    m = _expiry_paused(conn)
    with pytest.raises(ValidationError, match="later"):
        expiry.renew(conn, m, date.today() - timedelta(days=31), "coordinator:7")
    with pytest.raises(ValueError, match="renewed_by"):
        expiry.renew(conn, m, FUTURE, "")
    with pytest.raises(LookupError):
        expiry.renew(conn, world(conn, "Other").org, FUTURE, "coordinator:7")
    assert expiry.read_history(conn, m) == ([], [])
    assert status(conn, m) == ("paused", "certification_expired")


def test_not_in_the_past_is_judged_in_the_configured_time_zone(conn: Conn) -> None:
    """A date that is today in Pago Pago is already past in Kiritimati (25 hours ahead)."""
    restored = {}
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):
        m = _expiry_paused(conn, zone)
        with conn.transaction():
            # now() is fixed for the transaction, so this is the date the trigger will compare.
            row = conn.execute("SELECT (now() AT TIME ZONE 'Pacific/Pago_Pago')::date").fetchone()
            assert row is not None
            conn.execute("SELECT set_config('hlfsync.timezone', %s, true)", [zone])
            conn.execute("UPDATE certifications SET expires_on = %s WHERE mentor_id = %s",
                         [row[0], m])  # fmt: skip
        restored[zone] = status(conn, m)[0] == "active"
    assert restored == {"Pacific/Kiritimati": False, "Pacific/Pago_Pago": True}


def test_unknown_history_versions_are_kept_through_a_renewal(conn: Conn) -> None:
    """A stored v2 entry survives a renewal untouched and is reported, not raised."""
    m = _expiry_paused(conn)
    v2 = {"schema_version": 2, "renewed_at": "2031-01-01T00:00:00Z", "approved_by": ["a", "b"]}
    conn.execute(
        "UPDATE certifications SET renewal_history = %s::jsonb WHERE mentor_id = %s",
        [json.dumps([v2]), m],
    )
    expiry.renew(conn, m, FUTURE, "coordinator:7")
    with structlog.testing.capture_logs() as logs:
        entries, problems = expiry.read_history(conn, m)
    assert isinstance(entries[0], renewals.UnknownEntry)
    assert entries[0].raw == v2
    assert isinstance(entries[1], renewals.RenewalEntry)
    assert [(p.index, p.kind) for p in problems] == [(0, "unknown_version")]
    assert [e["event"] for e in logs] == ["renewal_history_unreadable_entries"]
    assert logs[0]["unknown_version"] == 1


def _fill_history(conn: Conn, mentor_id: Any, entries: int) -> None:
    conn.execute(
        "UPDATE certifications SET renewal_history = (SELECT jsonb_agg(jsonb_build_object("
        "'schema_version', 1, 'renewed_at', '2020-01-01T00:00:00Z', 'previous_expires_on',"
        " '2019-01-01', 'new_expires_on', '2020-01-01', 'renewed_by', 'seed'))"
        " FROM generate_series(1, %s)) WHERE mentor_id = %s",
        [entries, mentor_id],
    )


def test_a_renewal_past_500_entries_warns_and_counts(conn: Conn) -> None:
    """The 501st entry trips the size guard: one warning and the counter goes up by one."""
    m = _expiry_paused(conn)
    _fill_history(conn, m, 500)
    before = _guard_count("renewal")
    with structlog.testing.capture_logs() as logs:
        result = expiry.renew(conn, m, FUTURE, "coordinator:7")
    assert result.history_length == 501
    assert _guard_count("renewal") == before + 1
    [warning] = [e for e in logs if e["event"] == "renewal_history_size_guard"]
    assert warning["log_level"] == "warning"
    assert warning["mentors"] == [str(m)]


def test_the_expiry_check_counts_oversized_histories(conn: Conn) -> None:
    """The nightly check reports histories over 500 entries, warns and counts them."""
    w = world(conn)
    big, small = mentor(conn, w, 100), mentor(conn, w, 100)
    _fill_history(conn, big, 501)
    _fill_history(conn, small, 500)
    before = _guard_count("expiry_check")
    with structlog.testing.capture_logs() as logs:
        stats = check(conn)
    assert stats["oversized_histories"] == 1
    assert _guard_count("expiry_check") == before + 1
    [warning] = [e for e in logs if e["event"] == "renewal_history_size_guard"]
    assert warning["mentors"] == [str(big)]
