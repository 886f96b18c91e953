"""Sample data: organisations, chapters, coordinators with devices, mentors and certifications.

Realistic in shape (Norwegian names, multi-chapter mentors and coordinators, certificates spread
over the past and next 90 days, a few long renewal histories) and fast: every table is loaded
with COPY, so 100,000 mentors take seconds. Deterministic for a given `seed` and the data already
there: on a database that has data, new organisations are added beside it (their ids drawn from
the seed and the number of organisations already present, so they never collide).
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import cast

import psycopg

from hlfsync.db.queries import q

# fmt: off
FIRST_NAMES = (
    "Ola", "Kari", "Per", "Anne", "Lars", "Ingrid", "Knut", "Solveig", "Bjørn", "Marit", "Håkon",
    "Astrid", "Eirik", "Sigrid", "Magnus", "Ragnhild", "Jørgen", "Tone", "Øystein", "Liv", "Trond",
    "Hilde", "Arne", "Gunn", "Sindre", "Åse", "Vegard", "Berit", "Torbjørn", "Nora", "Emil",
    "Ida", "Jonas", "Thea", "Sander", "Maja", "Henrik", "Frida", "Kristian", "Ingeborg",
)
LAST_NAMES = (
    "Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Kristiansen",
    "Jensen", "Karlsen", "Johnsen", "Pettersen", "Eriksen", "Berg", "Haugen", "Hagen",
    "Johannessen", "Andreassen", "Jacobsen", "Dahl", "Jørgensen", "Halvorsen", "Henriksen",
    "Lund", "Sørensen",
    "Jakobsen", "Moen", "Gundersen", "Iversen", "Strand", "Solberg", "Svendsen", "Eide", "Knutsen",
    "Martinsen", "Paulsen", "Bakken", "Kristoffersen", "Mathisen", "Lie", "Rønning", "Aasen",
)
PLACES = (
    "Oslo", "Bergen", "Trondheim", "Stavanger", "Kristiansand", "Drammen", "Fredrikstad", "Tromsø",
    "Sandnes", "Sarpsborg", "Bodø", "Ålesund", "Skien", "Tønsberg", "Moss", "Haugesund", "Arendal",
    "Hamar", "Larvik", "Halden", "Lillehammer", "Molde", "Kongsberg", "Gjøvik", "Harstad", "Alta",
    "Narvik", "Steinkjer", "Elverum", "Førde", "Mo i Rana", "Kristiansund", "Grimstad", "Hønefoss",
)
ORGANISATIONS = (
    "Hørselshemmedes Landsforbund", "Landsforeningen for hjerte- og lungesyke",
    "Norges Blindeforbund",
    "Norsk Revmatikerforbund", "Mental Helse", "Diabetesforbundet", "Astma- og Allergiforbundet",
    "Norges Parkinsonforbund", "Afasiforbundet i Norge", "Cerebral Parese-foreningen",
)
# fmt: on

LONG_HISTORY_ENTRIES = 520  # beyond the size guard (500), so the guard has something to find


@dataclass
class SeedResult:
    """What was created, and the contacts a sandbox must know about."""

    organizations: int = 0
    chapters: int = 0
    coordinators: int = 0
    admins: int = 0
    device_tokens: int = 0
    mentors: int = 0
    memberships: int = 0
    multi_chapter_mentors: int = 0
    multi_chapter_coordinators: int = 0
    certifications: int = 0
    contacts: list[tuple[uuid.UUID, bool]] = field(default_factory=list, repr=False)

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if isinstance(v, int)}


class _Ids:
    """UUIDs drawn from the seeded RNG, so a seed reproduces the same data."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def __call__(self) -> uuid.UUID:
        return uuid.UUID(int=self._rng.getrandbits(128), version=4)


def _copy(
    conn: psycopg.Connection[tuple[object, ...]],
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
) -> None:
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with conn.cursor() as cur, cur.copy(statement.encode()) as copy:
        for row in rows:
            copy.write_row(row)


def _name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def _history(expires_on: date, entries: int) -> str:
    """A renewal history ending at the current expiry, schema version 1, oldest first."""
    items = []
    new = expires_on
    for _ in range(entries):
        previous = new - timedelta(days=730)
        items.append(
            {
                "schema_version": 1,
                "renewed_at": datetime.combine(previous, datetime.min.time()).isoformat() + "Z",
                "previous_expires_on": previous.isoformat(),
                "new_expires_on": new.isoformat(),
                "renewed_by": "seed",
            }
        )
        new = previous
    items.reverse()
    return json.dumps(items)


@dataclass
class _Plan:
    """Rows to load, table by table, in dependency order."""

    rng: random.Random
    new_id: _Ids
    result: SeedResult = field(default_factory=SeedResult)
    orgs: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    existing_orgs: int = 0
    existing_users: int = 0
    chapters: list[tuple[uuid.UUID, uuid.UUID, str]] = field(default_factory=list)
    chapters_of: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)
    users: list[tuple[uuid.UUID, uuid.UUID, str, str]] = field(default_factory=list)
    coordinators: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)
    admins: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)
    mentors: list[tuple[object, ...]] = field(default_factory=list)
    memberships: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)
    certifications: list[tuple[object, ...]] = field(default_factory=list)


def _plan_organisations(plan: _Plan, orgs: int, chapters: int) -> None:
    for i in range(plan.existing_orgs, plan.existing_orgs + orgs):
        oid = plan.new_id()
        plan.orgs.append((oid, ORGANISATIONS[i % len(ORGANISATIONS)]))
        plan.chapters_of[oid] = []
    org_ids = [oid for oid, _ in plan.orgs]
    for i in range(chapters):
        oid = org_ids[i % orgs]
        cid = plan.new_id()
        place = PLACES[(i // orgs) % len(PLACES)]
        suffix = "" if i // orgs < len(PLACES) else f" {i // orgs // len(PLACES) + 1}"
        plan.chapters.append((cid, oid, f"{place}{suffix}"))
        plan.chapters_of[oid].append(cid)


def _plan_people(plan: _Plan) -> None:
    for oid, _ in plan.orgs:
        own = plan.chapters_of[oid]
        for index, cid in enumerate(own):
            uid = plan.new_id()
            email = f"koordinator{plan.existing_users + len(plan.users) + 1}@example.no"
            plan.users.append((uid, oid, _name(plan.rng), email))
            plan.coordinators.append((uid, cid))
            # Every third coordinator also covers the next chapter: multi-chapter coordinators.
            if index % 3 == 0 and len(own) > 1:
                plan.coordinators.append((uid, own[(index + 1) % len(own)]))
                plan.result.multi_chapter_coordinators += 1
        admin = plan.new_id()
        email = f"admin{plan.existing_orgs + len(plan.admins) + 1}@example.no"
        plan.users.append((admin, oid, _name(plan.rng), email))
        plan.admins.append((admin, oid))


def _status(rng: random.Random, expired: bool) -> tuple[str, str | None]:
    """Most expired mentors are already paused; some wait for tonight's check."""
    roll = rng.random()
    if expired:
        return ("paused", "certification_expired") if roll < 0.8 else ("active", None)
    if roll < 0.07:
        return "paused", "manual"
    if roll < 0.10:
        return "inactive", "left_programme"
    return "active", None


def _plan_mentors(plan: _Plan, mentors: int, today: date) -> None:
    rng = plan.rng
    org_ids = [oid for oid, _ in plan.orgs]
    long_histories = min(3, mentors)
    for n in range(mentors):
        mid = plan.new_id()
        oid = org_ids[n % len(org_ids)]
        expires_on = today + timedelta(days=rng.randint(-90, 90))
        status, reason = _status(rng, expires_on < today)
        contact = plan.new_id() if rng.random() < 0.99 else None
        plan.mentors.append((mid, oid, _name(rng), status, reason, contact))
        if contact is not None:
            plan.result.contacts.append((contact, status == "active"))
        own = plan.chapters_of[oid]
        roll = rng.random()
        picks = 3 if roll < 0.03 else 2 if roll < 0.18 else 1
        picked = rng.sample(own, min(picks, len(own)))
        plan.memberships.extend((mid, cid) for cid in picked)
        plan.result.multi_chapter_mentors += len(picked) > 1
        if n < long_histories:
            history = _history(expires_on, LONG_HISTORY_ENTRIES)
        elif rng.random() < 0.01:
            history = _history(expires_on, rng.randint(1, 4))
        else:
            history = "[]"
        plan.certifications.append((mid, expires_on - timedelta(days=730), expires_on, history))


def _load(conn: psycopg.Connection[tuple[object, ...]], plan: _Plan) -> None:
    tokens = [
        (uid, f"seed-{uid.hex}-{plan.rng.getrandbits(64):016x}", "android")
        for uid, *_ in plan.users
    ]
    with conn.transaction():
        _copy(conn, "organizations", ("id", "name"), plan.orgs)
        _copy(conn, "org_settings", ("organization_id",), [(oid,) for oid, _ in plan.orgs])
        _copy(conn, "chapters", ("id", "organization_id", "name"), plan.chapters)
        _copy(conn, "app_users", ("id", "organization_id", "full_name", "email"), plan.users)
        _copy(conn, "coordinator_chapters", ("user_id", "chapter_id"), plan.coordinators)
        _copy(conn, "organization_admins", ("user_id", "organization_id"), plan.admins)
        _copy(conn, "device_tokens", ("user_id", "token", "platform"), tokens)
        _copy(conn, "peer_mentors", MENTOR_COLUMNS, plan.mentors)
        _copy(conn, "chapter_memberships", ("mentor_id", "chapter_id"), plan.memberships)
        _copy(conn, "certifications", CERT_COLUMNS, plan.certifications)
        conn.execute("ANALYZE")
    plan.result.device_tokens = len(tokens)


def _existing(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[int, int]:
    row = conn.execute(q("seed_existing")).fetchone()
    return (int(str(row[0])), int(str(row[1]))) if row else (0, 0)


MENTOR_COLUMNS = (
    "id", "organization_id", "full_name", "status", "status_reason", "dynamics_contact_id"
)  # fmt: skip
CERT_COLUMNS = ("mentor_id", "issued_on", "expires_on", "renewal_history")


def seed(
    conn: psycopg.Connection[tuple[object, ...]],
    *,
    mentors: int,
    orgs: int = 3,
    chapters: int | None = None,
    today: date,
    seed: int = 1,
) -> SeedResult:
    """Load sample data in one transaction; returns what was created."""
    if mentors < 0 or orgs < 1:
        raise ValueError("mentors must be >= 0 and orgs >= 1")
    chapters = chapters if chapters is not None else max(orgs * 4, 1)
    if chapters < orgs:
        raise ValueError("need at least one chapter per organisation")
    existing_orgs, existing_users = _existing(conn)
    # Sample data, not secrets: a seeded, reproducible generator is the point. Beside existing
    # data the generator also depends on what is there, so a second run adds, never collides.
    rng = random.Random(seed if existing_orgs == 0 else f"{seed}/{existing_orgs}")  # noqa: S311
    plan = _Plan(
        rng=rng, new_id=_Ids(rng), existing_orgs=existing_orgs, existing_users=existing_users
    )
    _plan_organisations(plan, orgs, chapters)
    _plan_people(plan)
    _plan_mentors(plan, mentors, today)
    _load(conn, plan)
    result = plan.result
    result.organizations = len(plan.orgs)
    result.chapters = len(plan.chapters)
    result.coordinators = len({uid for uid, _ in plan.coordinators})
    result.admins = len(plan.admins)
    result.mentors = len(plan.mentors)
    result.memberships = len(plan.memberships)
    result.certifications = len(plan.certifications)
    return result


def contacts(conn: psycopg.Connection[tuple[object, ...]]) -> list[tuple[uuid.UUID, bool]]:
    """Every linked mentor's contact id and whether it should be listed (`SeedResult.contacts`
    for the mentors already in the database): what a sandbox must hold."""
    rows = conn.execute(q("seed_mentor_contacts")).fetchall()
    return [(cast(uuid.UUID, contact), bool(listed)) for contact, listed in rows]
