-- Why: coordinators ask "is the website right?", and the queue alone cannot say: a succeeded
-- operation is history, not the listing. This records the listing as Dynamics last confirmed
-- it (a successful sync, or what reconciliation read), states the verdict once (in step, out
-- of step and since when, pending, dead-lettered, unlinked, unconfirmed), and adds what the
-- dashboard's filters, name search, viewer-scoped counts and 24-hour chart need to stay fast at
-- 100,000 mentors.
--
-- Hot path: a sync success adds no round trip and no per-row trigger. One statement-level
-- trigger over the statement's new rows upserts the confirmations of the operations that
-- succeeded, whatever query recorded them.

-- Name search: trigram matching of any part of a name. In `extensions`, as on Supabase, so
-- its functions stay out of the public schema.
CREATE SCHEMA IF NOT EXISTS extensions;
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA extensions;

-- One row per mentor (a trigger adds it with the mentor), so that "unconfirmed" is an
-- indexable row too, not an absence.
CREATE TABLE listing_confirmations (
    mentor_id      uuid PRIMARY KEY REFERENCES peer_mentors (id) ON DELETE CASCADE,
    -- The listing as Dynamics last confirmed it, when, and how we know; NULL: not yet.
    listed         boolean,
    confirmed_at   timestamptz,
    confirmed_by   text CHECK (confirmed_by IN ('sync', 'reconcile')),
    sync_queue_id  bigint,
    -- What the listing should be (status = 'active'), kept here by a trigger on status
    -- changes so that "differs" is one indexable row, not a join.
    should_list    boolean NOT NULL,
    -- Since when the confirmed listing and the status disagree; NULL while they agree.
    differs_since  timestamptz,
    CONSTRAINT listing_confirmed_all_or_nothing
        CHECK ((listed IS NULL) = (confirmed_at IS NULL)
               AND (listed IS NULL) = (confirmed_by IS NULL)),
    CONSTRAINT listing_differs_since_iff_differs
        CHECK (coalesce(listed = should_list, true) = (differs_since IS NULL))
);
-- The "out of step" filter and counts walk only the mentors whose listing differs, the
-- "unconfirmed" filter only those Dynamics has not confirmed.
CREATE INDEX listing_confirmations_differ_idx ON listing_confirmations (mentor_id)
    WHERE listed <> should_list;
CREATE INDEX listing_confirmations_unconfirmed_idx ON listing_confirmations (mentor_id)
    WHERE listed IS NULL;

INSERT INTO listing_confirmations (mentor_id, should_list)
SELECT id, status = 'active' FROM peer_mentors;

-- A new mentor gets its (unconfirmed) row; per statement, so a seed's COPY pays one INSERT.
CREATE FUNCTION add_listing_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
    INSERT INTO public.listing_confirmations (mentor_id, should_list)
    SELECT n.id, n.status = 'active' FROM added n
    ON CONFLICT (mentor_id) DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER peer_mentors_add_listing
    AFTER INSERT ON public.peer_mentors
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT
    EXECUTE FUNCTION add_listing_row();

-- The "dead-lettered" filter walks open letters in mentor order.
CREATE INDEX dead_letter_open_mentor_idx ON dead_letter_queue (mentor_id) WHERE status = 'open';
-- The "unlinked" filter: the few mentors without a Dynamics contact.
CREATE INDEX peer_mentors_unlinked_idx ON peer_mentors (id) WHERE dynamics_contact_id IS NULL;
-- Name search.
CREATE INDEX peer_mentors_name_trgm_idx ON peer_mentors
    USING gin (full_name extensions.gin_trgm_ops);

-- A sync success confirms the listing the operation set. Statement-level over the new rows:
-- one INSERT per statement however many operations it settled, none for statements that
-- settled nothing. A confirmation never goes back in time (the newest wins).
CREATE FUNCTION record_synced_listing() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
    INSERT INTO public.listing_confirmations AS c
           (mentor_id, listed, confirmed_at, confirmed_by, sync_queue_id, should_list,
            differs_since)
    SELECT DISTINCT ON (n.mentor_id)
           n.mentor_id, n.operation = 'restore', n.finished_at, 'sync', n.id,
           p.status = 'active',
           CASE WHEN (n.operation = 'restore') <> (p.status = 'active') THEN n.finished_at END
      FROM settled n
      JOIN public.peer_mentors p ON p.id = n.mentor_id
     WHERE n.status = 'succeeded'
     ORDER BY n.mentor_id, n.finished_at DESC, n.id DESC
    ON CONFLICT (mentor_id) DO UPDATE
       SET listed = excluded.listed, confirmed_at = excluded.confirmed_at,
           confirmed_by = excluded.confirmed_by, sync_queue_id = excluded.sync_queue_id,
           should_list = excluded.should_list,
           differs_since = CASE WHEN excluded.listed = excluded.should_list THEN NULL
                                WHEN c.listed = excluded.listed
                                THEN coalesce(c.differs_since, excluded.confirmed_at)
                                ELSE excluded.confirmed_at END
     WHERE c.confirmed_at IS NULL OR c.confirmed_at <= excluded.confirmed_at;
    RETURN NULL;
END
$$;

CREATE TRIGGER sync_queue_confirm_listing
    AFTER UPDATE ON public.sync_queue
    REFERENCING NEW TABLE AS settled
    FOR EACH STATEMENT
    EXECUTE FUNCTION record_synced_listing();

-- A status change moves what the listing should be; the difference starts (or ends) with it.
CREATE FUNCTION track_listing_should() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
    -- Rows locked in mentor order, as the success trigger and the reconciliation take them:
    -- a statement pausing many mentors cannot deadlock with either.
    PERFORM 1 FROM public.listing_confirmations c
      JOIN changed_new n ON n.id = c.mentor_id
      JOIN changed_old o ON o.id = n.id
     WHERE (o.status = 'active') IS DISTINCT FROM (n.status = 'active')
     ORDER BY c.mentor_id
       FOR UPDATE OF c;
    UPDATE public.listing_confirmations c
       SET should_list = n.status = 'active',
           differs_since = CASE WHEN c.listed IS NULL OR c.listed = (n.status = 'active')
                                THEN NULL
                                ELSE coalesce(c.differs_since, n.status_changed_at) END
      FROM changed_new n
      JOIN changed_old o ON o.id = n.id
     WHERE c.mentor_id = n.id
       AND (o.status = 'active') IS DISTINCT FROM (n.status = 'active');
    RETURN NULL;
END
$$;

CREATE TRIGGER peer_mentors_track_listing
    AFTER UPDATE ON public.peer_mentors
    REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new
    FOR EACH STATEMENT
    EXECUTE FUNCTION track_listing_should();

REVOKE EXECUTE ON FUNCTION record_synced_listing(), track_listing_should(), add_listing_row()
    FROM PUBLIC, anon, authenticated;

-- Row-level security as every mentor-keyed table: "the mentor is visible".
ALTER TABLE listing_confirmations ENABLE ROW LEVEL SECURITY;
ALTER TABLE listing_confirmations FORCE ROW LEVEL SECURITY;
REVOKE ALL ON TABLE listing_confirmations FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE listing_confirmations TO service_role;
CREATE POLICY service_access ON listing_confirmations TO service_role USING (true) WITH CHECK (true);
CREATE POLICY mentor_in_scope ON listing_confirmations FOR SELECT TO authenticated
    USING (EXISTS (SELECT 1 FROM public.peer_mentors p
                    WHERE p.id = listing_confirmations.mentor_id));
GRANT SELECT ON listing_confirmations TO authenticated;

-- Each mentor with its sync state, confirmed listing and verdict. security_invoker: the
-- caller's row-level security decides every row, as on the tables themselves.
CREATE VIEW mentor_listing WITH (security_invoker = true) AS
SELECT p.id, p.full_name, p.organization_id, p.status, p.status_reason, p.status_changed_at,
       p.dynamics_contact_id IS NOT NULL AS has_contact,
       q.id AS queue_id, q.operation, q.status AS queue_status, q.source, q.attempt_count,
       q.next_attempt_at, q.last_error, q.updated_at AS queue_updated_at,
       q.created_at AS queued_at,
       ok.finished_at AS last_synced_at, d.id AS dead_letter_id, d.created_at AS dead_lettered_at,
       c.listed AS confirmed_listed, c.confirmed_at, c.confirmed_by, c.differs_since,
       -- THE verdict. dashboard_counts() below says the same for its counts (a function
       -- would say it once, but one with a search_path is never inlined: a call per row).
       CASE WHEN p.dynamics_contact_id IS NULL THEN 'unlinked'
            WHEN d.id IS NOT NULL THEN 'dead_lettered'
            WHEN q.status IN ('pending', 'in_progress') THEN 'pending'
            WHEN c.listed IS NULL THEN 'unconfirmed'
            WHEN c.listed = (p.status = 'active') THEN 'in_step'
            ELSE 'out_of_step' END AS verdict
  FROM public.peer_mentors p
  LEFT JOIN LATERAL (SELECT s.* FROM public.sync_queue s WHERE s.mentor_id = p.id
                      ORDER BY s.id DESC LIMIT 1) q ON true
  LEFT JOIN LATERAL (SELECT s.finished_at FROM public.sync_queue s
                      WHERE s.mentor_id = p.id AND s.status = 'succeeded'
                      ORDER BY s.id DESC LIMIT 1) ok ON true
  LEFT JOIN LATERAL (SELECT l.id, l.created_at FROM public.dead_letter_queue l
                      WHERE l.mentor_id = p.id AND l.status = 'open'
                      ORDER BY l.id DESC LIMIT 1) d ON true
  LEFT JOIN public.listing_confirmations c ON c.mentor_id = p.id;

REVOKE ALL ON mentor_listing FROM PUBLIC, anon;
GRANT SELECT ON mentor_listing TO authenticated, service_role;

-- The caller's mentors as a set, by the rule of the peer_mentors policy (can_see_mentor's
-- rule, set-based): for counts over thousands of mentors, where a policy check per row would
-- cost more than the count. A test compares it with the policy for every user.
CREATE FUNCTION auth_visible_mentors() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
    SELECT p.id FROM public.peer_mentors p
     WHERE p.organization_id IN (SELECT public.auth_admin_orgs())
    UNION
    -- Each coordinated chapter's members by index (OFFSET 0 keeps the planner from turning
    -- this into a scan of every membership), of the caller's organisation (an initplan, not a
    -- call per row).
    SELECT x.mentor_id
      FROM public.auth_coordinated_chapters() AS ch (id)
     CROSS JOIN LATERAL (SELECT cm.mentor_id FROM public.chapter_memberships cm
                          WHERE cm.chapter_id = ch.id OFFSET 0) x
      JOIN public.peer_mentors p ON p.id = x.mentor_id
                                AND p.organization_id = (SELECT public.auth_user_org())
$$;

-- The caller's mentors whose name matches an ILIKE pattern. Under row-level security the
-- planner may not use the trigram index for ILIKE (not leakproof), so a search scanned every
-- visible mentor; here the index finds the names and each hit is checked by the policy's rule.
-- A test compares it with the policy.
CREATE FUNCTION auth_mentors_named(pattern text) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
    SELECT p.id FROM public.peer_mentors p
     WHERE p.full_name ILIKE pattern
       AND (p.organization_id IN (SELECT public.auth_admin_orgs())
            OR (p.organization_id = (SELECT public.auth_user_org())
                AND EXISTS (SELECT 1 FROM public.chapter_memberships cm
                             WHERE cm.mentor_id = p.id
                               AND cm.chapter_id IN (SELECT public.auth_coordinated_chapters()))))
$$;

-- The overview's numbers, counting only the caller's mentors: how many per verdict, their
-- open dead letters, and the oldest of their operations still waiting (their sync lag).
CREATE FUNCTION dashboard_counts()
RETURNS TABLE (verdicts jsonb, open_dead_letters int, oldest_pending_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
    WITH v AS (SELECT public.auth_visible_mentors() AS id),
    letters AS (SELECT l.mentor_id, count(*)::int AS n FROM public.dead_letter_queue l
                 WHERE l.status = 'open' GROUP BY l.mentor_id),
    flight AS (SELECT s.mentor_id, min(s.created_at) AS since FROM public.sync_queue s
                WHERE s.status IN ('pending', 'in_progress') GROUP BY s.mentor_id),
    judged AS (
        -- The view's verdict, over joins instead of a lookup per mentor; a test holds the
        -- two together.
        SELECT CASE WHEN p.dynamics_contact_id IS NULL THEN 'unlinked'
                    WHEN l.n IS NOT NULL THEN 'dead_lettered'
                    WHEN f.since IS NOT NULL THEN 'pending'
                    WHEN c.listed IS NULL THEN 'unconfirmed'
                    WHEN c.listed = (p.status = 'active') THEN 'in_step'
                    ELSE 'out_of_step' END AS verdict,
               l.n AS letters, f.since
          FROM v
          JOIN public.peer_mentors p ON p.id = v.id
          LEFT JOIN letters l ON l.mentor_id = v.id
          LEFT JOIN flight f ON f.mentor_id = v.id
          LEFT JOIN public.listing_confirmations c ON c.mentor_id = v.id)
    SELECT coalesce((SELECT jsonb_object_agg(verdict, n)
                       FROM (SELECT verdict, count(*)::int AS n FROM judged GROUP BY verdict) x),
                    '{}'::jsonb),
           (SELECT coalesce(sum(letters), 0)::int FROM judged),
           (SELECT min(since) FROM judged)
$$;

-- The overview's chart: per hour of the last `hours` before `upto`, the caller's mentors'
-- calls by outcome and the sync lag of the operations that succeeded (queued -> confirmed).
CREATE FUNCTION dashboard_hourly(upto timestamptz, hours int)
RETURNS TABLE (hour timestamptz, succeeded int, retried int, throttled int, dead_lettered int,
               lag_p50_s float8, lag_max_s float8)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
    WITH v AS (SELECT public.auth_visible_mentors() AS id),
    events AS (
        SELECT date_trunc('hour', a.occurred_at) AS hour, a.event_type,
               extract(epoch FROM a.occurred_at - s.created_at) AS lag_s
          FROM public.audit_log a
          JOIN v ON v.id = a.mentor_id
          LEFT JOIN public.sync_queue s
                 ON a.event_type = 'sync_succeeded' AND s.id = a.sync_queue_id
         WHERE a.event_type IN ('sync_succeeded', 'sync_retry_scheduled', 'sync_throttled',
                                'dead_lettered')
           AND a.occurred_at >= date_trunc('hour', upto) - (hours - 1) * interval '1 hour'
           AND a.occurred_at <= upto)
    SELECT h.hour,
           count(*) FILTER (WHERE e.event_type = 'sync_succeeded')::int,
           count(*) FILTER (WHERE e.event_type = 'sync_retry_scheduled')::int,
           count(*) FILTER (WHERE e.event_type = 'sync_throttled')::int,
           count(*) FILTER (WHERE e.event_type = 'dead_lettered')::int,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY e.lag_s),
           max(e.lag_s)
      FROM generate_series(date_trunc('hour', upto) - (hours - 1) * interval '1 hour',
                           date_trunc('hour', upto), interval '1 hour') AS h (hour)
      LEFT JOIN events e ON e.hour = h.hour
     GROUP BY h.hour
     ORDER BY h.hour
$$;

REVOKE EXECUTE ON FUNCTION auth_visible_mentors(), auth_mentors_named(text), dashboard_counts(),
    dashboard_hourly(timestamptz, int) FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION auth_visible_mentors(), auth_mentors_named(text), dashboard_counts(),
    dashboard_hourly(timestamptz, int) TO authenticated, service_role;
