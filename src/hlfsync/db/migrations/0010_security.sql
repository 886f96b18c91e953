-- Why: a security review (issue 15) found places where data or control crossed a line the rest
-- of the schema draws:
--   * attribution the caller controlled: the audit actor of a change made as `authenticated`
--     came from `hlfsync.actor`, a setting any session may set, and `status_reason` (writable
--     by coordinators, never audited, `hlfsync.reason` again) could turn a manual pause into an
--     expiry pause (a renewal then relists the mentor) or the reverse;
--   * alerts with no organisation (breaker open, credentials failing, the compensation check's
--     findings with mentor ids) were shown and pushed to the administrators of every
--     organisation; they are now for the service's operators only (`audience`);
--   * SECURITY DEFINER functions callable by `authenticated` told an unknown id from another
--     organisation's (and named the foreign mentor); queue totals and the scheduled runs'
--     statistics (with samples of mentor and contact ids) counted every organisation;
--   * functions without a fixed search_path and policies calling auth.uid() once per row
--     (Supabase's database advisor flags both).
-- Rule kept from 0007: the API roles read under row-level security and write only `status`
-- (through the outbox trigger) or through the api_* functions.

-- ---------------------------------------------------------------------------------------------
-- Who acts. A change made as an API role is the JWT subject's, whatever the session says; only
-- the service (any other role) may name another actor through `hlfsync.actor`.
-- ---------------------------------------------------------------------------------------------

-- True while the transaction runs as an API role, also inside a SECURITY DEFINER function it
-- called: `role` is the SET ROLE of the session (PostgREST's and our API's way in), which a
-- definer function does not change, and the API roles may not SET ROLE to anything else.
CREATE FUNCTION auth_is_api_caller() RETURNS boolean
LANGUAGE sql STABLE SET search_path = '' AS $$
    SELECT current_user IN ('authenticated', 'anon')
        OR coalesce(current_setting('role', true), 'none') IN ('authenticated', 'anon')
$$;

-- The actor of an audited change: the JWT subject for the API roles ("anonymous" without one);
-- for the service, its `hlfsync.actor`, else the JWT subject, else the database user.
CREATE FUNCTION audit_actor() RETURNS text
LANGUAGE sql STABLE SET search_path = '' AS $$
    SELECT CASE WHEN public.auth_is_api_caller()
                THEN coalesce(auth.uid()::text, 'anonymous')
                ELSE coalesce(nullif(current_setting('hlfsync.actor', true), ''),
                              auth.uid()::text, session_user::text)
           END
$$;

-- Renewals (history and audit) use the same chain.
CREATE OR REPLACE FUNCTION expiry_actor() RETURNS text
LANGUAGE sql STABLE SET search_path = '' AS $$
    SELECT public.audit_actor()
$$;

-- Reasons only the service's expiry lifecycle may write: an API role setting one would fake
-- an expiry pause (a renewal relists the mentor) or a renewal.
CREATE FUNCTION status_reason_reserved(reason text) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = '' AS $$
    SELECT coalesce(reason IN ('certification_expired', 'certification_renewed'), false)
$$;

-- A status change that does not say why takes its reason from `hlfsync.reason` (0004), but
-- only when the service writes: an API role's is "manual", whatever its session says.
-- (current_user is the role that ran the UPDATE: this trigger is not SECURITY DEFINER.)
CREATE OR REPLACE FUNCTION peer_mentor_status_stamp() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    NEW.status_changed_at := now();
    IF NEW.status_reason IS NOT DISTINCT FROM OLD.status_reason THEN
        NEW.status_reason := CASE WHEN current_user IN ('authenticated', 'anon') THEN 'manual'
                                  ELSE nullif(current_setting('hlfsync.reason', true), '') END;
    END IF;
    RETURN NEW;
END
$$;

-- The reason transitions an API role may make: never to a lifecycle reason, and never away
-- from one unless the status moves too (relisting an expired mentor by hand is a person's
-- call; quietly relabelling an expiry pause as manual, or the reverse, is not).
CREATE FUNCTION peer_mentor_reason_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = '' AS $$
BEGIN
    IF current_user NOT IN ('authenticated', 'anon')
       OR NEW.status_reason IS NOT DISTINCT FROM OLD.status_reason THEN
        RETURN NEW;
    END IF;
    IF public.status_reason_reserved(NEW.status_reason) THEN
        RAISE EXCEPTION 'status_reason % is set by the expiry check only', NEW.status_reason
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.status IS NOT DISTINCT FROM OLD.status
       AND public.status_reason_reserved(OLD.status_reason) THEN
        RAISE EXCEPTION 'the reason of an expiry pause or renewal changes only with the status'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;

-- Named to fire after peer_mentors_status_stamp (BEFORE triggers fire in name order), so it
-- judges the reason the row will really get.
CREATE TRIGGER peer_mentors_z_reason_guard
    BEFORE UPDATE ON peer_mentors
    FOR EACH ROW EXECUTE FUNCTION peer_mentor_reason_guard();

-- The outbox trigger of 0008, unchanged but for two things: the actor comes from audit_actor(),
-- and a change of `status_reason` alone (the other column the API roles may update) is audited
-- too, so every column the app role may write leaves a trace.
CREATE OR REPLACE FUNCTION peer_mentor_status_outbox() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    who         text := audit_actor();
    moved_ids   uuid[];
    queue_ids   bigint[];
BEGIN
    SELECT array_agg(s.id), array_agg(nextval(pg_get_serial_sequence('sync_queue', 'id')))
      INTO moved_ids, queue_ids
      FROM (SELECT n.id
              FROM changed_new n JOIN changed_old o ON o.id = n.id
             WHERE (o.status = 'active') IS DISTINCT FROM (n.status = 'active')
             ORDER BY n.id) AS s;

    IF moved_ids IS NOT NULL THEN
        UPDATE sync_queue q
           SET status = 'superseded', superseded_by = m.queued_id,
               finished_at = now(), updated_at = now()
          FROM unnest(moved_ids, queue_ids) AS m (mentor_id, queued_id)
         WHERE q.mentor_id = m.mentor_id AND q.status = 'pending';

        INSERT INTO sync_queue (id, mentor_id, operation, payload_json, source)
        OVERRIDING SYSTEM VALUE
        SELECT m.queued_id, n.id,
               CASE WHEN n.status = 'active' THEN 'restore' ELSE 'remove' END,
               jsonb_build_object('contact_id', n.dynamics_contact_id,
                                  'listed', n.status = 'active',
                                  'status', n.status,
                                  'reason', n.status_reason,
                                  'changed_at', now()),
               'status_change'
          FROM unnest(moved_ids, queue_ids) AS m (mentor_id, queued_id)
          JOIN changed_new n ON n.id = m.mentor_id
         ORDER BY m.queued_id;

        PERFORM pg_notify('hlfsync_sync_queue', queue_ids[array_upper(queue_ids, 1)]::text);
    END IF;

    INSERT INTO audit_log (mentor_id, sync_queue_id, event_type, actor, details)
    SELECT n.id, m.queued_id,
           CASE WHEN o.status IS DISTINCT FROM n.status THEN 'status_changed'
                ELSE 'status_reason_changed' END,
           who,
           jsonb_build_object('old_status', o.status, 'new_status', n.status,
                              'reason', n.status_reason,
                              'old_reason', o.status_reason,
                              'operation', CASE WHEN m.queued_id IS NULL THEN NULL
                                                WHEN n.status = 'active' THEN 'restore'
                                                ELSE 'remove' END)
      FROM changed_new n
      JOIN changed_old o ON o.id = n.id
      LEFT JOIN unnest(moved_ids, queue_ids) AS m (mentor_id, queued_id) ON m.mentor_id = n.id
     WHERE o.status IS DISTINCT FROM n.status
        OR o.status_reason IS DISTINCT FROM n.status_reason
     ORDER BY n.id;
    RETURN NULL;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Alerts belong to one organisation, or are for the service's operators only. Derived, so no
-- writer can get it wrong: an alert without an organisation is the operators'.
-- ---------------------------------------------------------------------------------------------

ALTER TABLE alerts
    ADD COLUMN audience text NOT NULL
        GENERATED ALWAYS AS (CASE WHEN organization_id IS NULL THEN 'operators'
                                  ELSE 'organization' END) STORED;
-- An alert about a mentor is about the mentor's organisation (raise_mentor_alert sets both).
ALTER TABLE alerts ADD CONSTRAINT alerts_mentor_has_organization
    CHECK (mentor_id IS NULL OR organization_id IS NOT NULL) NOT VALID;
CREATE INDEX alerts_operators_idx ON alerts (id) WHERE organization_id IS NULL;

DROP POLICY mentor_in_scope ON alerts;
CREATE POLICY in_scope ON alerts FOR SELECT TO authenticated USING (
    organization_id IS NOT NULL
    AND (EXISTS (SELECT 1 FROM peer_mentors p WHERE p.id = alerts.mentor_id)
         OR (mentor_id IS NULL AND organization_id IN (SELECT auth_admin_orgs()))));

-- The compensation check's findings name mentors of every organisation: operators only, no
-- push to anyone's phone (the operators' channel reads alerts of audience `operators`).
CREATE OR REPLACE FUNCTION raise_compensation_alert(at timestamptz DEFAULT NULL)
RETURNS TABLE (findings int, alert_id bigint, deliveries int)
LANGUAGE sql SET search_path = public, pg_temp AS $$
WITH found AS (
    SELECT f.*, f.finding || ':' || f.mentor_id || ':'
                || to_char(f.certification_expiry_date, 'YYYY-MM-DD') || ':'
                || coalesce(f.threshold_day::text, '-') AS fkey
      FROM expiry_duplicates() f
), summary AS (
    SELECT count(*)::int AS n, md5(coalesce(string_agg(fkey, ',' ORDER BY fkey), '')) AS digest,
           (SELECT coalesce(jsonb_agg(to_jsonb(x) - 'fkey'), '[]'::jsonb)
              FROM (SELECT * FROM found ORDER BY fkey LIMIT 50) x) AS sample
      FROM found
), raised AS (
    INSERT INTO alerts AS a (kind, incident_key, payload, details, created_at)
    SELECT 'compensation', 'expiry:' || s.digest,
           jsonb_build_object('type', 'hlf_compensation', 'findings', s.n::text),
           jsonb_build_object('check', 'expiry_duplicates', 'findings', s.n, 'sample', s.sample),
           coalesce(at, now())
      FROM summary s WHERE s.n > 0
    ON CONFLICT (kind, incident_key) DO NOTHING
    RETURNING a.id
), notified AS (
    SELECT pg_notify('hlfsync_alerts', 'compensation') AS woke
     WHERE EXISTS (SELECT 1 FROM raised)
)
SELECT s.n, (SELECT r.id FROM raised r), 0
  FROM summary s CROSS JOIN (SELECT count(*) FROM notified) AS woke
$$;

-- ---------------------------------------------------------------------------------------------
-- What `authenticated` may call answers the same for an unknown id and an id out of scope, and
-- counts only what the caller may see.
-- ---------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION api_require_mentor(mentor uuid) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF auth.uid() IS NULL OR mentor IS NULL OR NOT can_see_mentor(mentor) THEN
        -- Never the id: for a dead letter it would be the foreign mentor's.
        RAISE EXCEPTION 'not found' USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$$;

-- Queue totals for the dashboard, over the mentors the caller may see.
CREATE OR REPLACE FUNCTION api_queue_overview()
RETURNS TABLE (queue jsonb, oldest_pending_at timestamptz, open_dead_letters int)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF NOT auth_is_staff() THEN
        RAISE EXCEPTION 'only coordinators and administrators see the queue'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN QUERY
    WITH scope AS (
        SELECT p.id FROM peer_mentors p WHERE p.organization_id IN (SELECT auth_admin_orgs())
        UNION
        SELECT cm.mentor_id FROM chapter_memberships cm
          JOIN peer_mentors p ON p.id = cm.mentor_id AND p.organization_id = auth_user_org()
         WHERE cm.chapter_id IN (SELECT auth_coordinated_chapters())
    )
    SELECT
        (SELECT coalesce(jsonb_object_agg(s.status, s.n), '{}'::jsonb)
           FROM (SELECT q.status, count(*)::int AS n FROM sync_queue q
                  WHERE q.mentor_id IN (SELECT id FROM scope) GROUP BY q.status) s),
        (SELECT min(q.created_at) FROM sync_queue q
          WHERE q.status IN ('pending', 'in_progress') AND q.mentor_id IN (SELECT id FROM scope)),
        (SELECT count(*)::int FROM dead_letter_queue l
          WHERE l.status = 'open' AND l.mentor_id IN (SELECT id FROM scope));
END
$$;

-- Scheduled runs: staff see which job ran when and how it ended, not its statistics or error
-- (reconciliation keeps samples of every organisation's mentor and contact ids there).
REVOKE SELECT ON scheduled_runs FROM authenticated;
GRANT SELECT (id, job, slot, status, started_at, finished_at, heartbeat_at, attempts)
    ON scheduled_runs TO authenticated;

-- ---------------------------------------------------------------------------------------------
-- Supabase's advisor: every function keeps a fixed search_path, every policy reads auth.uid()
-- once per statement. (tests/security/test_catalogue.py checks both over the whole catalogue.)
-- ---------------------------------------------------------------------------------------------

ALTER FUNCTION valid_threshold_days(int[]) SET search_path = public, pg_temp;
ALTER FUNCTION refuse_delete() SET search_path = public, pg_temp;
ALTER FUNCTION expiry_today(timestamptz) SET search_path = public, pg_temp;
ALTER FUNCTION expiry_threshold(int, int[]) SET search_path = public, pg_temp;
ALTER FUNCTION raise_mentor_alerts(text, timestamptz, uuid[], text[], jsonb[], jsonb[])
    SET search_path = public, pg_temp;
ALTER FUNCTION expiry_send_reminders(date, text, timestamptz) SET search_path = public, pg_temp;
ALTER FUNCTION expiry_pause_expired(date, text, timestamptz) SET search_path = public, pg_temp;
ALTER FUNCTION certification_renewal_history() SET search_path = public, pg_temp;
ALTER FUNCTION expiry_duplicates() SET search_path = public, pg_temp;

DROP POLICY self_or_admin ON app_users;
CREATE POLICY self_or_admin ON app_users FOR SELECT TO authenticated
    USING (id = (SELECT auth.uid()) OR organization_id IN (SELECT auth_admin_orgs()));
DROP POLICY self_or_admin ON organization_admins;
CREATE POLICY self_or_admin ON organization_admins FOR SELECT TO authenticated
    USING (user_id = (SELECT auth.uid()) OR organization_id IN (SELECT auth_admin_orgs()));
DROP POLICY own ON device_tokens;
CREATE POLICY own ON device_tokens FOR SELECT TO authenticated
    USING (user_id = (SELECT auth.uid()));
DROP POLICY own ON alert_deliveries;
CREATE POLICY own ON alert_deliveries FOR SELECT TO authenticated
    USING (user_id = (SELECT auth.uid()));

-- The triggers call the helpers as the role that wrote (`authenticated` too); they answer
-- nothing a caller does not know already. `anon` and PUBLIC get nothing.
REVOKE EXECUTE ON FUNCTION auth_is_api_caller(), audit_actor(), status_reason_reserved(text),
    peer_mentor_reason_guard()
    FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION auth_is_api_caller(), audit_actor(), status_reason_reserved(text)
    TO authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Pushes stay in the mentor's organisation: 0006's batch form of raise_mentor_alert, with the
-- coordinators limited to the mentor's organisation's chapters and users (a stray membership or
-- coordination row across organisations pushed one organisation's alert to the other's phones).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION raise_mentor_alerts(
    alert_kind text, alert_at timestamptz,
    alert_mentors uuid[], alert_keys text[], alert_payloads jsonb[], alert_details jsonb[])
RETURNS TABLE (alert_id bigint, mentor_id uuid, incident_key text, payload jsonb,
               deliveries int)
LANGUAGE sql SET plan_cache_mode = force_custom_plan SET search_path = public, pg_temp AS $$
WITH wanted AS (
    SELECT w.m, w.k, w.p, w.d
      FROM unnest(alert_mentors, alert_keys, alert_payloads, alert_details) AS w (m, k, p, d)
), raised AS (
    INSERT INTO alerts AS a (kind, incident_key, mentor_id, organization_id, payload, details,
                             created_at)
    SELECT alert_kind, w.k, pm.id, pm.organization_id, w.p, w.d, coalesce(alert_at, now())
      FROM wanted w JOIN peer_mentors pm ON pm.id = w.m
     ORDER BY w.k
    ON CONFLICT (kind, incident_key) DO NOTHING
    RETURNING a.id, a.mentor_id, a.organization_id, a.incident_key, a.payload
), coordinators AS (
    SELECT DISTINCT r.id AS alert_id, cc.user_id
      FROM raised r
      JOIN chapter_memberships cm ON cm.mentor_id = r.mentor_id
      JOIN chapters c ON c.id = cm.chapter_id AND c.organization_id = r.organization_id
      JOIN coordinator_chapters cc ON cc.chapter_id = cm.chapter_id
      JOIN app_users u ON u.id = cc.user_id AND u.organization_id = r.organization_id
), recipients AS (
    SELECT c.alert_id, c.user_id FROM coordinators c
    UNION
    SELECT r.id, oa.user_id
      FROM raised r JOIN organization_admins oa ON oa.organization_id = r.organization_id
     WHERE NOT EXISTS (SELECT 1 FROM coordinators c WHERE c.alert_id = r.id)
), delivered AS (
    INSERT INTO alert_deliveries AS d (alert_id, user_id, device_token, next_attempt_at,
                                       created_at)
    SELECT rc.alert_id, t.user_id, t.token, coalesce(alert_at, now()), coalesce(alert_at, now())
      FROM recipients rc JOIN device_tokens t ON t.user_id = rc.user_id
     ORDER BY rc.alert_id, t.token
    ON CONFLICT (alert_id, device_token) DO NOTHING
    RETURNING d.alert_id
), per_alert AS (
    SELECT dl.alert_id, count(*)::int AS n FROM delivered dl GROUP BY dl.alert_id
), notified AS (
    SELECT pg_notify('hlfsync_alerts', alert_kind) AS woke WHERE EXISTS (SELECT 1 FROM raised)
)
SELECT r.id, r.mentor_id, r.incident_key, r.payload, coalesce(pa.n, 0)
  FROM raised r
  LEFT JOIN per_alert pa ON pa.alert_id = r.id
  CROSS JOIN (SELECT count(*) FROM notified) AS woke
$$;

-- ---------------------------------------------------------------------------------------------
-- One-time sign-in codes: what `hlfsync demo` prints instead of a bearer token in a URL. Only
-- the code's hash is kept (a copy of the table signs nobody in); a code works once, briefly.
-- The service alone reads and writes it: the API redeems codes as the service, before there is
-- a caller.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE sign_in_codes (
    code_hash   text PRIMARY KEY CHECK (code_hash ~ '^[0-9a-f]{64}$'),
    user_id     uuid NOT NULL REFERENCES app_users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    CONSTRAINT sign_in_code_expires_after_creation CHECK (expires_at > created_at)
);
CREATE INDEX sign_in_codes_expires_idx ON sign_in_codes (expires_at);
ALTER TABLE sign_in_codes ENABLE ROW LEVEL SECURITY;
ALTER TABLE sign_in_codes FORCE ROW LEVEL SECURITY;
REVOKE ALL ON TABLE sign_in_codes FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE sign_in_codes TO service_role;
CREATE POLICY service_access ON sign_in_codes TO service_role USING (true) WITH CHECK (true);
