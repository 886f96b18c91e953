"""db/schema.sql is the schema the migrations build: a stale snapshot fails with the fix."""

from __future__ import annotations

import difflib
import re
import subprocess

import psycopg
import pytest

from hlfsync.db import schema


def test_the_snapshot_is_what_the_migrations_build(template_url: str) -> None:
    """A normalised pg_dump of the migrated template equals the committed db/schema.sql."""
    version = subprocess.run(
        [str(schema.pg_dump_path()), "--version"], capture_output=True, text=True, check=True
    ).stdout
    with psycopg.connect(template_url) as conn:
        server = conn.info.server_version // 10000
    if int(re.findall(r"(\d+)\.", version)[0]) != server:
        pytest.skip(f"pg_dump ({version.strip()}) is not the server's version ({server})")
    fresh = schema.dump(template_url)
    committed = schema.SNAPSHOT.read_text(encoding="utf-8")
    diff = list(
        difflib.unified_diff(
            committed.splitlines(), fresh.splitlines(), "schema.sql", "migrations", lineterm="", n=1
        )
    )
    assert not diff, (
        f"src/hlfsync/db/schema.sql differs from what the migrations build; regenerate it with "
        f"`{schema.REGENERATE}` and commit it. First differences:\n" + "\n".join(diff[:40])
    )


def test_normalising_drops_what_changes_between_dumps() -> None:
    """Versions, session settings and the \\restrict key go; the schema's own lines stay."""
    raw = (
        "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc123\n\n"
        "-- Dumped from database version 18.1\n-- Dumped by pg_dump version 18.1\n\n"
        "SET statement_timeout = 0;\n"
        "SELECT pg_catalog.set_config('search_path', '', false);\n\n\n\n"
        "CREATE TABLE public.t (id int);\n\n\\unrestrict abc123\n\n"
        "--\n-- PostgreSQL database dump complete\n--\n"
    )
    assert schema.normalise(raw) == schema.HEADER + "\nCREATE TABLE public.t (id int);\n"
