-- Why: the overview judged every one of the viewer's mentors (19,000-33,000 at 100,000
-- mentors) to count them per verdict, and joined a day of audit rows to the viewer's mentors for
-- its chart: 260-390 ms a page. Both now cost what is rare or recent. The sync path gains two
-- comparisons per success and no statement (the late-event condition on its audit row, the
-- stored `differs` below; bench.confirm saw no difference beyond its noise):
--
-- * Mentors are grouped in classes: the mentors that share an organisation and the exact set of
--   chapters they belong to, which is all the visibility rule looks at. A viewer sees whole
--   classes (an administrator every class of their organisations, a coordinator the classes of
--   their organisation whose chapters meet theirs), so "how many mentors do I see" is a sum of a
--   few class sizes. Classes change only with memberships and organisations, never with a sync.
-- * Every verdict but "in step" belongs to a few mentors found by their own indexes (unlinked,
--   open dead letters, operations waiting, unconfirmed, listing differs): those are judged
--   live; "in step" is the rest.
-- * The chart's closed hours are added up once per class and kept; only the newest minutes are
--   counted live. A kept hour is counted again when an event arrives after its hour ended (a
--   late or backdated row), or when a mentor changes class (visibility follows the mentor's
--   present chapters).
-- * Mentor pages by status, by name and out of step walk a page's worth in id order (below).

-- ---------------------------------------------------------------------------------------------
-- Classes
-- ---------------------------------------------------------------------------------------------

CREATE TABLE mentor_classes (
    id               int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id  uuid NOT NULL,
    chapters         uuid[] NOT NULL,  -- sorted; '{}' for none
    mentors          int NOT NULL DEFAULT 0 CHECK (mentors >= 0),
    UNIQUE (organization_id, chapters)
);

CREATE TABLE mentor_class_members (
    mentor_id  uuid NOT NULL,
    class_id   int NOT NULL REFERENCES mentor_classes (id),
    -- With the class: a mentor's class is read from the index alone.
    PRIMARY KEY (mentor_id) INCLUDE (class_id)
);

-- Moves with every change of class: a kept chart hour counted with older classes is stale.
CREATE TABLE mentor_class_generation (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    gen       bigint NOT NULL
);
INSERT INTO mentor_class_generation (gen) VALUES (0);

-- Advisory lock keys (classid, objid) of this migration: (190001, 0) classes changing;
-- (190002, 0) a late chart event being written; (190003, 0) a roll-up running.

-- Puts these mentors in the class they belong to now (a mentor no longer there leaves its
-- class) and keeps the class sizes. Also the repair after a bulk load with triggers off:
-- reclass_mentors(ARRAY(SELECT id FROM peer_mentors)).
CREATE FUNCTION reclass_mentors(touched uuid[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
    moved    uuid[];
    old_ids  int[];
    new_ids  int[];
BEGIN
    IF coalesce(cardinality(touched), 0) = 0 THEN
        RETURN;
    END IF;
    -- One class change at a time, held to commit: every statement below (read committed, as
    -- every hlfsync connection) then sees what the previous holder committed, so the last to
    -- place a mentor saw all its memberships.
    -- Membership changes are rare; the sync path never comes here.
    PERFORM pg_advisory_xact_lock(190001, 0);
    INSERT INTO public.mentor_classes (organization_id, chapters)
    SELECT DISTINCT p.organization_id,
           ARRAY(SELECT cm.chapter_id FROM public.chapter_memberships cm
                  WHERE cm.mentor_id = p.id ORDER BY cm.chapter_id)
      FROM public.peer_mentors p
     WHERE p.id = ANY (touched)
     ORDER BY 1, 2
    ON CONFLICT (organization_id, chapters) DO NOTHING;
    SELECT array_agg(x.mentor_id ORDER BY x.mentor_id),
           array_agg(x.old_id ORDER BY x.mentor_id), array_agg(x.new_id ORDER BY x.mentor_id)
      INTO moved, old_ids, new_ids
      FROM (SELECT coalesce(w.id, h.mentor_id) AS mentor_id, h.class_id AS old_id,
                   w.class_id AS new_id
              FROM (SELECT p.id, c.id AS class_id
                      FROM public.peer_mentors p
                      JOIN public.mentor_classes c
                        ON c.organization_id = p.organization_id
                       AND c.chapters = ARRAY(SELECT cm.chapter_id
                                                FROM public.chapter_memberships cm
                                               WHERE cm.mentor_id = p.id
                                               ORDER BY cm.chapter_id)
                     WHERE p.id = ANY (touched)) w
              FULL JOIN (SELECT m.mentor_id, m.class_id FROM public.mentor_class_members m
                          WHERE m.mentor_id = ANY (touched)) h ON h.mentor_id = w.id
             WHERE h.class_id IS DISTINCT FROM w.class_id) x;
    IF moved IS NULL THEN
        RETURN;
    END IF;
    UPDATE public.mentor_class_generation SET gen = gen + 1;
    UPDATE public.mentor_classes c SET mentors = c.mentors + d.n
      FROM (SELECT k, sum(n)::int AS n
              FROM (SELECT unnest(old_ids) AS k, -1 AS n
                    UNION ALL
                    SELECT unnest(new_ids), 1) z
             WHERE k IS NOT NULL
             GROUP BY k HAVING sum(n) <> 0) d
     WHERE c.id = d.k;
    DELETE FROM public.mentor_class_members m
     USING unnest(moved, new_ids) AS x (mentor_id, class_id)
     WHERE m.mentor_id = x.mentor_id AND x.class_id IS NULL;
    INSERT INTO public.mentor_class_members (mentor_id, class_id)
    SELECT x.mentor_id, x.class_id FROM unnest(moved, new_ids) AS x (mentor_id, class_id)
     WHERE x.class_id IS NOT NULL
    ON CONFLICT (mentor_id) DO UPDATE SET class_id = excluded.class_id;
END
$$;

-- What places a mentor: its organisation and its memberships. Per statement over the changed
-- rows (a seed's COPY pays one call), except an organisation move, which is rare and row-level
-- so that status updates, the common update, pay nothing.
CREATE FUNCTION reclass_changed_mentors() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        PERFORM public.reclass_mentors(ARRAY[NEW.id]);
    ELSIF TG_TABLE_NAME = 'peer_mentors' AND TG_OP = 'INSERT' THEN
        PERFORM public.reclass_mentors(ARRAY(SELECT n.id FROM added n));
    ELSIF TG_TABLE_NAME = 'peer_mentors' THEN
        PERFORM public.reclass_mentors(ARRAY(SELECT o.id FROM removed o));
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM public.reclass_mentors(ARRAY(SELECT DISTINCT n.mentor_id FROM added n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM public.reclass_mentors(ARRAY(SELECT DISTINCT o.mentor_id FROM removed o));
    ELSE
        PERFORM public.reclass_mentors(ARRAY(SELECT n.mentor_id FROM added n
                                             UNION SELECT o.mentor_id FROM removed o));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER peer_mentors_class_added AFTER INSERT ON peer_mentors
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION reclass_changed_mentors();
CREATE TRIGGER peer_mentors_class_removed AFTER DELETE ON peer_mentors
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT
    EXECUTE FUNCTION reclass_changed_mentors();
CREATE TRIGGER peer_mentors_class_moved AFTER UPDATE OF organization_id ON peer_mentors
    FOR EACH ROW WHEN (OLD.organization_id IS DISTINCT FROM NEW.organization_id)
    EXECUTE FUNCTION reclass_changed_mentors();
CREATE TRIGGER chapter_memberships_class_added AFTER INSERT ON chapter_memberships
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION reclass_changed_mentors();
CREATE TRIGGER chapter_memberships_class_removed AFTER DELETE ON chapter_memberships
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT
    EXECUTE FUNCTION reclass_changed_mentors();
CREATE TRIGGER chapter_memberships_class_changed AFTER UPDATE ON chapter_memberships
    REFERENCING OLD TABLE AS removed NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION reclass_changed_mentors();

SELECT reclass_mentors(ARRAY(SELECT id FROM peer_mentors ORDER BY id));

-- The classes the caller sees, by the rule of the peer_mentors policy: their mentors are
-- exactly the caller's. A test compares them with the policy for every user.
CREATE FUNCTION auth_visible_classes() RETURNS SETOF int
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
    SELECT c.id FROM public.mentor_classes c
     WHERE c.organization_id IN (SELECT public.auth_admin_orgs())
        OR (c.organization_id = (SELECT public.auth_user_org())
            AND c.chapters && ARRAY(SELECT public.auth_coordinated_chapters()))
$$;

-- ---------------------------------------------------------------------------------------------
-- Out of step, as a column the planner can count
-- ---------------------------------------------------------------------------------------------

-- "listed <> should_list" holds for about 1 % of mentors, but the planner takes a comparison of
-- two columns for most rows: the out-of-step page (in one chapter, 128 ms) walked every mentor
-- by primary key instead of the few that differ. A stored column has its own statistics. It
-- replaces 0014's partial index (same rows); a success's upsert computes one comparison more.
ALTER TABLE listing_confirmations
    ADD COLUMN differs boolean GENERATED ALWAYS AS (listed <> should_list) STORED;
DROP INDEX listing_confirmations_differ_idx;
CREATE INDEX listing_confirmations_differs_idx ON listing_confirmations (mentor_id) WHERE differs;
ANALYZE listing_confirmations;

-- ---------------------------------------------------------------------------------------------
-- Mentor pages by status and by name: a page's worth, walked in id order
-- ---------------------------------------------------------------------------------------------

-- A status in id order (it was the status alone: a page of a rare status read each coordinated
-- chapter's members until it met enough, 85 ms for "inactive").
DROP INDEX peer_mentors_status_idx;
CREATE INDEX peer_mentors_status_idx ON peer_mentors (status, id);

-- The first `lim` of the caller's mentors of one status after `after`, in id order, looking at
-- no more than `budget` mentors of that status: when those hold too few of the caller's (a
-- small chapter and a common status), a last NULL says so, and the page walks the caller's
-- chapters instead. Each mentor is the caller's when its class is; a test compares the pages
-- with the policy.
CREATE FUNCTION auth_mentors_of_status(only_status text, after uuid, lim int, budget int)
RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
    WITH visible AS (SELECT ARRAY(SELECT public.auth_visible_classes()) AS ids),
    walked AS (SELECT p.id FROM public.peer_mentors p
                WHERE p.status = only_status AND p.id > after
                ORDER BY p.id LIMIT budget),
    mine AS (SELECT w.id FROM walked w
              -- Per mentor (a page's worth): a join would hash every mentor's class.
              CROSS JOIN LATERAL (SELECT m.class_id FROM public.mentor_class_members m
                                   WHERE m.mentor_id = w.id LIMIT 1) m, visible
              WHERE m.class_id = ANY (visible.ids)
              ORDER BY w.id LIMIT lim)
    SELECT id FROM mine
    UNION ALL
    SELECT NULL::uuid
     WHERE (SELECT count(*) FROM mine) < lim AND (SELECT count(*) FROM walked) = budget
$$;

-- 0014's name search, cut to the page: the trigram index finds the names, the matches after the
-- cursor (and of the status and chapter asked) are taken in id order, and only those up to a
-- page are checked for the caller, by class. Without `lim`, every match of the caller's.
DROP FUNCTION auth_mentors_named(text);
CREATE FUNCTION auth_mentors_named(pattern text, after uuid DEFAULT NULL, lim int DEFAULT NULL,
                                   only_status text DEFAULT NULL, in_chapter uuid DEFAULT NULL)
RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
    WITH visible AS (SELECT ARRAY(SELECT public.auth_visible_classes()) AS ids)
    SELECT x.id
      FROM (SELECT p.id FROM public.peer_mentors p
             WHERE p.full_name ILIKE pattern
               AND (after IS NULL OR p.id > after)
               AND (only_status IS NULL OR p.status = only_status)
             ORDER BY p.id OFFSET 0) x
     CROSS JOIN LATERAL (SELECT m.class_id FROM public.mentor_class_members m
                          WHERE m.mentor_id = x.id LIMIT 1) m
     CROSS JOIN visible
     WHERE m.class_id = ANY (visible.ids)
       AND (in_chapter IS NULL
            OR EXISTS (SELECT 1 FROM public.chapter_memberships cm
                        WHERE cm.mentor_id = x.id AND cm.chapter_id = in_chapter))
     ORDER BY x.id
     LIMIT lim
$$;

REVOKE EXECUTE ON FUNCTION auth_mentors_of_status(text, uuid, int, int),
    auth_mentors_named(text, uuid, int, text, uuid) FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION auth_mentors_of_status(text, uuid, int, int),
    auth_mentors_named(text, uuid, int, text, uuid) TO authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- The overview's counts
-- ---------------------------------------------------------------------------------------------

-- As 0014's, judged only where a verdict other than "in step" is possible: the mentors without
-- a contact, with an open dead letter, with an operation waiting or running, unconfirmed, or
-- whose confirmed listing differs from what their status asks (listing_confirmations keeps
-- should_list = status 'active'). Each set is walked by its own index; the caller's among them
-- are kept by class. "In step" is the caller's mentors (the sizes of their classes) less the
-- others. A test compares every count with the view, mentor by mentor.
CREATE OR REPLACE FUNCTION dashboard_counts()
RETURNS TABLE (verdicts jsonb, open_dead_letters int, oldest_pending_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
    WITH classes AS (SELECT c.id, c.mentors FROM public.mentor_classes c
                      WHERE c.id IN (SELECT public.auth_visible_classes())),
    -- As an array: the planner cannot tell these sets are small together and would hash every
    -- mentor; an array's rows are looked up one by one.
    rare AS (SELECT ARRAY(
                 SELECT p.id FROM public.peer_mentors p WHERE p.dynamics_contact_id IS NULL
                 UNION
                 SELECT l.mentor_id FROM public.dead_letter_queue l WHERE l.status = 'open'
                 UNION
                 SELECT s.mentor_id FROM public.sync_queue s
                  WHERE s.status IN ('pending', 'in_progress')
                 UNION
                 SELECT c.mentor_id FROM public.listing_confirmations c WHERE c.listed IS NULL
                 UNION
                 SELECT c.mentor_id FROM public.listing_confirmations c WHERE c.differs)
             AS ids),
    mine AS (SELECT r.id FROM rare, unnest(rare.ids) AS r (id)
               JOIN public.mentor_class_members m ON m.mentor_id = r.id
              WHERE m.class_id IN (SELECT id FROM classes)),
    judged AS (
        -- The view's verdict, as in 0014.
        SELECT CASE WHEN p.dynamics_contact_id IS NULL THEN 'unlinked'
                    WHEN l.n IS NOT NULL THEN 'dead_lettered'
                    WHEN f.since IS NOT NULL THEN 'pending'
                    WHEN c.listed IS NULL THEN 'unconfirmed'
                    WHEN c.listed = (p.status = 'active') THEN 'in_step'
                    ELSE 'out_of_step' END AS verdict,
               l.n AS letters, f.since
          FROM mine v
          JOIN public.peer_mentors p ON p.id = v.id
          LEFT JOIN LATERAL (SELECT count(*)::int AS n FROM public.dead_letter_queue l
                              WHERE l.mentor_id = v.id AND l.status = 'open'
                             HAVING count(*) > 0) l ON true
          LEFT JOIN LATERAL (SELECT min(s.created_at) AS since FROM public.sync_queue s
                              WHERE s.mentor_id = v.id AND s.status IN ('pending', 'in_progress')
                             HAVING count(*) > 0) f ON true
          LEFT JOIN public.listing_confirmations c ON c.mentor_id = v.id),
    tallied AS (
        SELECT verdict, count(*)::int AS n FROM judged WHERE verdict <> 'in_step'
         GROUP BY verdict
        UNION ALL
        SELECT 'in_step', (SELECT coalesce(sum(mentors), 0) FROM classes)::int
                          - (SELECT count(*) FROM judged WHERE verdict <> 'in_step')::int)
    SELECT coalesce((SELECT jsonb_object_agg(verdict, n) FROM tallied WHERE n > 0), '{}'::jsonb),
           (SELECT coalesce(sum(letters), 0)::int FROM judged),
           (SELECT min(since) FROM judged)
$$;

-- ---------------------------------------------------------------------------------------------
-- The overview's chart
-- ---------------------------------------------------------------------------------------------

-- Per hour (UTC) and class: the calls by outcome and the lags of the successes, sorted. An hour
-- counts as kept when `rolled_gen` = `gen` (no event arrived after it was added up) and
-- `rolled_classes` is the present class generation.
CREATE TABLE chart_hours (
    hour            timestamptz PRIMARY KEY,
    gen             bigint NOT NULL DEFAULT 0,
    rolled_gen      bigint,
    rolled_classes  bigint
);

CREATE TABLE chart_hour_classes (
    hour           timestamptz NOT NULL,
    class_id       int NOT NULL REFERENCES mentor_classes (id),
    succeeded      int NOT NULL,
    retried        int NOT NULL,
    throttled      int NOT NULL,
    dead_lettered  int NOT NULL,
    lags_s         float8[] NOT NULL,
    PRIMARY KEY (hour, class_id)
);

-- An hour is added up only once it ended this long ago: an event is written by a transaction
-- of a few milliseconds to seconds after it happened (the worker's batch), and one written later
-- than that announces itself (below).
CREATE FUNCTION chart_grace() RETURNS interval
LANGUAGE sql IMMUTABLE SET search_path = '' AS $$ SELECT interval '5 minutes' $$;

-- An event recorded after its hour ended (a late batch, a clock behind, a backdated row) makes
-- that hour stale. Row-level with a WHEN condition: an event of the present hour (every
-- success the worker records) costs the comparison and no call.
CREATE FUNCTION chart_note_late_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
    late_hour timestamptz := date_trunc('hour', NEW.occurred_at, 'UTC');
BEGIN
    -- Waits for a roll-up under way to commit (it holds the lock shared), so the roll-up either
    -- saw this row or is marked stale by it. One key for every hour: two late writers never
    -- wait for each other's hours (no deadlock); late events are rare.
    PERFORM pg_advisory_xact_lock(190002, 0);
    INSERT INTO public.chart_hours AS h (hour, gen) VALUES (late_hour, 1)
    ON CONFLICT (hour) DO UPDATE SET gen = h.gen + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER audit_log_late_event AFTER INSERT ON audit_log
    FOR EACH ROW
    WHEN (NEW.mentor_id IS NOT NULL
          AND NEW.occurred_at < date_trunc('hour', clock_timestamp(), 'UTC'))
    EXECUTE FUNCTION chart_note_late_event();

-- The chart's outcomes, named once for the live count and the roll-up.
CREATE FUNCTION chart_events(since timestamptz, upto timestamptz)
RETURNS TABLE (hour timestamptz, mentor_id uuid, event_type text, lag_s float8)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
    SELECT date_trunc('hour', a.occurred_at, 'UTC'), a.mentor_id, a.event_type,
           extract(epoch FROM a.occurred_at - s.created_at)::float8
      FROM public.audit_log a
      LEFT JOIN public.sync_queue s ON a.event_type = 'sync_succeeded' AND s.id = a.sync_queue_id
     WHERE a.event_type IN ('sync_succeeded', 'sync_retry_scheduled', 'sync_throttled',
                            'dead_lettered')
       AND a.mentor_id IS NOT NULL
       AND a.occurred_at >= since AND a.occurred_at <= upto
$$;

-- Adds up the closed hours from `since` that are not kept (or are stale), for every class.
-- Never waits: while another roll-up runs, a class changes, or a late event is being written,
-- the work is left to a later page (which counts live meanwhile).
CREATE FUNCTION chart_roll_up(since timestamptz) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
    classes_gen  bigint;
    h            timestamptz;
BEGIN
    IF NOT pg_try_advisory_xact_lock(190003, 0)
       OR NOT pg_try_advisory_xact_lock_shared(190001, 0)
       OR NOT pg_try_advisory_xact_lock_shared(190002, 0) THEN
        RETURN;
    END IF;
    SELECT g.gen INTO classes_gen FROM public.mentor_class_generation g;
    FOR h IN
        SELECT g.hour
          FROM generate_series(date_trunc('hour', since, 'UTC'),
                               now() - public.chart_grace() - interval '1 hour',
                               interval '1 hour') AS g (hour)
          LEFT JOIN public.chart_hours c ON c.hour = g.hour
         WHERE c.hour IS NULL OR c.rolled_gen IS DISTINCT FROM c.gen
            OR c.rolled_classes IS DISTINCT FROM classes_gen
         ORDER BY g.hour
    LOOP
        DELETE FROM public.chart_hour_classes r WHERE r.hour = h;
        INSERT INTO public.chart_hour_classes
               (hour, class_id, succeeded, retried, throttled, dead_lettered, lags_s)
        SELECT h, m.class_id,
               count(*) FILTER (WHERE e.event_type = 'sync_succeeded'),
               count(*) FILTER (WHERE e.event_type = 'sync_retry_scheduled'),
               count(*) FILTER (WHERE e.event_type = 'sync_throttled'),
               count(*) FILTER (WHERE e.event_type = 'dead_lettered'),
               coalesce(array_agg(e.lag_s ORDER BY e.lag_s) FILTER (WHERE e.lag_s IS NOT NULL),
                        '{}')
          FROM public.chart_events(h, h + interval '1 hour') e
          JOIN public.mentor_class_members m ON m.mentor_id = e.mentor_id
         WHERE e.hour = h
         GROUP BY m.class_id;
        INSERT INTO public.chart_hours AS c (hour, gen, rolled_gen, rolled_classes)
        VALUES (h, 0, 0, classes_gen)
        ON CONFLICT (hour) DO UPDATE SET rolled_gen = c.gen, rolled_classes = classes_gen;
    END LOOP;
    -- Kept a week, far more than the chart shows.
    DELETE FROM public.chart_hour_classes r WHERE r.hour < now() - interval '7 days';
    DELETE FROM public.chart_hours c WHERE c.hour < now() - interval '7 days';
END
$$;

-- 0014's chart, now per UTC hour: kept hours from their roll-up, the rest (the newest minutes,
-- or whatever could not be kept) counted live, both over the caller's classes.
DROP FUNCTION dashboard_hourly(timestamptz, int);
CREATE FUNCTION dashboard_hourly(upto timestamptz, hours int)
RETURNS TABLE (hour timestamptz, succeeded int, retried int, throttled int, dead_lettered int,
               lag_p50_s float8, lag_max_s float8)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
    first_hour  timestamptz := date_trunc('hour', upto, 'UTC') - (hours - 1) * interval '1 hour';
    kept        timestamptz[];
    live_from   timestamptz;
BEGIN
    PERFORM public.chart_roll_up(first_hour);
    SELECT coalesce(array_agg(c.hour), '{}')
      INTO kept
      FROM public.chart_hours c, public.mentor_class_generation g
     WHERE c.hour >= first_hour AND c.hour + interval '1 hour' <= upto
       AND c.rolled_gen = c.gen AND c.rolled_classes = g.gen;
    SELECT min(x.hour) INTO live_from
      FROM generate_series(first_hour, date_trunc('hour', upto, 'UTC'), interval '1 hour')
           AS x (hour)
     WHERE x.hour <> ALL (kept);
    RETURN QUERY
    WITH classes AS (SELECT public.auth_visible_classes() AS id),
    parts AS (
        SELECT r.hour, r.succeeded, r.retried, r.throttled, r.dead_lettered, r.lags_s
          FROM public.chart_hour_classes r
         WHERE r.hour = ANY (kept) AND r.class_id IN (SELECT id FROM classes)
        UNION ALL
        SELECT e.hour,
               (count(*) FILTER (WHERE e.event_type = 'sync_succeeded'))::int,
               (count(*) FILTER (WHERE e.event_type = 'sync_retry_scheduled'))::int,
               (count(*) FILTER (WHERE e.event_type = 'sync_throttled'))::int,
               (count(*) FILTER (WHERE e.event_type = 'dead_lettered'))::int,
               coalesce(array_agg(e.lag_s) FILTER (WHERE e.lag_s IS NOT NULL), '{}')
          FROM public.chart_events(coalesce(live_from, upto), upto) e
          -- Looked up per event (an hour's worth): a join would hash every mentor's class.
          CROSS JOIN LATERAL (SELECT m.class_id FROM public.mentor_class_members m
                               WHERE m.mentor_id = e.mentor_id LIMIT 1) m
         WHERE live_from IS NOT NULL AND e.hour <> ALL (kept)
           AND m.class_id IN (SELECT id FROM classes)
         GROUP BY e.hour),
    lags AS (SELECT p.hour, percentile_cont(0.5) WITHIN GROUP (ORDER BY l) AS p50, max(l) AS top
               FROM parts p CROSS JOIN LATERAL unnest(p.lags_s) AS l
              GROUP BY p.hour)
    SELECT h.hour,
           coalesce(sum(p.succeeded), 0)::int, coalesce(sum(p.retried), 0)::int,
           coalesce(sum(p.throttled), 0)::int, coalesce(sum(p.dead_lettered), 0)::int,
           min(l.p50), min(l.top)
      FROM generate_series(first_hour, date_trunc('hour', upto, 'UTC'), interval '1 hour')
           AS h (hour)
      LEFT JOIN parts p ON p.hour = h.hour
      LEFT JOIN lags l ON l.hour = h.hour
     GROUP BY h.hour
     ORDER BY h.hour;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Service only, like every table: the API roles read them only through the functions above.
-- ---------------------------------------------------------------------------------------------

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['mentor_classes', 'mentor_class_members', 'mentor_class_generation',
                             'chart_hours', 'chart_hour_classes']
    LOOP
        EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE public.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('REVOKE ALL ON TABLE public.%I FROM PUBLIC, anon, authenticated', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE public.%I TO service_role',
                       t);
        EXECUTE format('CREATE POLICY service_access ON public.%I TO service_role '
                       'USING (true) WITH CHECK (true)', t);
    END LOOP;
END
$$;
REVOKE ALL ON SEQUENCE mentor_classes_id_seq FROM PUBLIC, anon, authenticated;
GRANT USAGE, SELECT, UPDATE ON SEQUENCE mentor_classes_id_seq TO service_role;

REVOKE EXECUTE ON FUNCTION reclass_mentors(uuid[]), reclass_changed_mentors(),
    chart_note_late_event(), chart_events(timestamptz, timestamptz), chart_roll_up(timestamptz)
    FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION reclass_mentors(uuid[]), chart_roll_up(timestamptz) TO service_role;
REVOKE EXECUTE ON FUNCTION chart_grace() FROM PUBLIC, anon, authenticated;
REVOKE EXECUTE ON FUNCTION auth_visible_classes(), dashboard_hourly(timestamptz, int)
    FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION auth_visible_classes(), dashboard_hourly(timestamptz, int)
    TO authenticated, service_role;
