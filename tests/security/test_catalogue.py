"""What Supabase's database advisor checks, over the whole catalogue so that no migration (ours
or one still to come) can regress: every function has a fixed search_path, every policy reads
auth.* and settings once per statement, and the API roles may write only audited columns."""

from __future__ import annotations

import re
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]
# auth.uid(), auth.jwt(), auth.role() or current_setting(...) not inside a scalar sub-select.
_CALL = re.compile(r"(auth\.(?:uid|jwt|role)\(\)|current_setting\()")
_WRAPPED = re.compile(r"\(\s*SELECT\s+(auth\.(?:uid|jwt|role)\(\)|current_setting\()", re.I)


def _schema_functions(conn: Conn) -> list[tuple[str, list[str] | None, bool]]:
    """Every function in public that no extension owns: signature, settings, SECURITY DEFINER."""
    return conn.execute(
        "SELECT p.oid::regprocedure::text, p.proconfig, p.prosecdef FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = 'public' AND p.prokind IN ('f', 'p')"
        " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass"
        "                 AND d.objid = p.oid AND d.deptype = 'e')"
    ).fetchall()


def test_every_function_has_a_fixed_search_path(conn: Conn) -> None:
    """No function in public resolves names through the caller's search_path."""
    functions = _schema_functions(conn)
    assert len(functions) > 20, "the catalogue query found too little to mean anything"
    loose = [
        name
        for name, config, _ in functions
        if not any(item.startswith("search_path=") for item in config or [])
    ]
    assert loose == []


def test_no_definer_function_searches_a_schema_others_may_write(conn: Conn) -> None:
    """A SECURITY DEFINER function's search_path holds only public and pg_temp (last), or is
    empty: never a schema a caller could plant objects in ahead of ours."""
    bad = []
    for name, config, definer in _schema_functions(conn):
        path = next((i.split("=", 1)[1] for i in config or [] if i.startswith("search_path=")), "")
        parts = [p.strip().strip('"') for p in path.split(",") if p.strip().strip('"')]
        if definer and parts not in ([], ["public", "pg_temp"], ["pg_temp"]):
            bad.append((name, path))
    assert bad == []


def test_every_policy_reads_the_caller_once_per_statement(conn: Conn) -> None:
    """Every policy wraps auth.uid()/jwt()/role() and current_setting() in a sub-select, so
    PostgreSQL evaluates them once per statement, not once per row."""
    policies = conn.execute(
        "SELECT schemaname || '.' || tablename || '.' || policyname,"
        " coalesce(qual, '') || ' ' || coalesce(with_check, '') FROM pg_policies"
    ).fetchall()
    assert len(policies) > 20
    per_row = [
        name for name, text in policies if len(_CALL.findall(text)) != len(_WRAPPED.findall(text))
    ]
    assert per_row == []


def test_the_checks_catch_what_they_look_for(conn: Conn) -> None:
    """A function without search_path and a per-row auth.uid() policy are both flagged."""
    with conn.transaction(force_rollback=True):
        conn.execute("CREATE FUNCTION public.sloppy() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        conn.execute(
            "CREATE POLICY sloppy ON public.device_tokens FOR SELECT TO authenticated"
            " USING (user_id = auth.uid())"
        )
        loose = [n for n, c, _ in _schema_functions(conn) if not c]
        assert loose == ["sloppy()"]
        [(text,)] = conn.execute(
            "SELECT qual FROM pg_policies WHERE policyname = 'sloppy'"
        ).fetchall()
        assert len(_CALL.findall(text)) == 1
        assert _WRAPPED.findall(text) == []


def test_the_api_roles_may_update_status_and_its_reason_only(conn: Conn) -> None:
    """The only columns `authenticated` or `anon` may UPDATE (or INSERT) are peer_mentors.status
    and status_reason, both audited on change (test_attribution); a new grant fails here until
    it is audited and listed."""
    granted = conn.execute(
        "SELECT DISTINCT grantee, table_name, column_name, privilege_type"
        " FROM information_schema.column_privileges"
        " WHERE table_schema = 'public' AND grantee IN ('authenticated', 'anon')"
        " AND privilege_type IN ('UPDATE', 'INSERT')"
    ).fetchall()
    assert set(granted) == {
        ("authenticated", "peer_mentors", "status", "UPDATE"),
        ("authenticated", "peer_mentors", "status_reason", "UPDATE"),
    }
    tables = conn.execute(
        "SELECT DISTINCT table_name, privilege_type FROM information_schema.table_privileges"
        " WHERE table_schema = 'public' AND grantee IN ('authenticated', 'anon', 'PUBLIC')"
        " AND privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')"
    ).fetchall()
    assert tables == []


def test_what_authenticated_may_execute_is_known(conn: Conn) -> None:
    """Each SECURITY DEFINER function `authenticated` may call (Supabase exposes them over RPC)
    is one this suite probes for scope (test_definer_functions); a new one fails here first."""
    callable_ = {
        name
        for (name,) in conn.execute(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = 'public' AND p.prosecdef"
            " AND p.prorettype <> 'trigger'::regtype"  # a trigger function cannot be called
            " AND has_function_privilege('authenticated', p.oid, 'EXECUTE')"
        ).fetchall()
    }
    assert callable_ == {
        "auth_user_org", "auth_admin_orgs", "auth_coordinated_chapters", "auth_visible_chapters",
        "auth_is_staff", "can_see_mentor", "api_require_mentor", "api_force_sync",
        "api_requeue_dead_letter", "api_resolve_dead_letter", "api_queue_overview",
        # the dashboard's (0014): probed in test_definer_functions
        "auth_visible_mentors", "auth_mentors_named", "dashboard_counts", "dashboard_hourly",
        # the caller's mentor classes and status walk (0019): probed in test_definer_functions
        "auth_visible_classes", "auth_mentors_of_status",
    }  # fmt: skip
