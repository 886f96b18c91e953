"""The isolation world: two organisations, chapters, mentors and users arranged so that every
visibility rule has a case, and what each user should see, stated independently of the SQL.

Org A: chapters A1, A2, A3. Org B: chapter B1.
  m_a1 in A1; m_a2 in A2; m_a12 in A1 and A2 (multi-chapter); m_a3 in A3; m_a0 in no chapter;
  m_b1 in B1; m_stray is org B's and in no chapter (a membership in A1 is refused, 0017).
  coord_a1 coordinates A1; coord_a23 coordinates A2 and A3 (multi-chapter); admin_a administers A;
  coord_b1 coordinates B1 (the other organisation); admin_b administers B;
  idle_a is a user of A with no role; stranger has a valid token but is nobody to hlfsync.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from hlfsync import testing as f

Conn = f.Conn
USERS = ("coord_a1", "coord_a23", "admin_a", "coord_b1", "admin_b", "idle_a", "stranger")
STAFF = {"coord_a1", "coord_a23", "admin_a", "coord_b1", "admin_b"}


@dataclass
class World:
    orgs: dict[str, uuid.UUID] = field(default_factory=dict)
    chapters: dict[str, uuid.UUID] = field(default_factory=dict)
    mentors: dict[str, uuid.UUID] = field(default_factory=dict)
    users: dict[str, uuid.UUID] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)  # mentor name -> letter id

    def mentor_names(self, user: str) -> set[str]:
        """Who `user` may see, by the rules as written in the issue."""
        return {
            "coord_a1": {"m_a1", "m_a12"},
            "coord_a23": {"m_a2", "m_a12", "m_a3"},
            "admin_a": {"m_a1", "m_a2", "m_a12", "m_a3", "m_a0"},
            "coord_b1": {"m_b1"},
            "admin_b": {"m_b1", "m_stray"},
        }.get(user, set())

    def visible_mentors(self, user: str) -> set[uuid.UUID]:
        return {self.mentors[name] for name in self.mentor_names(user)}

    def invisible_mentors(self, user: str) -> set[uuid.UUID]:
        return set(self.mentors.values()) - self.visible_mentors(user)

    def chapter_names(self, user: str) -> set[str]:
        return {
            "coord_a1": {"A1"},
            "coord_a23": {"A2", "A3"},
            "admin_a": {"A1", "A2", "A3"},
            "coord_b1": {"B1"},
            "admin_b": {"B1"},
        }.get(user, set())

    def visible_chapters(self, user: str) -> set[uuid.UUID]:
        return {self.chapters[name] for name in self.chapter_names(user)}

    def org_of(self, user: str) -> uuid.UUID | None:
        """The organisation `user` belongs to (None for the stranger)."""
        return self.orgs[ROLES[user][0]] if user in ROLES else None

    def admin_org(self, user: str) -> uuid.UUID | None:
        return self.orgs[ROLES[user][0]] if user in ROLES and ROLES[user][2] else None

    def coordinated(self, user: str) -> set[uuid.UUID]:
        return {self.chapters[c] for c in ROLES[user][1]} if user in ROLES else set()

    def memberships(self) -> set[tuple[uuid.UUID, uuid.UUID]]:
        return {
            (self.mentors[m], self.chapters[c]) for m, (_, chs) in MEMBERSHIP.items() for c in chs
        }

    def coordinations(self) -> set[tuple[uuid.UUID, uuid.UUID]]:
        return {(self.users[u], self.chapters[c]) for u, (_, chs, _) in ROLES.items() for c in chs}


MEMBERSHIP = {
    "m_a1": ("A", ("A1",)), "m_a2": ("A", ("A2",)), "m_a12": ("A", ("A1", "A2")),
    "m_a3": ("A", ("A3",)), "m_a0": ("A", ()), "m_b1": ("B", ("B1",)),
    "m_stray": ("B", ()),
}  # fmt: skip
ROLES: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "coord_a1": ("A", ("A1",), False), "coord_a23": ("A", ("A2", "A3"), False),
    "admin_a": ("A", (), True), "coord_b1": ("B", ("B1",), False), "admin_b": ("B", (), True),
    "idle_a": ("A", (), False),
}  # fmt: skip


def build(conn: Conn) -> World:
    """Create the world as the database owner, with rows in every table for every mentor."""
    w = World()
    for org in ("A", "B"):
        w.orgs[org] = f.make_org(conn, f"Org {org}")
    for name in ("A1", "A2", "A3", "B1"):
        w.chapters[name] = f.make_chapter(conn, w.orgs[name[0]], name)
    for name, (org, chapters) in MEMBERSHIP.items():
        w.mentors[name] = f.make_mentor(
            conn, w.orgs[org], chapters=tuple(w.chapters[c] for c in chapters),
            expires_on=date.today() + timedelta(days=20),
        )  # fmt: skip
    for name, (org, chapters, admin) in ROLES.items():
        w.users[name] = f.make_user(
            conn, w.orgs[org], coordinates=tuple(w.chapters[c] for c in chapters), admin=admin,
            token=f"device-{name}",
        )  # fmt: skip
    w.users["stranger"] = uuid.uuid4()
    for name, mentor in w.mentors.items():
        _mentor_rows(conn, w, name, mentor)
    _operations_rows(conn)
    return w


def _mentor_rows(conn: Conn, w: World, name: str, mentor: uuid.UUID) -> None:
    conn.execute(
        "INSERT INTO cert_expiry_reminders (mentor_id, threshold_day, certification_expiry_date)"
        " VALUES (%s, 30, current_date + 20)",
        [mentor],
    )
    queued = f.one(
        conn, "SELECT sync_queue_id FROM enqueue_sync(ARRAY[%s]::uuid[], 'force', 10, 'test')",
        [mentor],
    )  # fmt: skip
    w.dead_letters[name] = dead_letter(conn, queued)
    alert = f.one(
        conn,
        "INSERT INTO alerts (kind, incident_key, mentor_id, organization_id, payload)"
        " SELECT 'sync_failure', %s, id, organization_id, '{}' FROM peer_mentors WHERE id = %s"
        " RETURNING id",
        [f"test:{name}", mentor],
    )
    conn.execute(
        "INSERT INTO alert_deliveries (alert_id, user_id, device_token)"
        " SELECT %s, user_id, token FROM device_tokens",
        [alert],
    )


def dead_letter(conn: Conn, queued: int, reason: str = "retries_exhausted: HTTP 503") -> int:
    """Move a queued operation to the dead-letter queue the way the worker does."""
    conn.execute(
        "UPDATE sync_queue SET status = 'dead_lettered', attempt_count = 4, finished_at = now(),"
        " last_error = %s WHERE id = %s",
        [reason, queued],
    )
    letter: int = f.one(
        conn,
        "INSERT INTO dead_letter_queue (sync_queue_id, mentor_id, operation_type, payload_json,"
        " failure_reason, attempt_count)"
        " SELECT id, mentor_id, operation, payload_json, %s, 4 FROM sync_queue WHERE id = %s"
        " RETURNING id",
        [reason, queued],
    )
    conn.execute(
        "INSERT INTO audit_log (mentor_id, sync_queue_id, event_type, actor, details)"
        " SELECT mentor_id, id, 'dead_lettered', 'worker', %s FROM sync_queue WHERE id = %s",
        [json.dumps({"reason": reason, "attempt": 4, "duration_ms": 12.5, "http_status": 503}),
         queued],
    )  # fmt: skip
    return letter


def _operations_rows(conn: Conn) -> None:
    """Rows about no mentor: a breaker transition, an operations alert, a run, a health check."""
    conn.execute(
        "INSERT INTO audit_log (event_type, actor, details)"
        " VALUES ('breaker_transition', 'breaker', '{}')"
    )
    conn.execute(
        "INSERT INTO alerts (kind, incident_key, payload) VALUES ('breaker_open', 'test:ops', '{}')"
    )
    conn.execute(
        "INSERT INTO scheduled_runs (job, slot, status, finished_at)"
        " VALUES ('expiry_check', now(), 'succeeded', now())"
    )
    conn.execute("INSERT INTO credential_health (name, ok) VALUES ('dynamics', true)")


def claims(user_id: uuid.UUID) -> str:
    return json.dumps({"sub": str(user_id), "role": "authenticated", "aud": "authenticated"})


def as_user(conn: Conn, user_id: uuid.UUID) -> None:
    """Inside a transaction: become `user_id` exactly as the API does."""
    conn.execute("SET LOCAL ROLE authenticated")
    conn.execute("SELECT set_config('request.jwt.claims', %s, true)", [claims(user_id)])


def ids(conn: Conn, query: str, params: Any = None) -> set[Any]:
    rows = conn.execute(query.encode(), params).fetchall()
    return {row[0] if len(row) == 1 else tuple(row) for row in rows}
