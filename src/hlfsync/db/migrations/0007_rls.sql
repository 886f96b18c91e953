-- Why: coordinators, administrators and the Flutter app read mentor data as themselves (our API,
-- or PostgREST on Supabase). Row-level security makes the database enforce who sees what, so no
-- query, present or future, can show anyone another chapter's or organisation's mentors:
--   * a coordinator sees exactly the mentors of the chapters they coordinate (the union over
--     their chapters; a mentor in several chapters is seen by each chapter's coordinators);
--   * an organisation admin sees the whole organisation;
--   * nobody sees another organisation; `anon` sees nothing at all.
-- The rule is written once, as the policy on peer_mentors; every mentor-keyed table defers to
-- it. Who the caller is comes from small `auth_*` helpers over the membership tables, SECURITY
-- DEFINER so that reading a membership table inside a policy is not itself filtered by that
-- table's policy (no recursion). The API roles may only read; their writes (force sync,
-- re-queue, resolve) go through `api_*` functions that check the same scope and audit the caller.
--
-- Who is let through: superusers always bypass RLS (the embedded server). FORCE makes the
-- tables' owner obey the policies like anyone else, so every service connection (worker, CLI,
-- migrations; Supabase's `postgres` has BYPASSRLS) must have BYPASSRLS or be a member of
-- `service_role`, which the `service_access` policies admit. The migrating role is made a member
-- here when it is neither; if it may not grant that, the migration stops and says what to run.
--
-- On Supabase the public schema also holds the app's own tables and Supabase grants everything
-- on new objects to anon and authenticated by default: every statement below therefore names
-- hlfsync's tables and functions one by one, revokes before it grants, and touches nothing else.

DO $$
DECLARE
    me record;
BEGIN
    SELECT rolsuper, rolbypassrls INTO me FROM pg_roles WHERE rolname = current_user;
    IF me.rolsuper OR me.rolbypassrls OR pg_has_role(current_user, 'service_role', 'USAGE') THEN
        RETURN;
    END IF;
    BEGIN
        EXECUTE format('GRANT service_role TO %I', current_user);
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'role % must be a member of service_role or have BYPASSRLS (row-level '
                        'security is forced on hlfsync''s tables); as an administrator run: '
                        'GRANT service_role TO %', current_user, quote_ident(current_user)
            USING ERRCODE = 'insufficient_privilege';
    END;
END
$$;

-- Every hlfsync table: RLS enabled and forced, nothing for the API roles until granted below,
-- everything for the service.
DO $$
DECLARE
    t    text;
    seq  text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'organizations', 'chapters', 'app_users', 'coordinator_chapters', 'organization_admins',
        'device_tokens', 'peer_mentors', 'chapter_memberships', 'certifications', 'org_settings',
        'cert_expiry_reminders', 'sync_queue', 'dead_letter_queue', 'audit_log',
        'circuit_breakers', 'credential_health', 'alerts', 'alert_deliveries', 'scheduled_runs',
        'schema_migrations']
    LOOP
        EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE public.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('REVOKE ALL ON TABLE public.%I FROM PUBLIC, anon, authenticated', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE public.%I TO service_role', t);
        EXECUTE format('CREATE POLICY service_access ON public.%I TO service_role '
                       'USING (true) WITH CHECK (true)', t);
        FOR seq IN
            SELECT s.oid::regclass::text
              FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
             WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
               AND d.refobjid = format('public.%I', t)::regclass
        LOOP
            EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM PUBLIC, anon, authenticated', seq);
            EXECUTE format('GRANT USAGE, SELECT, UPDATE ON SEQUENCE %s TO service_role', seq);
        END LOOP;
    END LOOP;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Who the caller is, from the membership tables. auth.uid() is the JWT's `sub`; without claims
-- every helper is empty. Policies call them inside a sub-select (`x IN (SELECT helper())`,
-- `(SELECT helper())`), which PostgreSQL evaluates once per query, not once per row.
-- ---------------------------------------------------------------------------------------------

-- The organisation the caller belongs to, if they are a user of hlfsync.
CREATE FUNCTION auth_user_org() RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT organization_id FROM app_users WHERE id = auth.uid()
$$;

-- The organisations the caller administers.
CREATE FUNCTION auth_admin_orgs() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT organization_id FROM organization_admins WHERE user_id = auth.uid()
$$;

-- The chapters the caller coordinates, in their own organisation only: a stray row linking a
-- coordinator to another organisation's chapter opens nothing.
CREATE FUNCTION auth_coordinated_chapters() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT cc.chapter_id
      FROM coordinator_chapters cc
      JOIN app_users u ON u.id = cc.user_id
      JOIN chapters c ON c.id = cc.chapter_id AND c.organization_id = u.organization_id
     WHERE cc.user_id = auth.uid()
$$;

-- The chapters the caller may see: those they coordinate, and every chapter of the
-- organisations they administer.
CREATE FUNCTION auth_visible_chapters() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT auth_coordinated_chapters()
    UNION
    SELECT c.id FROM chapters c WHERE c.organization_id IN (SELECT auth_admin_orgs())
$$;

-- Coordinators and administrators ("staff") may see operational state, which holds no mentor
-- data: the breaker, credential checks, scheduled runs, queue totals. A signed-in mentor may not.
CREATE FUNCTION auth_is_staff() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT EXISTS (SELECT auth_coordinated_chapters()) OR EXISTS (SELECT auth_admin_orgs())
$$;

-- ---------------------------------------------------------------------------------------------
-- THE rule, on peer_mentors: a mentor is visible to the administrators of the mentor's
-- organisation, and to the coordinators (of the same organisation) of any chapter the mentor
-- belongs to. Every other mentor-keyed table defers to it ("the mentor is visible"), so it is
-- stated once. It costs an index probe per row a query touches, however many mentors the
-- caller may see.
-- ---------------------------------------------------------------------------------------------

CREATE POLICY in_scope ON peer_mentors FOR SELECT TO authenticated USING (
    organization_id IN (SELECT auth_admin_orgs())
    OR (organization_id = (SELECT auth_user_org())
        AND EXISTS (SELECT 1 FROM chapter_memberships cm
                     WHERE cm.mentor_id = peer_mentors.id
                       AND cm.chapter_id IN (SELECT auth_coordinated_chapters()))));

-- The same rule for the SECURITY DEFINER write functions, where policies do not apply to the
-- owner they run as. A test compares it with the policy for every user and mentor.
CREATE FUNCTION can_see_mentor(mentor uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT EXISTS (
        SELECT 1 FROM peer_mentors p
         WHERE p.id = mentor
           AND (p.organization_id IN (SELECT auth_admin_orgs())
                OR (p.organization_id = auth_user_org()
                    AND EXISTS (SELECT 1 FROM chapter_memberships cm
                                 WHERE cm.mentor_id = p.id
                                   AND cm.chapter_id IN (SELECT auth_coordinated_chapters())))))
$$;

-- The app pauses and restores mentors by updating `status` (only that column is granted); the
-- outbox trigger, SECURITY DEFINER below, queues the sync and audits the caller.
CREATE POLICY in_scope_status ON peer_mentors FOR UPDATE TO authenticated
    USING (can_see_mentor(id)) WITH CHECK (can_see_mentor(id));

CREATE POLICY mentor_in_scope ON certifications FOR SELECT TO authenticated
    USING (EXISTS (SELECT 1 FROM peer_mentors p WHERE p.id = certifications.mentor_id));
CREATE POLICY mentor_in_scope ON cert_expiry_reminders FOR SELECT TO authenticated
    USING (EXISTS (SELECT 1 FROM peer_mentors p WHERE p.id = cert_expiry_reminders.mentor_id));
CREATE POLICY mentor_in_scope ON sync_queue FOR SELECT TO authenticated
    USING (EXISTS (SELECT 1 FROM peer_mentors p WHERE p.id = sync_queue.mentor_id));
CREATE POLICY mentor_in_scope ON dead_letter_queue FOR SELECT TO authenticated
    USING (EXISTS (SELECT 1 FROM peer_mentors p WHERE p.id = dead_letter_queue.mentor_id));
-- Audit rows about no mentor (breaker transitions) are operations' business, not the API's.
CREATE POLICY mentor_in_scope ON audit_log FOR SELECT TO authenticated
    USING (EXISTS (SELECT 1 FROM peer_mentors p WHERE p.id = audit_log.mentor_id));
-- Alerts about a mentor follow the mentor; operational alerts (breaker, credentials) go to
-- administrators, as their deliveries do.
CREATE POLICY mentor_in_scope ON alerts FOR SELECT TO authenticated USING (
    EXISTS (SELECT 1 FROM peer_mentors p WHERE p.id = alerts.mentor_id)
    OR (mentor_id IS NULL AND EXISTS (SELECT auth_admin_orgs())
        AND (organization_id IS NULL OR organization_id IN (SELECT auth_admin_orgs()))));

-- The rest of the organisation's structure: chapters and who coordinates them as far as the
-- caller's chapters reach, people as far as the caller administers.
CREATE POLICY member_reads ON organizations FOR SELECT TO authenticated
    USING (id = (SELECT auth_user_org()) OR id IN (SELECT auth_admin_orgs()));
CREATE POLICY member_reads ON org_settings FOR SELECT TO authenticated
    USING (organization_id = (SELECT auth_user_org())
           OR organization_id IN (SELECT auth_admin_orgs()));
CREATE POLICY in_scope ON chapters FOR SELECT TO authenticated
    USING (id IN (SELECT auth_visible_chapters()));
-- Not "and the mentor is visible": peer_mentors' policy reads this table, and a policy cycle
-- is refused. A membership row shows a mentor id, nothing of the mentor.
CREATE POLICY in_scope ON chapter_memberships FOR SELECT TO authenticated
    USING (chapter_id IN (SELECT auth_visible_chapters()));
CREATE POLICY in_scope ON coordinator_chapters FOR SELECT TO authenticated
    USING (chapter_id IN (SELECT auth_visible_chapters()));
CREATE POLICY self_or_admin ON app_users FOR SELECT TO authenticated
    USING (id = auth.uid() OR organization_id IN (SELECT auth_admin_orgs()));
CREATE POLICY self_or_admin ON organization_admins FOR SELECT TO authenticated
    USING (user_id = auth.uid() OR organization_id IN (SELECT auth_admin_orgs()));
-- Push tokens and their deliveries are their owner's alone, administrators included.
CREATE POLICY own ON device_tokens FOR SELECT TO authenticated
    USING (user_id = auth.uid());
CREATE POLICY own ON alert_deliveries FOR SELECT TO authenticated
    USING (user_id = auth.uid());

CREATE POLICY staff_reads ON circuit_breakers FOR SELECT TO authenticated
    USING ((SELECT auth_is_staff()));
CREATE POLICY staff_reads ON credential_health FOR SELECT TO authenticated
    USING ((SELECT auth_is_staff()));
CREATE POLICY staff_reads ON scheduled_runs FOR SELECT TO authenticated
    USING ((SELECT auth_is_staff()));

GRANT SELECT ON organizations, org_settings, chapters, chapter_memberships, coordinator_chapters,
    app_users, organization_admins, device_tokens, alert_deliveries, peer_mentors,
    certifications, cert_expiry_reminders, sync_queue, dead_letter_queue, audit_log, alerts,
    circuit_breakers, credential_health, scheduled_runs
    TO authenticated;
GRANT UPDATE (status, status_reason) ON peer_mentors TO authenticated;

-- ---------------------------------------------------------------------------------------------
-- What writes the service's tables on a caller's behalf runs with the owner's rights: a status
-- change by an `authenticated` user must still queue its sync and write its audit row.
-- ---------------------------------------------------------------------------------------------

ALTER FUNCTION peer_mentor_status_outbox() SECURITY DEFINER SET search_path = public, pg_temp;
ALTER FUNCTION peer_mentor_status_stamp() SET search_path = public, pg_temp;
ALTER FUNCTION enqueue_sync(uuid[], text, int, text)
    SECURITY DEFINER SET search_path = public, pg_temp;
ALTER FUNCTION requeue_dead_letters(bigint[], text)
    SECURITY DEFINER SET search_path = public, pg_temp;
ALTER FUNCTION resolve_dead_letter(bigint, text, text)
    SECURITY DEFINER SET search_path = public, pg_temp;
-- They take the actor as an argument, so only the service may call them directly; callers go
-- through the api_* functions, which name the actor themselves.
REVOKE EXECUTE ON FUNCTION peer_mentor_status_outbox(), peer_mentor_status_stamp(),
    enqueue_sync(uuid[], text, int, text), requeue_dead_letters(bigint[], text),
    resolve_dead_letter(bigint, text, text)
    FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION enqueue_sync(uuid[], text, int, text),
    requeue_dead_letters(bigint[], text), resolve_dead_letter(bigint, text, text)
    TO service_role;

-- ---------------------------------------------------------------------------------------------
-- The caller's writes: same scope, the caller (auth.uid()) as actor, one function each.
-- Out of scope and unknown look the same (insufficient_privilege), so nothing leaks.
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION api_require_mentor(mentor uuid) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF auth.uid() IS NULL OR mentor IS NULL OR NOT can_see_mentor(mentor) THEN
        RAISE EXCEPTION 'mentor % is not in your scope', mentor
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$$;

-- Queue an immediate sync of one mentor to the state its status asks for now. No row back: the
-- mentor has no Dynamics contact, so there is nothing to sync.
CREATE FUNCTION api_force_sync(mentor uuid)
RETURNS TABLE (mentor_id uuid, sync_queue_id bigint, operation text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM api_require_mentor(mentor);
    RETURN QUERY
        SELECT e.mentor_id, e.sync_queue_id, e.operation
          FROM enqueue_sync(ARRAY[mentor], 'force', 10, auth.uid()::text) e;
END
$$;

-- Re-queue one open dead letter. No row back: it was not open (already re-queued or resolved).
CREATE FUNCTION api_requeue_dead_letter(letter bigint)
RETURNS TABLE (dead_letter_id bigint, sync_queue_id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM api_require_mentor((SELECT l.mentor_id FROM dead_letter_queue l WHERE l.id = letter));
    RETURN QUERY
        SELECT r.dead_letter_id, r.sync_queue_id
          FROM requeue_dead_letters(ARRAY[letter], auth.uid()::text) r;
END
$$;

-- Close one open dead letter with a note. False: it was not open.
CREATE FUNCTION api_resolve_dead_letter(letter bigint, note text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM api_require_mentor((SELECT l.mentor_id FROM dead_letter_queue l WHERE l.id = letter));
    RETURN resolve_dead_letter(letter, note, auth.uid()::text);
END
$$;

-- Queue totals for the dashboard: operational state, global, without any mentor's data.
CREATE FUNCTION api_queue_overview()
RETURNS TABLE (queue jsonb, oldest_pending_at timestamptz, open_dead_letters int)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF NOT auth_is_staff() THEN
        RAISE EXCEPTION 'only coordinators and administrators see the queue'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN QUERY SELECT
        (SELECT coalesce(jsonb_object_agg(s.status, s.n), '{}'::jsonb)
           FROM (SELECT q.status, count(*)::int AS n FROM sync_queue q GROUP BY q.status) s),
        (SELECT min(q.created_at) FROM sync_queue q WHERE q.status IN ('pending', 'in_progress')),
        (SELECT count(*)::int FROM dead_letter_queue l WHERE l.status = 'open');
END
$$;

REVOKE EXECUTE ON FUNCTION auth_user_org(), auth_admin_orgs(), auth_coordinated_chapters(),
    auth_visible_chapters(), auth_is_staff(), can_see_mentor(uuid),
    api_require_mentor(uuid), api_force_sync(uuid), api_requeue_dead_letter(bigint),
    api_resolve_dead_letter(bigint, text), api_queue_overview()
    FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION auth_user_org(), auth_admin_orgs(), auth_coordinated_chapters(),
    auth_visible_chapters(), auth_is_staff(), can_see_mentor(uuid),
    api_require_mentor(uuid), api_force_sync(uuid), api_requeue_dead_letter(bigint),
    api_resolve_dead_letter(bigint, text), api_queue_overview()
    TO authenticated, service_role;

-- The admin's mentor pages walk an organisation in id order (keyset pagination).
CREATE INDEX peer_mentors_organization_id_idx ON peer_mentors (organization_id, id);
