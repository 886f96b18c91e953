"""Migrations: ordered, recorded, idempotent, forward-only, and the same on PostgreSQL 15 and 18."""

from __future__ import annotations

import os

import psycopg
import pytest
from psycopg import sql

from hlfsync.core.errors import ConfigError
from hlfsync.db import connect, migrate

TABLES = {
    "organizations", "chapters", "app_users", "chapter_memberships", "coordinator_chapters",
    "organization_admins", "device_tokens", "peer_mentors", "certifications", "org_settings",
    "cert_expiry_reminders", "sync_queue", "dead_letter_queue", "audit_log", "circuit_breakers",
    "credential_health", "alerts", "alert_deliveries", "scheduled_runs", "schema_migrations",
}  # fmt: skip


def _fresh(pg_admin_url: str, name: str) -> str:
    name = f"{name}_{os.getpid()}"  # xdist workers may share a server (HLFSYNC_TEST_DATABASE_URL)
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return connect.with_database(pg_admin_url, name)


def test_empty_database_gets_every_table_and_a_record_of_each_file(pg_admin_url: str) -> None:
    """An empty database ends with the whole schema and one schema_migrations row per file."""
    url = _fresh(pg_admin_url, "mig_empty")
    with psycopg.connect(url) as conn:
        ran = migrate.upgrade(conn)
        assert [a.version for a in ran] == [m.version for m in migrate.available()]
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        }
        assert tables >= TABLES
        recorded = conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
        assert [r[0] for r in recorded] == [m.version for m in migrate.available()]


def test_second_upgrade_applies_nothing(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Upgrading an up-to-date database runs no migration and changes no record."""
    before = conn.execute("SELECT version, applied_at FROM schema_migrations").fetchall()
    assert migrate.upgrade(conn) == []
    assert migrate.upgrade(conn) == []
    after = conn.execute("SELECT version, applied_at FROM schema_migrations").fetchall()
    assert before == after
    assert migrate.pending(conn) == []


def test_an_applied_file_that_changed_is_refused(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    """A migration edited after it ran is refused with one line, never re-run."""
    conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 2")
    with pytest.raises(ConfigError, match=r"0002_domain\.sql changed after it was applied"):
        migrate.upgrade(conn)


def test_supabase_objects_are_kept_when_present(pg_admin_url: str) -> None:
    """Roles and auth functions that already exist (as on Supabase) are left as they are."""
    url = _fresh(pg_admin_url, "mig_supabase")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA auth")
        conn.execute(
            "CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE"
            " AS $$ SELECT '00000000-0000-0000-0000-000000000001'::uuid $$"
        )
        migrate.upgrade(conn)
        row = conn.execute("SELECT auth.uid()::text").fetchone()
        assert row == ("00000000-0000-0000-0000-000000000001",)


def test_auth_uid_reads_the_sub_claim(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """auth.uid() and auth.jwt() read request.jwt.claims as Supabase sets it."""
    with conn.transaction():
        conn.execute(
            "SELECT set_config('request.jwt.claims', %s, true)",
            ['{"sub": "6f1c1d8e-0a1b-4c2d-8e3f-123456789abc", "role": "authenticated"}'],
        )
        row = conn.execute("SELECT auth.uid()::text, auth.role(), auth.jwt() ->> 'sub'").fetchone()
    assert row == (
        "6f1c1d8e-0a1b-4c2d-8e3f-123456789abc",
        "authenticated",
        "6f1c1d8e-0a1b-4c2d-8e3f-123456789abc",
    )
