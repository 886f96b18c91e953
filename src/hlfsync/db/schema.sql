-- The schema every migration in db/migrations/ builds, as `pg_dump --schema-only` prints it
-- (normalised: no versions, no session settings, no owners). Generated, never edited: after
-- adding a migration run
--     uv run python -m hlfsync.db.schema
-- The migrations are the truth; a test fails when this file and they differ.

--
-- Name: auth; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA auth;

--
-- Name: extensions; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA extensions;

--
-- Name: pg_trgm; Type: EXTENSION; Schema: -; Owner: -
--

CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA extensions;

--
-- Name: EXTENSION pg_trgm; Type: COMMENT; Schema: -; Owner: -
--

COMMENT ON EXTENSION pg_trgm IS 'text similarity measurement and index searching based on trigrams';

--
-- Name: jwt(); Type: FUNCTION; Schema: auth; Owner: -
--

CREATE FUNCTION auth.jwt() RETURNS jsonb
    LANGUAGE sql STABLE
    AS $$
            SELECT coalesce(
                nullif(current_setting('request.jwt.claim', true), ''),
                nullif(current_setting('request.jwt.claims', true), '')
            )::jsonb
        $$;

--
-- Name: role(); Type: FUNCTION; Schema: auth; Owner: -
--

CREATE FUNCTION auth.role() RETURNS text
    LANGUAGE sql STABLE
    AS $$
            SELECT coalesce(
                nullif(current_setting('request.jwt.claim.role', true), ''),
                (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
            )::text
        $$;

--
-- Name: uid(); Type: FUNCTION; Schema: auth; Owner: -
--

CREATE FUNCTION auth.uid() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$
            SELECT coalesce(
                nullif(current_setting('request.jwt.claim.sub', true), ''),
                (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
            )::uuid
        $$;

--
-- Name: add_listing_row(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.add_listing_row() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
BEGIN
    INSERT INTO public.listing_confirmations (mentor_id, should_list)
    SELECT n.id, n.status = 'active' FROM added n
    ON CONFLICT (mentor_id) DO NOTHING;
    RETURN NULL;
END
$$;

--
-- Name: api_force_sync(uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.api_force_sync(mentor uuid) RETURNS TABLE(mentor_id uuid, sync_queue_id bigint, operation text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
BEGIN
    PERFORM api_require_mentor(mentor);
    RETURN QUERY
        SELECT e.mentor_id, e.sync_queue_id, e.operation
          FROM enqueue_sync(ARRAY[mentor], 'force', 10, auth.uid()::text) e;
END
$$;

--
-- Name: api_queue_overview(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.api_queue_overview() RETURNS TABLE(queue jsonb, oldest_pending_at timestamp with time zone, open_dead_letters integer)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
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

--
-- Name: api_requeue_dead_letter(bigint); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.api_requeue_dead_letter(letter bigint) RETURNS TABLE(dead_letter_id bigint, sync_queue_id bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
BEGIN
    PERFORM api_require_mentor((SELECT l.mentor_id FROM dead_letter_queue l WHERE l.id = letter));
    RETURN QUERY
        SELECT r.dead_letter_id, r.sync_queue_id
          FROM requeue_dead_letters(ARRAY[letter], auth.uid()::text) r;
END
$$;

--
-- Name: api_require_mentor(uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.api_require_mentor(mentor uuid) RETURNS void
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
BEGIN
    IF auth.uid() IS NULL OR mentor IS NULL OR NOT can_see_mentor(mentor) THEN
        -- Never the id: for a dead letter it would be the foreign mentor's.
        RAISE EXCEPTION 'not found' USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$$;

--
-- Name: api_resolve_dead_letter(bigint, text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.api_resolve_dead_letter(letter bigint, note text) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
BEGIN
    PERFORM api_require_mentor((SELECT l.mentor_id FROM dead_letter_queue l WHERE l.id = letter));
    RETURN resolve_dead_letter(letter, note, auth.uid()::text);
END
$$;

--
-- Name: audit_actor(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.audit_actor() RETURNS text
    LANGUAGE sql STABLE
    SET search_path TO ''
    AS $$
    SELECT CASE WHEN public.auth_is_api_caller()
                THEN coalesce(auth.uid()::text, 'anonymous')
                ELSE coalesce(nullif(current_setting('hlfsync.actor', true), ''),
                              auth.uid()::text, session_user::text)
           END
$$;

--
-- Name: auth_admin_orgs(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auth_admin_orgs() RETURNS SETOF uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT organization_id FROM organization_admins WHERE user_id = auth.uid()
$$;

--
-- Name: auth_coordinated_chapters(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auth_coordinated_chapters() RETURNS SETOF uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT cc.chapter_id
      FROM coordinator_chapters cc
      JOIN app_users u ON u.id = cc.user_id
      JOIN chapters c ON c.id = cc.chapter_id AND c.organization_id = u.organization_id
     WHERE cc.user_id = auth.uid()
$$;

--
-- Name: auth_is_api_caller(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auth_is_api_caller() RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path TO ''
    AS $$
    SELECT current_user IN ('authenticated', 'anon')
        OR coalesce(current_setting('role', true), 'none') IN ('authenticated', 'anon')
$$;

--
-- Name: auth_is_staff(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auth_is_staff() RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT EXISTS (SELECT auth_coordinated_chapters()) OR EXISTS (SELECT auth_admin_orgs())
$$;

--
-- Name: auth_mentors_named(text, uuid, integer, text, uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auth_mentors_named(pattern text, after uuid DEFAULT NULL::uuid, lim integer DEFAULT NULL::integer, only_status text DEFAULT NULL::text, in_chapter uuid DEFAULT NULL::uuid) RETURNS SETOF uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO ''
    AS $$
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

--
-- Name: auth_mentors_of_status(text, uuid, integer, integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auth_mentors_of_status(only_status text, after uuid, lim integer, budget integer) RETURNS SETOF uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO ''
    AS $$
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

--
-- Name: auth_user_org(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auth_user_org() RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT organization_id FROM app_users WHERE id = auth.uid()
$$;

--
-- Name: auth_visible_chapters(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auth_visible_chapters() RETURNS SETOF uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT auth_coordinated_chapters()
    UNION
    SELECT c.id FROM chapters c WHERE c.organization_id IN (SELECT auth_admin_orgs())
$$;

--
-- Name: auth_visible_classes(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auth_visible_classes() RETURNS SETOF integer
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO ''
    AS $$
    SELECT c.id FROM public.mentor_classes c
     WHERE c.organization_id IN (SELECT public.auth_admin_orgs())
        OR (c.organization_id = (SELECT public.auth_user_org())
            AND c.chapters && ARRAY(SELECT public.auth_coordinated_chapters()))
$$;

--
-- Name: auth_visible_mentors(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auth_visible_mentors() RETURNS SETOF uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO ''
    AS $$
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

--
-- Name: can_see_mentor(uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.can_see_mentor(mentor uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT EXISTS (
        SELECT 1 FROM peer_mentors p
         WHERE p.id = mentor
           AND (p.organization_id IN (SELECT auth_admin_orgs())
                OR (p.organization_id = auth_user_org()
                    AND EXISTS (SELECT 1 FROM chapter_memberships cm
                                 WHERE cm.mentor_id = p.id
                                   AND cm.chapter_id IN (SELECT auth_coordinated_chapters())))))
$$;

--
-- Name: certification_renewal_history(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.certification_renewal_history() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'public', 'pg_temp'
    AS $$
BEGIN
    NEW.renewal_history := NEW.renewal_history || jsonb_build_array(jsonb_build_object(
        'schema_version', 1,
        'renewed_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'previous_expires_on', OLD.expires_on,
        'new_expires_on', NEW.expires_on,
        'renewed_by', expiry_actor()));
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

--
-- Name: certification_renewal_restore(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.certification_renewal_restore() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
DECLARE
    who       text := expiry_actor();
    restored  uuid;
BEGIN
    INSERT INTO audit_log (mentor_id, event_type, actor, details)
    VALUES (NEW.mentor_id, 'certification_renewed', who,
            jsonb_build_object('previous_expires_on', OLD.expires_on,
                               'new_expires_on', NEW.expires_on,
                               'history_length', jsonb_array_length(NEW.renewal_history)));
    IF NEW.expires_on < expiry_today() THEN
        RETURN NULL;
    END IF;
    UPDATE peer_mentors
       SET status = 'active', status_reason = 'certification_renewed'
     WHERE id = NEW.mentor_id AND status = 'paused' AND status_reason = 'certification_expired'
    RETURNING id INTO restored;
    IF restored IS NOT NULL THEN
        PERFORM raise_mentor_alerts(
            'cert_restored', NULL, ARRAY[restored],
            ARRAY[restored || ':' || to_char(OLD.expires_on, 'YYYY-MM-DD') || ':'
                  || to_char(NEW.expires_on, 'YYYY-MM-DD')],
            ARRAY[jsonb_build_object('type', 'hlf_cert_restored', 'mentor_id', restored::text,
                                     'operation', 'restore')],
            ARRAY[jsonb_build_object('reason', 'certification_renewed',
                                     'previous_expires_on', OLD.expires_on,
                                     'new_expires_on', NEW.expires_on)]);
    END IF;
    RETURN NULL;
END
$$;

--
-- Name: chart_events(timestamp with time zone, timestamp with time zone); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.chart_events(since timestamp with time zone, upto timestamp with time zone) RETURNS TABLE(hour timestamp with time zone, mentor_id uuid, event_type text, lag_s double precision)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO ''
    AS $$
    SELECT date_trunc('hour', a.occurred_at, 'UTC'), a.mentor_id, a.event_type,
           extract(epoch FROM a.occurred_at - s.created_at)::float8
      FROM public.audit_log a
      LEFT JOIN public.sync_queue s ON a.event_type = 'sync_succeeded' AND s.id = a.sync_queue_id
     WHERE a.event_type IN ('sync_succeeded', 'sync_retry_scheduled', 'sync_throttled',
                            'dead_lettered')
       AND a.mentor_id IS NOT NULL
       AND a.occurred_at >= since AND a.occurred_at <= upto
$$;

--
-- Name: chart_grace(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.chart_grace() RETURNS interval
    LANGUAGE sql IMMUTABLE
    SET search_path TO ''
    AS $$ SELECT interval '5 minutes' $$;

--
-- Name: chart_note_late_event(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.chart_note_late_event() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
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

--
-- Name: chart_roll_up(timestamp with time zone); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.chart_roll_up(since timestamp with time zone) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
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

--
-- Name: dashboard_counts(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.dashboard_counts() RETURNS TABLE(verdicts jsonb, open_dead_letters integer, oldest_pending_at timestamp with time zone)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO ''
    AS $$
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

--
-- Name: dashboard_hourly(timestamp with time zone, integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.dashboard_hourly(upto timestamp with time zone, hours integer) RETURNS TABLE(hour timestamp with time zone, succeeded integer, retried integer, throttled integer, dead_lettered integer, lag_p50_s double precision, lag_max_s double precision)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
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

--
-- Name: enqueue_sync(uuid[], text, integer, text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.enqueue_sync(mentors uuid[], src text, prio integer, who text) RETURNS TABLE(mentor_id uuid, sync_queue_id bigint, operation text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
DECLARE
    m_ids  uuid[];
    q_ids  bigint[];
BEGIN
    PERFORM 1 FROM peer_mentors p
     WHERE (mentors IS NULL OR p.id = ANY (mentors)) AND p.dynamics_contact_id IS NOT NULL
     ORDER BY p.id FOR UPDATE;
    SELECT array_agg(p.id ORDER BY p.id),
           array_agg(nextval(pg_get_serial_sequence('sync_queue', 'id')) ORDER BY p.id)
      INTO m_ids, q_ids
      FROM peer_mentors p
     WHERE (mentors IS NULL OR p.id = ANY (mentors)) AND p.dynamics_contact_id IS NOT NULL;
    IF m_ids IS NULL THEN
        RETURN;
    END IF;

    UPDATE sync_queue q
       SET status = 'superseded', superseded_by = t.qid, finished_at = now(), updated_at = now()
      FROM unnest(m_ids, q_ids) AS t (mid, qid)
     WHERE q.mentor_id = t.mid AND q.status = 'pending';

    INSERT INTO sync_queue (id, mentor_id, operation, payload_json, source, priority)
    OVERRIDING SYSTEM VALUE
    SELECT t.qid, p.id,
           CASE WHEN p.status = 'active' THEN 'restore' ELSE 'remove' END,
           jsonb_build_object('contact_id', p.dynamics_contact_id,
                              'listed', p.status = 'active',
                              'status', p.status,
                              'reason', p.status_reason,
                              'changed_at', now()),
           src, prio
      FROM unnest(m_ids, q_ids) AS t (mid, qid)
      JOIN peer_mentors p ON p.id = t.mid;

    INSERT INTO audit_log (mentor_id, sync_queue_id, event_type, actor, details)
    SELECT q.mentor_id, q.id, 'sync_requested', who,
           jsonb_build_object('source', src, 'operation', q.operation, 'priority', prio)
      FROM sync_queue q WHERE q.id = ANY (q_ids);

    PERFORM pg_notify('hlfsync_sync_queue', src);
    RETURN QUERY
        SELECT q.mentor_id, q.id, q.operation FROM sync_queue q WHERE q.id = ANY (q_ids)
         ORDER BY q.id;
END
$$;

--
-- Name: expiry_actor(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.expiry_actor() RETURNS text
    LANGUAGE sql STABLE
    SET search_path TO ''
    AS $$
    SELECT public.audit_actor()
$$;

--
-- Name: expiry_chunk_bounds(integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.expiry_chunk_bounds(size integer) RETURNS SETOF uuid
    LANGUAGE sql STABLE
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT b.id
      FROM (SELECT m.id, row_number() OVER (ORDER BY m.id) AS n FROM public.peer_mentors m) b
     WHERE b.n % greatest(size, 1) = 0
     ORDER BY b.id
$$;

--
-- Name: expiry_duplicates(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.expiry_duplicates() RETURNS TABLE(finding text, mentor_id uuid, certification_expiry_date date, threshold_day integer, copies integer)
    LANGUAGE sql STABLE
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT 'duplicate_reminder', r.mentor_id, r.certification_expiry_date, r.threshold_day,
           count(*)::int
      FROM cert_expiry_reminders r
     GROUP BY r.mentor_id, r.threshold_day, r.certification_expiry_date
    HAVING count(*) > 1
    UNION ALL
    SELECT 'duplicate_pause', l.mentor_id, (l.details ->> 'certification_expiry_date')::date,
           NULL, count(*)::int
      FROM audit_log l
     WHERE l.event_type = 'certification_expired'
     GROUP BY l.mentor_id, l.details ->> 'certification_expiry_date'
    HAVING count(*) > 1
$$;

--
-- Name: expiry_pause_expired(date, text, timestamp with time zone); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.expiry_pause_expired(today date, who text, at timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS TABLE(mentors_paused integer, alerts_raised integer, deliveries_created integer)
    LANGUAGE sql
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT * FROM public.expiry_pause_expired(today, who, at, NULL::uuid, NULL::uuid)
$$;

--
-- Name: expiry_pause_expired(date, text, timestamp with time zone, uuid, uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.expiry_pause_expired(today date, who text, at timestamp with time zone, lo uuid, hi uuid) RETURNS TABLE(mentors_paused integer, alerts_raised integer, deliveries_created integer)
    LANGUAGE plpgsql
    SET search_path TO 'public', 'pg_temp'
    AS $_$
DECLARE
    prev_actor   text := current_setting('hlfsync.actor', true);
    prev_reason  text := current_setting('hlfsync.reason', true);
    prev_prio    text := current_setting('hlfsync.priority', true);
BEGIN
    PERFORM set_config('hlfsync.actor', who, true);
    PERFORM set_config('hlfsync.reason', 'certification_expired', true);
    -- Bulk work: the `remove`s queued here wait behind any person's change.
    PERFORM set_config('hlfsync.priority', '-10', true);
    -- Through EXECUTE: planned for this chunk's range (an open end is no condition at all).
    RETURN QUERY EXECUTE $q$
    WITH expired AS (
        -- Locks in id order, as enqueue_sync does, so the two cannot deadlock. The certificate
        -- is locked too: a renewal committed meanwhile is seen, and one waiting on us sees the
        -- pause and restores.
        SELECT m.id, c.expires_on
          FROM peer_mentors m JOIN certifications c ON c.mentor_id = m.id
         WHERE m.status = 'active' AND c.expires_on < $1
           AND ($4::uuid IS NULL OR m.id > $4) AND ($5::uuid IS NULL OR m.id <= $5)
         ORDER BY m.id
           FOR UPDATE OF m, c
    ), moved AS (
        UPDATE peer_mentors m
           SET status = 'paused', status_reason = 'certification_expired'
          FROM expired e
         WHERE m.id = e.id AND m.status = 'active'
           AND ($4::uuid IS NULL OR m.id > $4) AND ($5::uuid IS NULL OR m.id <= $5)
        RETURNING m.id, e.expires_on
    ), audited AS (
        INSERT INTO audit_log (occurred_at, mentor_id, event_type, actor, details)
        SELECT coalesce($3, now()), mv.id, 'certification_expired', $2,
               jsonb_build_object('certification_expiry_date', mv.expires_on, 'today', $1)
          FROM moved mv
    ), batch AS (
        -- The alerts' four arrays in one pass over the moved mentors, sorted once.
        SELECT array_agg(mv.id ORDER BY mv.id) AS mentors,
               array_agg(mv.id || ':' || to_char(mv.expires_on, 'YYYY-MM-DD')
                         ORDER BY mv.id) AS keys,
               array_agg(jsonb_build_object('type', 'hlf_cert_paused',
                                            'mentor_id', mv.id::text,
                                            'operation', 'remove') ORDER BY mv.id) AS payloads,
               array_agg(jsonb_build_object('reason', 'certification_expired',
                                            'certification_expiry_date', mv.expires_on)
                         ORDER BY mv.id) AS details
          FROM moved mv
    ), raised AS (
        SELECT ra.deliveries
          FROM batch b,
               raise_mentor_alerts('cert_paused', $3, b.mentors, b.keys, b.payloads,
                                   b.details) AS ra
    )
    SELECT (SELECT count(*) FROM moved)::int,
           (SELECT count(*) FROM raised)::int,
           (SELECT coalesce(sum(r.deliveries), 0) FROM raised r)::int
    $q$ USING today, who, at, lo, hi;
    -- Transaction-local settings outlive this call; put the caller's back.
    PERFORM set_config('hlfsync.actor', coalesce(prev_actor, ''), true);
    PERFORM set_config('hlfsync.reason', coalesce(prev_reason, ''), true);
    PERFORM set_config('hlfsync.priority', coalesce(prev_prio, ''), true);
END
$_$;

--
-- Name: expiry_send_reminders(date, text, timestamp with time zone); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.expiry_send_reminders(today date, who text, at timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS TABLE(threshold_day integer, reminders integer, alerts integer, deliveries integer)
    LANGUAGE sql
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT * FROM public.expiry_send_reminders(today, who, at, NULL::uuid, NULL::uuid)
$$;

--
-- Name: expiry_send_reminders(date, text, timestamp with time zone, uuid, uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.expiry_send_reminders(today date, who text, at timestamp with time zone, lo uuid, hi uuid) RETURNS TABLE(threshold_day integer, reminders integer, alerts integer, deliveries integer)
    LANGUAGE plpgsql
    SET search_path TO 'public', 'pg_temp'
    AS $_$
BEGIN
    -- Through EXECUTE: planned for this chunk's range (an open end is no condition at all).
    RETURN QUERY EXECUTE $q$
    WITH horizon AS (
        -- No threshold looks further ahead than this: certificates beyond it are not even read.
        SELECT greatest(30, coalesce(max(d), 0)) AS days
          FROM org_settings s, unnest(s.reminder_threshold_days) AS d
    ), due AS (
        SELECT c.mentor_id, c.id AS certification_id, c.expires_on,
               c.expires_on - $1 AS days_left,
               -- An organisation without a settings row gets the column's default.
               expiry_threshold(c.expires_on - $1,
                                coalesce(s.reminder_threshold_days, '{30,14,7}')) AS threshold
          FROM certifications c
          JOIN peer_mentors m ON m.id = c.mentor_id
          LEFT JOIN org_settings s ON s.organization_id = m.organization_id
         WHERE m.status = 'active'
           AND c.expires_on >= $1
           AND c.expires_on <= $1 + (SELECT h.days FROM horizon h)
           AND ($4::uuid IS NULL OR c.mentor_id > $4) AND ($5::uuid IS NULL OR c.mentor_id <= $5)
    ), sent AS (
        INSERT INTO cert_expiry_reminders AS r (mentor_id, certification_id, threshold_day,
                                                certification_expiry_date, days_left, created_at)
        SELECT d.mentor_id, d.certification_id, d.threshold, d.expires_on, d.days_left,
               coalesce($3, now())
          FROM due d
         WHERE d.threshold IS NOT NULL
         ORDER BY d.mentor_id  -- one order for every run, so concurrent runs cannot deadlock
        ON CONFLICT (mentor_id, threshold_day, certification_expiry_date) DO NOTHING
        RETURNING r.id, r.mentor_id, r.threshold_day, r.certification_expiry_date, r.days_left
    ), audited AS (
        INSERT INTO audit_log (occurred_at, mentor_id, event_type, actor, details)
        SELECT coalesce($3, now()), s.mentor_id, 'cert_expiry_reminder', $2,
               jsonb_build_object('reminder_id', s.id, 'threshold_day', s.threshold_day,
                                  'days_left', s.days_left,
                                  'certification_expiry_date', s.certification_expiry_date,
                                  'today', $1)
          FROM sent s
    ), batch AS (
        -- The alerts' four arrays in one pass over the reminders sent, sorted once.
        SELECT array_agg(s.mentor_id ORDER BY s.id) AS mentors,
               array_agg(s.mentor_id || ':' || s.threshold_day || ':'
                         || to_char(s.certification_expiry_date, 'YYYY-MM-DD')
                         ORDER BY s.id) AS keys,
               -- The push data: as notify.payloads.build_reminder_data builds it, strings only.
               array_agg(jsonb_build_object('type', 'hlf_cert_expiry_reminder',
                                            'mentor_id', s.mentor_id::text,
                                            'threshold_days', s.threshold_day::text)
                         ORDER BY s.id) AS payloads,
               array_agg(jsonb_build_object('reminder_id', s.id,
                                            'threshold_day', s.threshold_day,
                                            'days_left', s.days_left,
                                            'certification_expiry_date',
                                            s.certification_expiry_date)
                         ORDER BY s.id) AS details
          FROM sent s
    ), raised AS (
        SELECT (ra.payload ->> 'threshold_days')::int AS threshold_day, ra.deliveries
          FROM batch b,
               raise_mentor_alerts('cert_reminder', $3, b.mentors, b.keys, b.payloads,
                                   b.details) AS ra
    )
    -- Counted apart and joined per threshold (a handful of rows): a join of the two CTEs row by
    -- row would be planned on guesses and can turn quadratic.
    SELECT t.threshold_day, t.n, coalesce(a.n, 0), coalesce(a.deliveries, 0)
      FROM (SELECT s.threshold_day, count(*)::int AS n FROM sent s GROUP BY s.threshold_day) AS t
      LEFT JOIN (SELECT ra.threshold_day, count(*)::int AS n, sum(ra.deliveries)::int AS deliveries
                   FROM raised ra GROUP BY ra.threshold_day) AS a
             ON a.threshold_day = t.threshold_day
     ORDER BY t.threshold_day DESC
    $q$ USING today, who, at, lo, hi;
END
$_$;

--
-- Name: expiry_threshold(integer, integer[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.expiry_threshold(days_left integer, thresholds integer[]) RETURNS integer
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'public', 'pg_temp'
    AS $$
DECLARE
    best int;
    t int;
BEGIN
    IF days_left IS NULL OR days_left < 0 OR thresholds IS NULL THEN
        RETURN NULL;
    END IF;
    FOREACH t IN ARRAY thresholds LOOP
        IF t >= days_left AND (best IS NULL OR t < best) THEN
            best := t;
        END IF;
    END LOOP;
    RETURN best;
END
$$;

--
-- Name: expiry_today(timestamp with time zone); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.expiry_today(at timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS date
    LANGUAGE sql STABLE
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT (coalesce(at, now())
            AT TIME ZONE coalesce(nullif(current_setting('hlfsync.timezone', true), ''),
                                  'Europe/Oslo'))::date
$$;

--
-- Name: operator_notice_breaker_closed(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.operator_notice_breaker_closed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
BEGIN
    IF OLD.state <> 'closed' AND NEW.state = 'closed' THEN
        PERFORM public.operator_notice_recovered(
            'breaker_open', OLD.name || ':' || OLD.incident, NEW.updated_at,
            jsonb_build_object('breaker', NEW.name));
    END IF;
    RETURN NULL;
END
$$;

--
-- Name: operator_notice_credentials_ok(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.operator_notice_credentials_ok() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
BEGIN
    IF NOT OLD.ok AND NEW.ok THEN
        -- Only the kind that raised a notice for this incident inserts (see the function).
        PERFORM public.operator_notice_recovered(
            kind, OLD.name || ':' || OLD.incident, NEW.checked_at,
            jsonb_build_object('check', NEW.name, 'detail', NEW.detail))
          FROM unnest(ARRAY['auth_failure', 'contract_failure']) AS kinds (kind);
    END IF;
    RETURN NULL;
END
$$;

--
-- Name: operator_notice_for_alert(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.operator_notice_for_alert() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
BEGIN
    INSERT INTO public.operator_notices
        (kind, incident_key, event, alert_id, details, next_attempt_at, created_at)
    VALUES (NEW.kind, NEW.incident_key, 'raised', NEW.id, NEW.details, NEW.created_at,
            NEW.created_at)
    ON CONFLICT (kind, incident_key, event) DO NOTHING;
    RETURN NULL;
END
$$;

--
-- Name: operator_notice_recovered(text, text, timestamp with time zone, jsonb); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.operator_notice_recovered(notice_kind text, notice_key text, at timestamp with time zone, notice_details jsonb) RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO ''
    AS $$
    INSERT INTO public.operator_notices
        (kind, incident_key, event, details, next_attempt_at, created_at)
    SELECT notice_kind, notice_key, 'recovered', notice_details, at, at
     WHERE EXISTS (SELECT 1 FROM public.operator_notices n
                    WHERE n.kind = notice_kind AND n.incident_key = notice_key
                      AND n.event = 'raised')
    ON CONFLICT (kind, incident_key, event) DO NOTHING;
$$;

--
-- Name: peer_mentor_reason_guard(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.peer_mentor_reason_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO ''
    AS $$
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

--
-- Name: peer_mentor_status_outbox(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.peer_mentor_status_outbox() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $_$
DECLARE
    who          text := audit_actor();
    -- Bulk writers (the nightly expiry) say so; a person's change keeps the default, 0. The
    -- API roles cannot choose: what they change is a person's change.
    prio         smallint := CASE WHEN auth_is_api_caller() THEN 0
                                  ELSE coalesce(nullif(current_setting('hlfsync.priority', true),
                                                       ''), '0')::smallint END;
    -- Looked up once: called per row, it reads the catalogue each time (2 µs a row, five times
    -- what nextval itself costs).
    queue_seq    regclass := pg_get_serial_sequence('sync_queue', 'id')::regclass;
    -- The changed rows (status or reason), in mentor order; queue ids only for the moved ones.
    ids          uuid[];
    queue_ids    bigint[];
    old_status   text[];
    new_status   text[];
    old_reason   text[];
    new_reason   text[];
    contacts     uuid[];
BEGIN
    -- Through EXECUTE: planned for this statement's transition tables (one row or fifty
    -- thousand), never a plan cached from another statement's size. Queue ids are drawn in
    -- mentor order (the subquery's), so superseded rows can point at their successors.
    EXECUTE $q$
        SELECT array_agg(s.id),
               array_agg(CASE WHEN s.moved THEN nextval($1) END),
               array_agg(s.old_status), array_agg(s.new_status),
               array_agg(s.old_reason), array_agg(s.new_reason),
               array_agg(s.contact)
          FROM (SELECT n.id, (o.status = 'active') IS DISTINCT FROM (n.status = 'active') AS moved,
                       o.status AS old_status, n.status AS new_status,
                       o.status_reason AS old_reason, n.status_reason AS new_reason,
                       n.dynamics_contact_id AS contact
                  FROM changed_new n JOIN changed_old o ON o.id = n.id
                 WHERE o.status IS DISTINCT FROM n.status
                    OR o.status_reason IS DISTINCT FROM n.status_reason
                 ORDER BY n.id) AS s
    $q$ INTO ids, queue_ids, old_status, new_status, old_reason, new_reason, contacts
        USING queue_seq;

    IF ids IS NULL THEN
        RETURN NULL;
    END IF;

    IF EXISTS (SELECT 1 FROM unnest(queue_ids) AS q (id) WHERE q.id IS NOT NULL) THEN
        -- Desired state, not commands: the waiting operation, if any, is now moot. Before the
        -- insert, since a mentor has at most one pending operation (a unique index).
        UPDATE sync_queue q
           SET status = 'superseded', superseded_by = m.queued_id,
               finished_at = now(), updated_at = now()
          FROM unnest(ids, queue_ids) AS m (mentor_id, queued_id)
         WHERE m.queued_id IS NOT NULL
           AND q.mentor_id = m.mentor_id AND q.status = 'pending'
           -- By key: these mentors' pending rows, not every pending row in the queue.
           AND q.mentor_id = ANY (ids);

        INSERT INTO sync_queue (id, mentor_id, operation, payload_json, source, priority)
        OVERRIDING SYSTEM VALUE
        SELECT m.queued_id, m.mentor_id,
               CASE WHEN m.status = 'active' THEN 'restore' ELSE 'remove' END,
               jsonb_build_object('contact_id', m.contact,
                                  'listed', m.status = 'active',
                                  'status', m.status,
                                  'reason', m.reason,
                                  'changed_at', now()),
               'status_change', prio
          FROM unnest(ids, queue_ids, new_status, new_reason, contacts)
               AS m (mentor_id, queued_id, status, reason, contact)
         WHERE m.queued_id IS NOT NULL
         ORDER BY m.queued_id;

        PERFORM pg_notify('hlfsync_sync_queue',
                          (SELECT max(q.id) FROM unnest(queue_ids) AS q (id))::text);
    END IF;

    INSERT INTO audit_log (mentor_id, sync_queue_id, event_type, actor, details)
    SELECT m.mentor_id, m.queued_id,
           CASE WHEN m.old_status IS DISTINCT FROM m.new_status THEN 'status_changed'
                ELSE 'status_reason_changed' END,
           who,
           jsonb_build_object('old_status', m.old_status, 'new_status', m.new_status,
                              'reason', m.new_reason,
                              'old_reason', m.old_reason,
                              'operation', CASE WHEN m.queued_id IS NULL THEN NULL
                                                WHEN m.new_status = 'active' THEN 'restore'
                                                ELSE 'remove' END)
      FROM unnest(ids, queue_ids, old_status, new_status, old_reason, new_reason)
           AS m (mentor_id, queued_id, old_status, new_status, old_reason, new_reason)
     ORDER BY m.mentor_id;
    RETURN NULL;
END
$_$;

--
-- Name: peer_mentor_status_stamp(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.peer_mentor_status_stamp() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'public', 'pg_temp'
    AS $$
BEGIN
    NEW.status_changed_at := now();
    IF NEW.status_reason IS NOT DISTINCT FROM OLD.status_reason THEN
        NEW.status_reason := CASE WHEN current_user IN ('authenticated', 'anon') THEN 'manual'
                                  ELSE nullif(current_setting('hlfsync.reason', true), '') END;
    END IF;
    RETURN NEW;
END
$$;

--
-- Name: raise_compensation_alert(timestamp with time zone); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.raise_compensation_alert(at timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS TABLE(findings integer, alert_id bigint, deliveries integer)
    LANGUAGE sql
    SET search_path TO 'public', 'pg_temp'
    AS $$
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

--
-- Name: raise_mentor_alerts(text, timestamp with time zone, uuid[], text[], jsonb[], jsonb[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.raise_mentor_alerts(alert_kind text, alert_at timestamp with time zone, alert_mentors uuid[], alert_keys text[], alert_payloads jsonb[], alert_details jsonb[]) RETURNS TABLE(alert_id bigint, mentor_id uuid, incident_key text, payload jsonb, deliveries integer)
    LANGUAGE plpgsql
    SET search_path TO 'public', 'pg_temp'
    AS $_$
BEGIN
    -- Through EXECUTE: planned for this call's number of alerts (one renewal or a chunk of the
    -- first expiry check), while the foreign-key checks of its inserts keep their cached plans.
    RETURN QUERY EXECUTE $q$
    WITH wanted AS (
        SELECT w.m, w.k, w.p, w.d
          FROM unnest($3::uuid[], $4::text[], $5::jsonb[], $6::jsonb[]) AS w (m, k, p, d)
    ), raised AS (
        INSERT INTO alerts AS a (kind, incident_key, mentor_id, organization_id, payload,
                                 details, created_at)
        SELECT $1, w.k, pm.id, pm.organization_id, w.p, w.d, coalesce($2, now())
          FROM wanted w
          JOIN peer_mentors pm ON pm.id = w.m AND pm.id = ANY ($3::uuid[])
         ORDER BY w.k
        ON CONFLICT (kind, incident_key) DO NOTHING
        RETURNING a.id, a.mentor_id, a.organization_id, a.incident_key, a.payload
    ), memberships AS MATERIALIZED (
        -- Each alert's chapters, by the mentor's key, before anything else is joined: the
        -- planner cannot count what an INSERT will return, and guessing a few hundred it
        -- joined the alerts to every chapter of their organisation first (six probes per
        -- alert instead of one).
        SELECT r.id AS alert_id, r.organization_id, cm.chapter_id
          FROM raised r
          JOIN chapter_memberships cm ON cm.mentor_id = r.mentor_id
    ), coordinators AS (
        SELECT DISTINCT ms.alert_id, cc.user_id
          FROM memberships ms
          JOIN chapters c ON c.id = ms.chapter_id AND c.organization_id = ms.organization_id
          JOIN coordinator_chapters cc ON cc.chapter_id = ms.chapter_id
          JOIN app_users u ON u.id = cc.user_id AND u.organization_id = ms.organization_id
    ), recipients AS (
        SELECT c.alert_id, c.user_id FROM coordinators c
        UNION
        SELECT r.id, oa.user_id
          FROM raised r JOIN organization_admins oa ON oa.organization_id = r.organization_id
         WHERE NOT EXISTS (SELECT 1 FROM coordinators c WHERE c.alert_id = r.id)
    ), delivered AS (
        INSERT INTO alert_deliveries AS d (alert_id, user_id, device_token, next_attempt_at,
                                           created_at)
        SELECT rc.alert_id, t.user_id, t.token, coalesce($2, now()), coalesce($2, now())
          FROM recipients rc JOIN device_tokens t ON t.user_id = rc.user_id
         ORDER BY rc.alert_id, t.token
        ON CONFLICT (alert_id, device_token) DO NOTHING
        RETURNING d.alert_id
    ), per_alert AS (
        SELECT dl.alert_id, count(*)::int AS n FROM delivered dl GROUP BY dl.alert_id
    ), notified AS (
        SELECT pg_notify('hlfsync_alerts', $1) AS woke WHERE EXISTS (SELECT 1 FROM raised)
    )
    SELECT r.id, r.mentor_id, r.incident_key, r.payload, coalesce(pa.n, 0)
      FROM raised r
      LEFT JOIN per_alert pa ON pa.alert_id = r.id
      CROSS JOIN (SELECT count(*) FROM notified) AS woke
    $q$ USING alert_kind, alert_at, alert_mentors, alert_keys, alert_payloads, alert_details;
END
$_$;

--
-- Name: reclass_changed_mentors(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.reclass_changed_mentors() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
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

--
-- Name: reclass_mentors(uuid[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.reclass_mentors(touched uuid[]) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
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

--
-- Name: record_synced_listing(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.record_synced_listing() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
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

--
-- Name: refuse_cross_organisation_row(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.refuse_cross_organisation_row() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO ''
    AS $$
DECLARE
    member_org  uuid;
    chapter_org uuid;
BEGIN
    SELECT organization_id INTO chapter_org FROM public.chapters WHERE id = NEW.chapter_id;
    IF TG_TABLE_NAME = 'chapter_memberships' THEN
        SELECT organization_id INTO member_org FROM public.peer_mentors WHERE id = NEW.mentor_id;
    ELSE
        SELECT organization_id INTO member_org FROM public.app_users WHERE id = NEW.user_id;
    END IF;
    IF member_org IS DISTINCT FROM chapter_org THEN
        RAISE EXCEPTION 'a chapter of one organisation cannot hold a member of another'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

--
-- Name: refuse_delete(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.refuse_delete() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'public', 'pg_temp'
    AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

--
-- Name: refuse_organisation_move(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.refuse_organisation_move() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO ''
    AS $$
BEGIN
    IF (TG_TABLE_NAME = 'peer_mentors' AND EXISTS (
            SELECT 1 FROM public.chapter_memberships WHERE mentor_id = NEW.id))
       OR (TG_TABLE_NAME = 'app_users' AND EXISTS (
            SELECT 1 FROM public.coordinator_chapters WHERE user_id = NEW.id))
       OR (TG_TABLE_NAME = 'chapters' AND (
            EXISTS (SELECT 1 FROM public.chapter_memberships WHERE chapter_id = NEW.id)
            OR EXISTS (SELECT 1 FROM public.coordinator_chapters WHERE chapter_id = NEW.id)))
    THEN
        RAISE EXCEPTION 'remove its chapter rows before moving it to another organisation'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

--
-- Name: requeue_dead_letters(bigint[], text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.requeue_dead_letters(letters bigint[], who text) RETURNS TABLE(dead_letter_id bigint, sync_queue_id bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
DECLARE
    d record;
    queued bigint;
BEGIN
    FOR d IN
        SELECT l.id, l.mentor_id FROM dead_letter_queue l
         WHERE (letters IS NULL OR l.id = ANY (letters)) AND l.status = 'open'
         ORDER BY l.mentor_id, l.id FOR UPDATE
    LOOP
        SELECT e.sync_queue_id INTO queued
          FROM enqueue_sync(ARRAY[d.mentor_id], 'requeue', 10, who) e;
        IF queued IS NULL THEN
            CONTINUE;  -- the mentor lost its contact id; the letter stays open
        END IF;
        UPDATE dead_letter_queue
           SET status = 'requeued', requeued_as = queued, handled_by = who, handled_at = now(),
               updated_at = now()
         WHERE id = d.id;
        INSERT INTO audit_log (mentor_id, sync_queue_id, event_type, actor, details)
        VALUES (d.mentor_id, queued, 'dead_letter_requeued', who,
                jsonb_build_object('dead_letter_id', d.id));
        dead_letter_id := d.id;
        sync_queue_id := queued;
        RETURN NEXT;
    END LOOP;
END
$$;

--
-- Name: resolve_dead_letter(bigint, text, text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.resolve_dead_letter(letter bigint, note text, who text) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
DECLARE
    m uuid;
BEGIN
    IF note IS NULL OR length(btrim(note)) = 0 THEN
        RAISE EXCEPTION 'a resolution note is required' USING ERRCODE = 'check_violation';
    END IF;
    UPDATE dead_letter_queue
       SET status = 'resolved', resolution_note = note, handled_by = who, handled_at = now(),
           updated_at = now()
     WHERE id = letter AND status = 'open'
    RETURNING mentor_id INTO m;
    IF m IS NULL THEN
        RETURN false;
    END IF;
    INSERT INTO audit_log (mentor_id, event_type, actor, details)
    VALUES (m, 'dead_letter_resolved', who, jsonb_build_object('dead_letter_id', letter,
                                                               'note', note));
    RETURN true;
END
$$;

--
-- Name: status_reason_reserved(text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.status_reason_reserved(reason text) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    SET search_path TO ''
    AS $$
    SELECT coalesce(reason IN ('certification_expired', 'certification_renewed'), false)
$$;

--
-- Name: sync_queue_link_contact(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.sync_queue_link_contact() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO ''
    AS $$
BEGIN
    UPDATE public.sync_queue
       SET payload_json = jsonb_set(payload_json, '{contact_id}',
                                    to_jsonb(NEW.dynamics_contact_id)),
           -- In flight, the worker's release sets the time; a pending one runs at once.
           next_attempt_at = CASE WHEN status = 'pending' THEN now() ELSE next_attempt_at END,
           updated_at = now()
     WHERE mentor_id = NEW.id AND status IN ('pending', 'in_progress');
    RETURN NULL;
END
$$;

--
-- Name: track_listing_should(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.track_listing_should() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $_$
DECLARE
    moved     uuid[];
    shoulds   boolean[];
    moved_at  timestamptz[];
BEGIN
    EXECUTE $q$
        SELECT array_agg(n.id ORDER BY n.id), array_agg(n.status = 'active' ORDER BY n.id),
               array_agg(n.status_changed_at ORDER BY n.id)
          FROM changed_new n JOIN changed_old o ON o.id = n.id
         WHERE (o.status = 'active') IS DISTINCT FROM (n.status = 'active')
    $q$ INTO moved, shoulds, moved_at;
    IF moved IS NULL THEN
        RETURN NULL;
    END IF;
    -- Rows locked in mentor order, as the success trigger and the reconciliation take them:
    -- a statement pausing many mentors cannot deadlock with either.
    PERFORM 1 FROM public.listing_confirmations c
     WHERE c.mentor_id = ANY (moved)
     ORDER BY c.mentor_id
       FOR UPDATE OF c;
    UPDATE public.listing_confirmations c
       SET should_list = m.should,
           differs_since = CASE WHEN c.listed IS NULL OR c.listed = m.should THEN NULL
                                ELSE coalesce(c.differs_since, m.since) END
      FROM unnest(moved, shoulds, moved_at) AS m (id, should, since)
     WHERE c.mentor_id = m.id AND c.mentor_id = ANY (moved);
    RETURN NULL;
END
$_$;

--
-- Name: valid_threshold_days(integer[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.valid_threshold_days(days integer[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT cardinality(days) > 0
       AND array_position(days, NULL) IS NULL
       AND (SELECT bool_and(d > 0) AND count(DISTINCT d) = count(*) FROM unnest(days) AS d)
$$;

--
-- Name: alert_deliveries; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.alert_deliveries (
    id bigint NOT NULL,
    alert_id bigint NOT NULL,
    user_id uuid NOT NULL,
    device_token text NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    attempt_count integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    locked_until timestamp with time zone,
    last_error text,
    message_name text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    CONSTRAINT alert_deliveries_attempt_count_check CHECK ((attempt_count >= 0)),
    CONSTRAINT alert_deliveries_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'in_progress'::text, 'delivered'::text, 'failed'::text, 'unregistered'::text, 'not_configured'::text]))),
    CONSTRAINT delivery_leased_iff_in_progress CHECK (((status = 'in_progress'::text) = (locked_until IS NOT NULL)))
);

ALTER TABLE ONLY public.alert_deliveries FORCE ROW LEVEL SECURITY;

--
-- Name: alert_deliveries_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.alert_deliveries ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.alert_deliveries_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: alerts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.alerts (
    id bigint NOT NULL,
    kind text NOT NULL,
    incident_key text NOT NULL,
    mentor_id uuid,
    organization_id uuid,
    payload jsonb NOT NULL,
    details jsonb DEFAULT '{}'::jsonb NOT NULL,
    status text DEFAULT 'open'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    audience text GENERATED ALWAYS AS (
CASE
    WHEN (organization_id IS NULL) THEN 'operators'::text
    ELSE 'organization'::text
END) STORED NOT NULL,
    CONSTRAINT alerts_kind_check CHECK ((kind = ANY (ARRAY['sync_failure'::text, 'breaker_open'::text, 'auth_failure'::text, 'cert_reminder'::text, 'cert_paused'::text, 'cert_restored'::text, 'compensation'::text, 'contract_failure'::text, 'hold_recovered'::text]))),
    CONSTRAINT alerts_payload_check CHECK ((jsonb_typeof(payload) = 'object'::text)),
    CONSTRAINT alerts_status_check CHECK ((status = ANY (ARRAY['open'::text, 'acknowledged'::text])))
);

ALTER TABLE ONLY public.alerts FORCE ROW LEVEL SECURITY;

--
-- Name: alerts_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.alerts ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.alerts_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: app_users; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.app_users (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    organization_id uuid NOT NULL,
    full_name text NOT NULL,
    email text,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE ONLY public.app_users FORCE ROW LEVEL SECURITY;

--
-- Name: audit_log; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.audit_log (
    id bigint NOT NULL,
    occurred_at timestamp with time zone DEFAULT now() NOT NULL,
    mentor_id uuid,
    sync_queue_id bigint,
    event_type text NOT NULL,
    actor text DEFAULT 'system'::text NOT NULL,
    details jsonb DEFAULT '{}'::jsonb NOT NULL,
    CONSTRAINT audit_log_details_check CHECK ((jsonb_typeof(details) = 'object'::text)),
    CONSTRAINT audit_log_event_type_check CHECK (((length(event_type) >= 1) AND (length(event_type) <= 64)))
);

ALTER TABLE ONLY public.audit_log FORCE ROW LEVEL SECURITY;

--
-- Name: audit_log_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.audit_log ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.audit_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: cert_expiry_reminders; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.cert_expiry_reminders (
    id bigint NOT NULL,
    mentor_id uuid NOT NULL,
    certification_id uuid,
    threshold_day integer NOT NULL,
    certification_expiry_date date NOT NULL,
    days_left integer,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT cert_expiry_reminders_threshold_day_check CHECK ((threshold_day > 0))
);

ALTER TABLE ONLY public.cert_expiry_reminders FORCE ROW LEVEL SECURITY;

--
-- Name: cert_expiry_reminders_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.cert_expiry_reminders ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.cert_expiry_reminders_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: certifications; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.certifications (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    mentor_id uuid NOT NULL,
    issued_on date NOT NULL,
    expires_on date NOT NULL,
    renewal_history jsonb DEFAULT '[]'::jsonb NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT certifications_check CHECK ((expires_on >= issued_on)),
    CONSTRAINT certifications_renewal_history_check CHECK ((jsonb_typeof(renewal_history) = 'array'::text))
);

ALTER TABLE ONLY public.certifications FORCE ROW LEVEL SECURITY;

--
-- Name: chapter_memberships; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.chapter_memberships (
    mentor_id uuid NOT NULL,
    chapter_id uuid NOT NULL
);

ALTER TABLE ONLY public.chapter_memberships FORCE ROW LEVEL SECURITY;

--
-- Name: chapters; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.chapters (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    organization_id uuid NOT NULL,
    name text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT chapters_name_check CHECK ((length(btrim(name)) > 0))
);

ALTER TABLE ONLY public.chapters FORCE ROW LEVEL SECURITY;

--
-- Name: chart_hour_classes; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.chart_hour_classes (
    hour timestamp with time zone NOT NULL,
    class_id integer NOT NULL,
    succeeded integer NOT NULL,
    retried integer NOT NULL,
    throttled integer NOT NULL,
    dead_lettered integer NOT NULL,
    lags_s double precision[] NOT NULL
);

ALTER TABLE ONLY public.chart_hour_classes FORCE ROW LEVEL SECURITY;

--
-- Name: chart_hours; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.chart_hours (
    hour timestamp with time zone NOT NULL,
    gen bigint DEFAULT 0 NOT NULL,
    rolled_gen bigint,
    rolled_classes bigint
);

ALTER TABLE ONLY public.chart_hours FORCE ROW LEVEL SECURITY;

--
-- Name: circuit_breakers; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.circuit_breakers (
    name text NOT NULL,
    state text DEFAULT 'closed'::text NOT NULL,
    consecutive_failures integer DEFAULT 0 NOT NULL,
    opened_at timestamp with time zone,
    probe_started_at timestamp with time zone,
    paused_until timestamp with time zone,
    auth_failed boolean DEFAULT false NOT NULL,
    incident integer DEFAULT 0 NOT NULL,
    last_error text,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    hold_reason text,
    CONSTRAINT breaker_closed_is_not_held CHECK (((state <> 'closed'::text) OR (NOT auth_failed))),
    CONSTRAINT breaker_open_has_time CHECK (((state = 'closed'::text) OR (opened_at IS NOT NULL))),
    CONSTRAINT breaker_probe_only_half_open CHECK (((state = 'half_open'::text) OR (probe_started_at IS NULL))),
    CONSTRAINT breaker_reason_only_when_held CHECK ((auth_failed OR (hold_reason IS NULL))),
    CONSTRAINT circuit_breakers_consecutive_failures_check CHECK ((consecutive_failures >= 0)),
    CONSTRAINT circuit_breakers_hold_reason_check CHECK (((hold_reason IS NULL) OR (hold_reason = ANY (ARRAY['auth'::text, 'contract'::text])))),
    CONSTRAINT circuit_breakers_incident_check CHECK ((incident >= 0)),
    CONSTRAINT circuit_breakers_state_check CHECK ((state = ANY (ARRAY['closed'::text, 'open'::text, 'half_open'::text])))
);

ALTER TABLE ONLY public.circuit_breakers FORCE ROW LEVEL SECURITY;

--
-- Name: coordinator_chapters; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.coordinator_chapters (
    user_id uuid NOT NULL,
    chapter_id uuid NOT NULL
);

ALTER TABLE ONLY public.coordinator_chapters FORCE ROW LEVEL SECURITY;

--
-- Name: credential_health; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.credential_health (
    name text NOT NULL,
    ok boolean NOT NULL,
    checked_at timestamp with time zone DEFAULT now() NOT NULL,
    failing_since timestamp with time zone,
    incident integer DEFAULT 0 NOT NULL,
    detail text,
    CONSTRAINT credential_health_incident_check CHECK ((incident >= 0))
);

ALTER TABLE ONLY public.credential_health FORCE ROW LEVEL SECURITY;

--
-- Name: dead_letter_queue; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.dead_letter_queue (
    id bigint NOT NULL,
    sync_queue_id bigint NOT NULL,
    mentor_id uuid NOT NULL,
    operation_type text NOT NULL,
    payload_json jsonb NOT NULL,
    failure_reason text NOT NULL,
    attempt_count integer NOT NULL,
    status text DEFAULT 'open'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    requeued_as bigint,
    handled_by text,
    handled_at timestamp with time zone,
    resolution_note text,
    CONSTRAINT dead_letter_queue_attempt_count_check CHECK ((attempt_count >= 0)),
    CONSTRAINT dead_letter_queue_failure_reason_check CHECK (((failure_reason ~~ 'retries\_exhausted%'::text) OR (failure_reason ~~ 'requires\_investigation%'::text))),
    CONSTRAINT dead_letter_queue_operation_type_check CHECK ((operation_type = ANY (ARRAY['remove'::text, 'restore'::text]))),
    CONSTRAINT dead_letter_queue_status_check CHECK ((status = ANY (ARRAY['open'::text, 'requeued'::text, 'resolved'::text]))),
    CONSTRAINT dead_letter_requeued_has_target CHECK (((status = 'requeued'::text) = (requeued_as IS NOT NULL))),
    CONSTRAINT dead_letter_resolved_has_note CHECK (((status <> 'resolved'::text) OR (length(btrim(COALESCE(resolution_note, ''::text))) > 0)))
);

ALTER TABLE ONLY public.dead_letter_queue FORCE ROW LEVEL SECURITY;

--
-- Name: dead_letter_queue_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.dead_letter_queue ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.dead_letter_queue_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: device_tokens; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.device_tokens (
    id bigint NOT NULL,
    user_id uuid NOT NULL,
    token text NOT NULL,
    platform text DEFAULT 'android'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_seen_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT device_tokens_platform_check CHECK ((platform = ANY (ARRAY['android'::text, 'ios'::text, 'web'::text]))),
    CONSTRAINT device_tokens_token_check CHECK (((length(token) >= 1) AND (length(token) <= 4096)))
);

ALTER TABLE ONLY public.device_tokens FORCE ROW LEVEL SECURITY;

--
-- Name: device_tokens_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.device_tokens ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.device_tokens_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: listing_confirmations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.listing_confirmations (
    mentor_id uuid NOT NULL,
    listed boolean,
    confirmed_at timestamp with time zone,
    confirmed_by text,
    sync_queue_id bigint,
    should_list boolean NOT NULL,
    differs_since timestamp with time zone,
    differs boolean GENERATED ALWAYS AS ((listed <> should_list)) STORED,
    CONSTRAINT listing_confirmations_confirmed_by_check CHECK ((confirmed_by = ANY (ARRAY['sync'::text, 'reconcile'::text]))),
    CONSTRAINT listing_confirmed_all_or_nothing CHECK ((((listed IS NULL) = (confirmed_at IS NULL)) AND ((listed IS NULL) = (confirmed_by IS NULL)))),
    CONSTRAINT listing_differs_since_iff_differs CHECK ((COALESCE((listed = should_list), true) = (differs_since IS NULL)))
);

ALTER TABLE ONLY public.listing_confirmations FORCE ROW LEVEL SECURITY;

--
-- Name: mentor_class_generation; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.mentor_class_generation (
    only_row boolean DEFAULT true NOT NULL,
    gen bigint NOT NULL,
    CONSTRAINT mentor_class_generation_only_row_check CHECK (only_row)
);

ALTER TABLE ONLY public.mentor_class_generation FORCE ROW LEVEL SECURITY;

--
-- Name: mentor_class_members; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.mentor_class_members (
    mentor_id uuid NOT NULL,
    class_id integer NOT NULL
);

ALTER TABLE ONLY public.mentor_class_members FORCE ROW LEVEL SECURITY;

--
-- Name: mentor_classes; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.mentor_classes (
    id integer NOT NULL,
    organization_id uuid NOT NULL,
    chapters uuid[] NOT NULL,
    mentors integer DEFAULT 0 NOT NULL,
    CONSTRAINT mentor_classes_mentors_check CHECK ((mentors >= 0))
);

ALTER TABLE ONLY public.mentor_classes FORCE ROW LEVEL SECURITY;

--
-- Name: mentor_classes_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.mentor_classes ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.mentor_classes_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: peer_mentors; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.peer_mentors (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    organization_id uuid NOT NULL,
    full_name text NOT NULL,
    status text DEFAULT 'active'::text NOT NULL,
    status_reason text,
    status_changed_at timestamp with time zone DEFAULT now() NOT NULL,
    dynamics_contact_id uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    mentor_number text,
    CONSTRAINT peer_mentors_mentor_number_check CHECK (((mentor_number IS NULL) OR ((length(mentor_number) >= 1) AND (length(mentor_number) <= 100)))),
    CONSTRAINT peer_mentors_status_check CHECK ((status = ANY (ARRAY['active'::text, 'paused'::text, 'inactive'::text]))),
    CONSTRAINT peer_mentors_status_reason_check CHECK (((status_reason IS NULL) OR (length(status_reason) <= 200)))
);

ALTER TABLE ONLY public.peer_mentors FORCE ROW LEVEL SECURITY;

--
-- Name: sync_queue; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.sync_queue (
    id bigint NOT NULL,
    mentor_id uuid NOT NULL,
    operation text NOT NULL,
    payload_json jsonb NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    source text DEFAULT 'status_change'::text NOT NULL,
    priority smallint DEFAULT 0 NOT NULL,
    attempt_count integer DEFAULT 0 NOT NULL,
    throttle_count integer DEFAULT 0 NOT NULL,
    claim_count integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    locked_by text,
    locked_until timestamp with time zone,
    last_error text,
    superseded_by bigint,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    CONSTRAINT sync_queue_attempt_count_check CHECK ((attempt_count >= 0)),
    CONSTRAINT sync_queue_claim_count_check CHECK ((claim_count >= 0)),
    CONSTRAINT sync_queue_finished_iff_terminal CHECK (((status = ANY (ARRAY['succeeded'::text, 'dead_lettered'::text, 'superseded'::text])) = (finished_at IS NOT NULL))),
    CONSTRAINT sync_queue_leased_iff_in_progress CHECK (((status = 'in_progress'::text) = (locked_until IS NOT NULL))),
    CONSTRAINT sync_queue_operation_check CHECK ((operation = ANY (ARRAY['remove'::text, 'restore'::text]))),
    CONSTRAINT sync_queue_payload_json_check CHECK ((jsonb_typeof(payload_json) = 'object'::text)),
    CONSTRAINT sync_queue_source_check CHECK ((source = ANY (ARRAY['status_change'::text, 'reconcile'::text, 'force'::text, 'requeue'::text, 'break_glass'::text]))),
    CONSTRAINT sync_queue_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'in_progress'::text, 'succeeded'::text, 'dead_lettered'::text, 'superseded'::text]))),
    CONSTRAINT sync_queue_throttle_count_check CHECK ((throttle_count >= 0))
);

ALTER TABLE ONLY public.sync_queue FORCE ROW LEVEL SECURITY;

--
-- Name: mentor_listing; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.mentor_listing WITH (security_invoker='true') AS
 SELECT p.id,
    p.full_name,
    p.organization_id,
    p.status,
    p.status_reason,
    p.status_changed_at,
    (p.dynamics_contact_id IS NOT NULL) AS has_contact,
    q.id AS queue_id,
    q.operation,
    q.status AS queue_status,
    q.source,
    q.attempt_count,
    q.next_attempt_at,
    q.last_error,
    q.updated_at AS queue_updated_at,
    q.created_at AS queued_at,
    ok.finished_at AS last_synced_at,
    d.id AS dead_letter_id,
    d.created_at AS dead_lettered_at,
    c.listed AS confirmed_listed,
    c.confirmed_at,
    c.confirmed_by,
    c.differs_since,
        CASE
            WHEN (p.dynamics_contact_id IS NULL) THEN 'unlinked'::text
            WHEN (d.id IS NOT NULL) THEN 'dead_lettered'::text
            WHEN (q.status = ANY (ARRAY['pending'::text, 'in_progress'::text])) THEN 'pending'::text
            WHEN (c.listed IS NULL) THEN 'unconfirmed'::text
            WHEN (c.listed = (p.status = 'active'::text)) THEN 'in_step'::text
            ELSE 'out_of_step'::text
        END AS verdict
   FROM ((((public.peer_mentors p
     LEFT JOIN LATERAL ( SELECT s.id,
            s.mentor_id,
            s.operation,
            s.payload_json,
            s.status,
            s.source,
            s.priority,
            s.attempt_count,
            s.throttle_count,
            s.claim_count,
            s.next_attempt_at,
            s.locked_by,
            s.locked_until,
            s.last_error,
            s.superseded_by,
            s.created_at,
            s.updated_at,
            s.finished_at
           FROM public.sync_queue s
          WHERE (s.mentor_id = p.id)
          ORDER BY s.id DESC
         LIMIT 1) q ON (true))
     LEFT JOIN LATERAL ( SELECT s.finished_at
           FROM public.sync_queue s
          WHERE ((s.mentor_id = p.id) AND (s.status = 'succeeded'::text))
          ORDER BY s.id DESC
         LIMIT 1) ok ON (true))
     LEFT JOIN LATERAL ( SELECT l.id,
            l.created_at
           FROM public.dead_letter_queue l
          WHERE ((l.mentor_id = p.id) AND (l.status = 'open'::text))
          ORDER BY l.id DESC
         LIMIT 1) d ON (true))
     LEFT JOIN public.listing_confirmations c ON ((c.mentor_id = p.id)));

--
-- Name: operator_notices; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.operator_notices (
    id bigint NOT NULL,
    kind text NOT NULL,
    incident_key text NOT NULL,
    event text NOT NULL,
    alert_id bigint,
    details jsonb DEFAULT '{}'::jsonb NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    sent_to text[] DEFAULT '{}'::text[] NOT NULL,
    attempt_count integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    locked_until timestamp with time zone,
    last_error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    delivered_at timestamp with time zone,
    CONSTRAINT operator_notice_delivered_has_time CHECK (((status = 'delivered'::text) = (delivered_at IS NOT NULL))),
    CONSTRAINT operator_notice_leased_iff_in_progress CHECK (((status = 'in_progress'::text) = (locked_until IS NOT NULL))),
    CONSTRAINT operator_notices_attempt_count_check CHECK ((attempt_count >= 0)),
    CONSTRAINT operator_notices_details_check CHECK ((jsonb_typeof(details) = 'object'::text)),
    CONSTRAINT operator_notices_event_check CHECK ((event = ANY (ARRAY['raised'::text, 'recovered'::text]))),
    CONSTRAINT operator_notices_incident_key_check CHECK (((length(incident_key) >= 1) AND (length(incident_key) <= 200))),
    CONSTRAINT operator_notices_kind_check CHECK (((length(kind) >= 1) AND (length(kind) <= 64))),
    CONSTRAINT operator_notices_last_error_check CHECK ((length(last_error) <= 500)),
    CONSTRAINT operator_notices_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'in_progress'::text, 'delivered'::text])))
);

ALTER TABLE ONLY public.operator_notices FORCE ROW LEVEL SECURITY;

--
-- Name: operator_notices_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.operator_notices ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.operator_notices_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: org_settings; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.org_settings (
    organization_id uuid NOT NULL,
    reminder_threshold_days integer[] DEFAULT '{30,14,7}'::integer[] NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT org_settings_reminder_threshold_days_check CHECK (public.valid_threshold_days(reminder_threshold_days))
);

ALTER TABLE ONLY public.org_settings FORCE ROW LEVEL SECURITY;

--
-- Name: organization_admins; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.organization_admins (
    user_id uuid NOT NULL,
    organization_id uuid NOT NULL
);

ALTER TABLE ONLY public.organization_admins FORCE ROW LEVEL SECURITY;

--
-- Name: organizations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.organizations (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    name text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT organizations_name_check CHECK ((length(btrim(name)) > 0))
);

ALTER TABLE ONLY public.organizations FORCE ROW LEVEL SECURITY;

--
-- Name: scheduled_runs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.scheduled_runs (
    id bigint NOT NULL,
    job text NOT NULL,
    slot timestamp with time zone NOT NULL,
    status text DEFAULT 'running'::text NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    worker text,
    stats jsonb DEFAULT '{}'::jsonb NOT NULL,
    error text,
    heartbeat_at timestamp with time zone DEFAULT now() NOT NULL,
    attempts integer DEFAULT 1 NOT NULL,
    CONSTRAINT scheduled_run_finished_iff_done CHECK (((status = 'running'::text) = (finished_at IS NULL))),
    CONSTRAINT scheduled_runs_attempts_check CHECK ((attempts >= 1)),
    CONSTRAINT scheduled_runs_job_check CHECK ((job = ANY (ARRAY['expiry_check'::text, 'reconcile'::text, 'health_check'::text, 'compensation'::text]))),
    CONSTRAINT scheduled_runs_status_check CHECK ((status = ANY (ARRAY['running'::text, 'succeeded'::text, 'failed'::text, 'abandoned'::text])))
);

ALTER TABLE ONLY public.scheduled_runs FORCE ROW LEVEL SECURITY;

--
-- Name: scheduled_runs_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.scheduled_runs ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.scheduled_runs_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE ONLY public.schema_migrations FORCE ROW LEVEL SECURITY;

--
-- Name: sign_in_codes; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.sign_in_codes (
    code_hash text NOT NULL,
    user_id uuid NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    used_at timestamp with time zone,
    CONSTRAINT sign_in_code_expires_after_creation CHECK ((expires_at > created_at)),
    CONSTRAINT sign_in_codes_code_hash_check CHECK ((code_hash ~ '^[0-9a-f]{64}$'::text))
);

ALTER TABLE ONLY public.sign_in_codes FORCE ROW LEVEL SECURITY;

--
-- Name: sync_queue_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.sync_queue ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.sync_queue_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: alert_deliveries alert_deliveries_alert_id_device_token_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert_deliveries
    ADD CONSTRAINT alert_deliveries_alert_id_device_token_key UNIQUE (alert_id, device_token);

--
-- Name: alert_deliveries alert_deliveries_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert_deliveries
    ADD CONSTRAINT alert_deliveries_pkey PRIMARY KEY (id);

--
-- Name: alerts alerts_kind_incident_key_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alerts
    ADD CONSTRAINT alerts_kind_incident_key_key UNIQUE (kind, incident_key);

--
-- Name: alerts alerts_mentor_has_organization; Type: CHECK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE public.alerts
    ADD CONSTRAINT alerts_mentor_has_organization CHECK (((mentor_id IS NULL) OR (organization_id IS NOT NULL))) NOT VALID;

--
-- Name: alerts alerts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alerts
    ADD CONSTRAINT alerts_pkey PRIMARY KEY (id);

--
-- Name: app_users app_users_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.app_users
    ADD CONSTRAINT app_users_pkey PRIMARY KEY (id);

--
-- Name: audit_log audit_log_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id);

--
-- Name: cert_expiry_reminders cert_expiry_reminders_mentor_id_threshold_day_certification_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cert_expiry_reminders
    ADD CONSTRAINT cert_expiry_reminders_mentor_id_threshold_day_certification_key UNIQUE (mentor_id, threshold_day, certification_expiry_date);

--
-- Name: cert_expiry_reminders cert_expiry_reminders_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cert_expiry_reminders
    ADD CONSTRAINT cert_expiry_reminders_pkey PRIMARY KEY (id);

--
-- Name: certifications certifications_mentor_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.certifications
    ADD CONSTRAINT certifications_mentor_id_key UNIQUE (mentor_id);

--
-- Name: certifications certifications_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.certifications
    ADD CONSTRAINT certifications_pkey PRIMARY KEY (id);

--
-- Name: chapter_memberships chapter_memberships_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.chapter_memberships
    ADD CONSTRAINT chapter_memberships_pkey PRIMARY KEY (mentor_id, chapter_id);

--
-- Name: chapters chapters_organization_id_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.chapters
    ADD CONSTRAINT chapters_organization_id_name_key UNIQUE (organization_id, name);

--
-- Name: chapters chapters_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.chapters
    ADD CONSTRAINT chapters_pkey PRIMARY KEY (id);

--
-- Name: chart_hour_classes chart_hour_classes_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.chart_hour_classes
    ADD CONSTRAINT chart_hour_classes_pkey PRIMARY KEY (hour, class_id);

--
-- Name: chart_hours chart_hours_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.chart_hours
    ADD CONSTRAINT chart_hours_pkey PRIMARY KEY (hour);

--
-- Name: circuit_breakers circuit_breakers_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.circuit_breakers
    ADD CONSTRAINT circuit_breakers_pkey PRIMARY KEY (name);

--
-- Name: coordinator_chapters coordinator_chapters_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.coordinator_chapters
    ADD CONSTRAINT coordinator_chapters_pkey PRIMARY KEY (user_id, chapter_id);

--
-- Name: credential_health credential_health_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.credential_health
    ADD CONSTRAINT credential_health_pkey PRIMARY KEY (name);

--
-- Name: dead_letter_queue dead_letter_queue_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.dead_letter_queue
    ADD CONSTRAINT dead_letter_queue_pkey PRIMARY KEY (id);

--
-- Name: dead_letter_queue dead_letter_queue_sync_queue_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.dead_letter_queue
    ADD CONSTRAINT dead_letter_queue_sync_queue_id_key UNIQUE (sync_queue_id);

--
-- Name: device_tokens device_tokens_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.device_tokens
    ADD CONSTRAINT device_tokens_pkey PRIMARY KEY (id);

--
-- Name: device_tokens device_tokens_token_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.device_tokens
    ADD CONSTRAINT device_tokens_token_key UNIQUE (token);

--
-- Name: listing_confirmations listing_confirmations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.listing_confirmations
    ADD CONSTRAINT listing_confirmations_pkey PRIMARY KEY (mentor_id);

--
-- Name: mentor_class_generation mentor_class_generation_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.mentor_class_generation
    ADD CONSTRAINT mentor_class_generation_pkey PRIMARY KEY (only_row);

--
-- Name: mentor_class_members mentor_class_members_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.mentor_class_members
    ADD CONSTRAINT mentor_class_members_pkey PRIMARY KEY (mentor_id) INCLUDE (class_id);

--
-- Name: mentor_classes mentor_classes_organization_id_chapters_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.mentor_classes
    ADD CONSTRAINT mentor_classes_organization_id_chapters_key UNIQUE (organization_id, chapters);

--
-- Name: mentor_classes mentor_classes_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.mentor_classes
    ADD CONSTRAINT mentor_classes_pkey PRIMARY KEY (id);

--
-- Name: operator_notices operator_notices_kind_incident_key_event_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.operator_notices
    ADD CONSTRAINT operator_notices_kind_incident_key_event_key UNIQUE (kind, incident_key, event);

--
-- Name: operator_notices operator_notices_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.operator_notices
    ADD CONSTRAINT operator_notices_pkey PRIMARY KEY (id);

--
-- Name: org_settings org_settings_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.org_settings
    ADD CONSTRAINT org_settings_pkey PRIMARY KEY (organization_id);

--
-- Name: organization_admins organization_admins_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.organization_admins
    ADD CONSTRAINT organization_admins_pkey PRIMARY KEY (user_id, organization_id);

--
-- Name: organizations organizations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.organizations
    ADD CONSTRAINT organizations_pkey PRIMARY KEY (id);

--
-- Name: peer_mentors peer_mentors_dynamics_contact_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.peer_mentors
    ADD CONSTRAINT peer_mentors_dynamics_contact_id_key UNIQUE (dynamics_contact_id);

--
-- Name: peer_mentors peer_mentors_mentor_number_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.peer_mentors
    ADD CONSTRAINT peer_mentors_mentor_number_key UNIQUE (mentor_number);

--
-- Name: peer_mentors peer_mentors_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.peer_mentors
    ADD CONSTRAINT peer_mentors_pkey PRIMARY KEY (id);

--
-- Name: scheduled_runs scheduled_runs_job_slot_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.scheduled_runs
    ADD CONSTRAINT scheduled_runs_job_slot_key UNIQUE (job, slot);

--
-- Name: scheduled_runs scheduled_runs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.scheduled_runs
    ADD CONSTRAINT scheduled_runs_pkey PRIMARY KEY (id);

--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);

--
-- Name: sign_in_codes sign_in_codes_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sign_in_codes
    ADD CONSTRAINT sign_in_codes_pkey PRIMARY KEY (code_hash);

--
-- Name: sync_queue sync_queue_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sync_queue
    ADD CONSTRAINT sync_queue_pkey PRIMARY KEY (id);

--
-- Name: alert_deliveries_due_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX alert_deliveries_due_idx ON public.alert_deliveries USING btree (next_attempt_at, alert_id, id) WHERE (status = 'pending'::text);

--
-- Name: alert_deliveries_lease_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX alert_deliveries_lease_idx ON public.alert_deliveries USING btree (locked_until) WHERE (status = 'in_progress'::text);

--
-- Name: alerts_mentor_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX alerts_mentor_idx ON public.alerts USING btree (mentor_id, id) WHERE (mentor_id IS NOT NULL);

--
-- Name: alerts_operators_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX alerts_operators_idx ON public.alerts USING btree (id) WHERE (organization_id IS NULL);

--
-- Name: audit_log_event_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX audit_log_event_idx ON public.audit_log USING btree (event_type, occurred_at);

--
-- Name: audit_log_mentor_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX audit_log_mentor_idx ON public.audit_log USING btree (mentor_id, id) WHERE (mentor_id IS NOT NULL);

--
-- Name: certifications_expires_on_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX certifications_expires_on_idx ON public.certifications USING btree (expires_on);

--
-- Name: chapter_memberships_chapter_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX chapter_memberships_chapter_idx ON public.chapter_memberships USING btree (chapter_id, mentor_id);

--
-- Name: chapters_organization_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX chapters_organization_idx ON public.chapters USING btree (organization_id);

--
-- Name: coordinator_chapters_chapter_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX coordinator_chapters_chapter_idx ON public.coordinator_chapters USING btree (chapter_id);

--
-- Name: dead_letter_mentor_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX dead_letter_mentor_idx ON public.dead_letter_queue USING btree (mentor_id);

--
-- Name: dead_letter_open_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX dead_letter_open_idx ON public.dead_letter_queue USING btree (created_at) WHERE (status = 'open'::text);

--
-- Name: dead_letter_open_mentor_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX dead_letter_open_mentor_idx ON public.dead_letter_queue USING btree (mentor_id) WHERE (status = 'open'::text);

--
-- Name: device_tokens_user_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX device_tokens_user_idx ON public.device_tokens USING btree (user_id);

--
-- Name: listing_confirmations_differs_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX listing_confirmations_differs_idx ON public.listing_confirmations USING btree (mentor_id) WHERE differs;

--
-- Name: listing_confirmations_unconfirmed_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX listing_confirmations_unconfirmed_idx ON public.listing_confirmations USING btree (mentor_id) WHERE (listed IS NULL);

--
-- Name: operator_notices_due_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX operator_notices_due_idx ON public.operator_notices USING btree (next_attempt_at, id) WHERE (status <> 'delivered'::text);

--
-- Name: organization_admins_org_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX organization_admins_org_idx ON public.organization_admins USING btree (organization_id);

--
-- Name: peer_mentors_name_trgm_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX peer_mentors_name_trgm_idx ON public.peer_mentors USING gin (full_name extensions.gin_trgm_ops);

--
-- Name: peer_mentors_organization_id_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX peer_mentors_organization_id_idx ON public.peer_mentors USING btree (organization_id, id);

--
-- Name: peer_mentors_status_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX peer_mentors_status_idx ON public.peer_mentors USING btree (status, id);

--
-- Name: peer_mentors_unlinked_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX peer_mentors_unlinked_idx ON public.peer_mentors USING btree (id) WHERE (dynamics_contact_id IS NULL);

--
-- Name: scheduled_runs_job_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX scheduled_runs_job_idx ON public.scheduled_runs USING btree (job, slot DESC);

--
-- Name: scheduled_runs_running_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX scheduled_runs_running_idx ON public.scheduled_runs USING btree (heartbeat_at) WHERE (status = 'running'::text);

--
-- Name: sign_in_codes_expires_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX sign_in_codes_expires_idx ON public.sign_in_codes USING btree (expires_at);

--
-- Name: sync_queue_claim_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX sync_queue_claim_idx ON public.sync_queue USING btree (priority DESC, next_attempt_at, id) WHERE (status = 'pending'::text);

--
-- Name: sync_queue_lease_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX sync_queue_lease_idx ON public.sync_queue USING btree (locked_until) WHERE (status = 'in_progress'::text);

--
-- Name: sync_queue_mentor_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX sync_queue_mentor_idx ON public.sync_queue USING btree (mentor_id, id DESC);

--
-- Name: sync_queue_one_pending_per_mentor; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX sync_queue_one_pending_per_mentor ON public.sync_queue USING btree (mentor_id) WHERE (status = 'pending'::text);

--
-- Name: sync_queue_one_running_per_mentor; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX sync_queue_one_running_per_mentor ON public.sync_queue USING btree (mentor_id) WHERE (status = 'in_progress'::text);

--
-- Name: sync_queue_status_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX sync_queue_status_idx ON public.sync_queue USING btree (status);

--
-- Name: alerts alerts_operator_notice; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER alerts_operator_notice AFTER INSERT ON public.alerts FOR EACH ROW WHEN (((new.mentor_id IS NULL) AND (new.kind <> 'hold_recovered'::text))) EXECUTE FUNCTION public.operator_notice_for_alert();

--
-- Name: app_users app_users_organisation_move; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER app_users_organisation_move BEFORE UPDATE OF organization_id ON public.app_users FOR EACH ROW WHEN ((old.organization_id IS DISTINCT FROM new.organization_id)) EXECUTE FUNCTION public.refuse_organisation_move();

--
-- Name: audit_log audit_log_append_only; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER audit_log_append_only BEFORE DELETE OR UPDATE ON public.audit_log FOR EACH ROW EXECUTE FUNCTION public.refuse_delete();

--
-- Name: audit_log audit_log_late_event; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER audit_log_late_event AFTER INSERT ON public.audit_log FOR EACH ROW WHEN (((new.mentor_id IS NOT NULL) AND (new.occurred_at < date_trunc('hour'::text, clock_timestamp(), 'UTC'::text)))) EXECUTE FUNCTION public.chart_note_late_event();

--
-- Name: audit_log audit_log_no_truncate; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON public.audit_log FOR EACH STATEMENT EXECUTE FUNCTION public.refuse_delete();

--
-- Name: certifications certifications_renewal_history; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER certifications_renewal_history BEFORE UPDATE OF expires_on ON public.certifications FOR EACH ROW WHEN ((new.expires_on > old.expires_on)) EXECUTE FUNCTION public.certification_renewal_history();

--
-- Name: certifications certifications_renewal_restore; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER certifications_renewal_restore AFTER UPDATE OF expires_on ON public.certifications FOR EACH ROW WHEN ((new.expires_on > old.expires_on)) EXECUTE FUNCTION public.certification_renewal_restore();

--
-- Name: chapter_memberships chapter_memberships_class_added; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER chapter_memberships_class_added AFTER INSERT ON public.chapter_memberships REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION public.reclass_changed_mentors();

--
-- Name: chapter_memberships chapter_memberships_class_changed; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER chapter_memberships_class_changed AFTER UPDATE ON public.chapter_memberships REFERENCING OLD TABLE AS removed NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION public.reclass_changed_mentors();

--
-- Name: chapter_memberships chapter_memberships_class_removed; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER chapter_memberships_class_removed AFTER DELETE ON public.chapter_memberships REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION public.reclass_changed_mentors();

--
-- Name: chapter_memberships chapter_memberships_one_organisation; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER chapter_memberships_one_organisation BEFORE INSERT OR UPDATE ON public.chapter_memberships FOR EACH ROW EXECUTE FUNCTION public.refuse_cross_organisation_row();

--
-- Name: chapters chapters_organisation_move; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER chapters_organisation_move BEFORE UPDATE OF organization_id ON public.chapters FOR EACH ROW WHEN ((old.organization_id IS DISTINCT FROM new.organization_id)) EXECUTE FUNCTION public.refuse_organisation_move();

--
-- Name: circuit_breakers circuit_breakers_operator_notice; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER circuit_breakers_operator_notice AFTER UPDATE ON public.circuit_breakers FOR EACH ROW EXECUTE FUNCTION public.operator_notice_breaker_closed();

--
-- Name: coordinator_chapters coordinator_chapters_one_organisation; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER coordinator_chapters_one_organisation BEFORE INSERT OR UPDATE ON public.coordinator_chapters FOR EACH ROW EXECUTE FUNCTION public.refuse_cross_organisation_row();

--
-- Name: credential_health credential_health_operator_notice; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER credential_health_operator_notice AFTER UPDATE ON public.credential_health FOR EACH ROW EXECUTE FUNCTION public.operator_notice_credentials_ok();

--
-- Name: dead_letter_queue dead_letter_queue_no_delete; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER dead_letter_queue_no_delete BEFORE DELETE ON public.dead_letter_queue FOR EACH ROW EXECUTE FUNCTION public.refuse_delete();

--
-- Name: dead_letter_queue dead_letter_queue_no_truncate; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER dead_letter_queue_no_truncate BEFORE TRUNCATE ON public.dead_letter_queue FOR EACH STATEMENT EXECUTE FUNCTION public.refuse_delete();

--
-- Name: peer_mentors peer_mentors_add_listing; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER peer_mentors_add_listing AFTER INSERT ON public.peer_mentors REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION public.add_listing_row();

--
-- Name: peer_mentors peer_mentors_class_added; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER peer_mentors_class_added AFTER INSERT ON public.peer_mentors REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION public.reclass_changed_mentors();

--
-- Name: peer_mentors peer_mentors_class_moved; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER peer_mentors_class_moved AFTER UPDATE OF organization_id ON public.peer_mentors FOR EACH ROW WHEN ((old.organization_id IS DISTINCT FROM new.organization_id)) EXECUTE FUNCTION public.reclass_changed_mentors();

--
-- Name: peer_mentors peer_mentors_class_removed; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER peer_mentors_class_removed AFTER DELETE ON public.peer_mentors REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION public.reclass_changed_mentors();

--
-- Name: peer_mentors peer_mentors_linked; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER peer_mentors_linked AFTER UPDATE OF dynamics_contact_id ON public.peer_mentors FOR EACH ROW WHEN (((new.dynamics_contact_id IS NOT NULL) AND (old.dynamics_contact_id IS DISTINCT FROM new.dynamics_contact_id))) EXECUTE FUNCTION public.sync_queue_link_contact();

--
-- Name: peer_mentors peer_mentors_organisation_move; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER peer_mentors_organisation_move BEFORE UPDATE OF organization_id ON public.peer_mentors FOR EACH ROW WHEN ((old.organization_id IS DISTINCT FROM new.organization_id)) EXECUTE FUNCTION public.refuse_organisation_move();

--
-- Name: peer_mentors peer_mentors_status_outbox; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER peer_mentors_status_outbox AFTER UPDATE ON public.peer_mentors REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION public.peer_mentor_status_outbox();

--
-- Name: peer_mentors peer_mentors_status_stamp; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER peer_mentors_status_stamp BEFORE UPDATE OF status ON public.peer_mentors FOR EACH ROW WHEN ((old.status IS DISTINCT FROM new.status)) EXECUTE FUNCTION public.peer_mentor_status_stamp();

--
-- Name: peer_mentors peer_mentors_track_listing; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER peer_mentors_track_listing AFTER UPDATE ON public.peer_mentors REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION public.track_listing_should();

--
-- Name: peer_mentors peer_mentors_z_reason_guard; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER peer_mentors_z_reason_guard BEFORE UPDATE ON public.peer_mentors FOR EACH ROW EXECUTE FUNCTION public.peer_mentor_reason_guard();

--
-- Name: sync_queue sync_queue_confirm_listing; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER sync_queue_confirm_listing AFTER UPDATE ON public.sync_queue REFERENCING NEW TABLE AS settled FOR EACH STATEMENT EXECUTE FUNCTION public.record_synced_listing();

--
-- Name: alert_deliveries alert_deliveries_alert_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert_deliveries
    ADD CONSTRAINT alert_deliveries_alert_id_fkey FOREIGN KEY (alert_id) REFERENCES public.alerts(id);

--
-- Name: app_users app_users_organization_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.app_users
    ADD CONSTRAINT app_users_organization_id_fkey FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;

--
-- Name: cert_expiry_reminders cert_expiry_reminders_certification_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cert_expiry_reminders
    ADD CONSTRAINT cert_expiry_reminders_certification_id_fkey FOREIGN KEY (certification_id) REFERENCES public.certifications(id) ON DELETE SET NULL;

--
-- Name: cert_expiry_reminders cert_expiry_reminders_mentor_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cert_expiry_reminders
    ADD CONSTRAINT cert_expiry_reminders_mentor_id_fkey FOREIGN KEY (mentor_id) REFERENCES public.peer_mentors(id) ON DELETE CASCADE;

--
-- Name: certifications certifications_mentor_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.certifications
    ADD CONSTRAINT certifications_mentor_id_fkey FOREIGN KEY (mentor_id) REFERENCES public.peer_mentors(id) ON DELETE CASCADE;

--
-- Name: chapter_memberships chapter_memberships_chapter_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.chapter_memberships
    ADD CONSTRAINT chapter_memberships_chapter_id_fkey FOREIGN KEY (chapter_id) REFERENCES public.chapters(id) ON DELETE CASCADE;

--
-- Name: chapter_memberships chapter_memberships_mentor_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.chapter_memberships
    ADD CONSTRAINT chapter_memberships_mentor_id_fkey FOREIGN KEY (mentor_id) REFERENCES public.peer_mentors(id) ON DELETE CASCADE;

--
-- Name: chapters chapters_organization_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.chapters
    ADD CONSTRAINT chapters_organization_id_fkey FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;

--
-- Name: chart_hour_classes chart_hour_classes_class_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.chart_hour_classes
    ADD CONSTRAINT chart_hour_classes_class_id_fkey FOREIGN KEY (class_id) REFERENCES public.mentor_classes(id);

--
-- Name: coordinator_chapters coordinator_chapters_chapter_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.coordinator_chapters
    ADD CONSTRAINT coordinator_chapters_chapter_id_fkey FOREIGN KEY (chapter_id) REFERENCES public.chapters(id) ON DELETE CASCADE;

--
-- Name: coordinator_chapters coordinator_chapters_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.coordinator_chapters
    ADD CONSTRAINT coordinator_chapters_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.app_users(id) ON DELETE CASCADE;

--
-- Name: dead_letter_queue dead_letter_queue_requeued_as_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.dead_letter_queue
    ADD CONSTRAINT dead_letter_queue_requeued_as_fkey FOREIGN KEY (requeued_as) REFERENCES public.sync_queue(id);

--
-- Name: dead_letter_queue dead_letter_queue_sync_queue_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.dead_letter_queue
    ADD CONSTRAINT dead_letter_queue_sync_queue_id_fkey FOREIGN KEY (sync_queue_id) REFERENCES public.sync_queue(id);

--
-- Name: device_tokens device_tokens_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.device_tokens
    ADD CONSTRAINT device_tokens_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.app_users(id) ON DELETE CASCADE;

--
-- Name: listing_confirmations listing_confirmations_mentor_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.listing_confirmations
    ADD CONSTRAINT listing_confirmations_mentor_id_fkey FOREIGN KEY (mentor_id) REFERENCES public.peer_mentors(id) ON DELETE CASCADE;

--
-- Name: mentor_class_members mentor_class_members_class_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.mentor_class_members
    ADD CONSTRAINT mentor_class_members_class_id_fkey FOREIGN KEY (class_id) REFERENCES public.mentor_classes(id);

--
-- Name: operator_notices operator_notices_alert_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.operator_notices
    ADD CONSTRAINT operator_notices_alert_id_fkey FOREIGN KEY (alert_id) REFERENCES public.alerts(id);

--
-- Name: org_settings org_settings_organization_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.org_settings
    ADD CONSTRAINT org_settings_organization_id_fkey FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;

--
-- Name: organization_admins organization_admins_organization_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.organization_admins
    ADD CONSTRAINT organization_admins_organization_id_fkey FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;

--
-- Name: organization_admins organization_admins_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.organization_admins
    ADD CONSTRAINT organization_admins_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.app_users(id) ON DELETE CASCADE;

--
-- Name: peer_mentors peer_mentors_organization_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.peer_mentors
    ADD CONSTRAINT peer_mentors_organization_id_fkey FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE RESTRICT;

--
-- Name: sign_in_codes sign_in_codes_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sign_in_codes
    ADD CONSTRAINT sign_in_codes_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.app_users(id) ON DELETE CASCADE;

--
-- Name: sync_queue sync_queue_mentor_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sync_queue
    ADD CONSTRAINT sync_queue_mentor_id_fkey FOREIGN KEY (mentor_id) REFERENCES public.peer_mentors(id) ON DELETE RESTRICT;

--
-- Name: sync_queue sync_queue_superseded_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sync_queue
    ADD CONSTRAINT sync_queue_superseded_by_fkey FOREIGN KEY (superseded_by) REFERENCES public.sync_queue(id) DEFERRABLE INITIALLY DEFERRED;

--
-- Name: alert_deliveries; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.alert_deliveries ENABLE ROW LEVEL SECURITY;

--
-- Name: alerts; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.alerts ENABLE ROW LEVEL SECURITY;

--
-- Name: app_users; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.app_users ENABLE ROW LEVEL SECURITY;

--
-- Name: audit_log; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.audit_log ENABLE ROW LEVEL SECURITY;

--
-- Name: cert_expiry_reminders; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.cert_expiry_reminders ENABLE ROW LEVEL SECURITY;

--
-- Name: certifications; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.certifications ENABLE ROW LEVEL SECURITY;

--
-- Name: chapter_memberships; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.chapter_memberships ENABLE ROW LEVEL SECURITY;

--
-- Name: chapters; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.chapters ENABLE ROW LEVEL SECURITY;

--
-- Name: chart_hour_classes; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.chart_hour_classes ENABLE ROW LEVEL SECURITY;

--
-- Name: chart_hours; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.chart_hours ENABLE ROW LEVEL SECURITY;

--
-- Name: circuit_breakers; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.circuit_breakers ENABLE ROW LEVEL SECURITY;

--
-- Name: coordinator_chapters; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.coordinator_chapters ENABLE ROW LEVEL SECURITY;

--
-- Name: credential_health; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.credential_health ENABLE ROW LEVEL SECURITY;

--
-- Name: dead_letter_queue; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.dead_letter_queue ENABLE ROW LEVEL SECURITY;

--
-- Name: device_tokens; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.device_tokens ENABLE ROW LEVEL SECURITY;

--
-- Name: alerts in_scope; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY in_scope ON public.alerts FOR SELECT TO authenticated USING (((organization_id IS NOT NULL) AND ((EXISTS ( SELECT 1
   FROM public.peer_mentors p
  WHERE (p.id = alerts.mentor_id))) OR ((mentor_id IS NULL) AND (organization_id IN ( SELECT public.auth_admin_orgs() AS auth_admin_orgs))))));

--
-- Name: chapter_memberships in_scope; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY in_scope ON public.chapter_memberships FOR SELECT TO authenticated USING ((chapter_id IN ( SELECT public.auth_visible_chapters() AS auth_visible_chapters)));

--
-- Name: chapters in_scope; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY in_scope ON public.chapters FOR SELECT TO authenticated USING ((id IN ( SELECT public.auth_visible_chapters() AS auth_visible_chapters)));

--
-- Name: coordinator_chapters in_scope; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY in_scope ON public.coordinator_chapters FOR SELECT TO authenticated USING ((chapter_id IN ( SELECT public.auth_visible_chapters() AS auth_visible_chapters)));

--
-- Name: peer_mentors in_scope; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY in_scope ON public.peer_mentors FOR SELECT TO authenticated USING (((organization_id IN ( SELECT public.auth_admin_orgs() AS auth_admin_orgs)) OR ((organization_id = ( SELECT public.auth_user_org() AS auth_user_org)) AND (EXISTS ( SELECT 1
   FROM public.chapter_memberships cm
  WHERE ((cm.mentor_id = peer_mentors.id) AND (cm.chapter_id IN ( SELECT public.auth_coordinated_chapters() AS auth_coordinated_chapters))))))));

--
-- Name: peer_mentors in_scope_status; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY in_scope_status ON public.peer_mentors FOR UPDATE TO authenticated USING (public.can_see_mentor(id)) WITH CHECK (public.can_see_mentor(id));

--
-- Name: listing_confirmations; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.listing_confirmations ENABLE ROW LEVEL SECURITY;

--
-- Name: org_settings member_reads; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY member_reads ON public.org_settings FOR SELECT TO authenticated USING (((organization_id = ( SELECT public.auth_user_org() AS auth_user_org)) OR (organization_id IN ( SELECT public.auth_admin_orgs() AS auth_admin_orgs))));

--
-- Name: organizations member_reads; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY member_reads ON public.organizations FOR SELECT TO authenticated USING (((id = ( SELECT public.auth_user_org() AS auth_user_org)) OR (id IN ( SELECT public.auth_admin_orgs() AS auth_admin_orgs))));

--
-- Name: mentor_class_generation; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.mentor_class_generation ENABLE ROW LEVEL SECURITY;

--
-- Name: mentor_class_members; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.mentor_class_members ENABLE ROW LEVEL SECURITY;

--
-- Name: mentor_classes; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.mentor_classes ENABLE ROW LEVEL SECURITY;

--
-- Name: audit_log mentor_in_scope; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY mentor_in_scope ON public.audit_log FOR SELECT TO authenticated USING ((EXISTS ( SELECT 1
   FROM public.peer_mentors p
  WHERE (p.id = audit_log.mentor_id))));

--
-- Name: cert_expiry_reminders mentor_in_scope; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY mentor_in_scope ON public.cert_expiry_reminders FOR SELECT TO authenticated USING ((EXISTS ( SELECT 1
   FROM public.peer_mentors p
  WHERE (p.id = cert_expiry_reminders.mentor_id))));

--
-- Name: certifications mentor_in_scope; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY mentor_in_scope ON public.certifications FOR SELECT TO authenticated USING ((EXISTS ( SELECT 1
   FROM public.peer_mentors p
  WHERE (p.id = certifications.mentor_id))));

--
-- Name: dead_letter_queue mentor_in_scope; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY mentor_in_scope ON public.dead_letter_queue FOR SELECT TO authenticated USING ((EXISTS ( SELECT 1
   FROM public.peer_mentors p
  WHERE (p.id = dead_letter_queue.mentor_id))));

--
-- Name: listing_confirmations mentor_in_scope; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY mentor_in_scope ON public.listing_confirmations FOR SELECT TO authenticated USING ((EXISTS ( SELECT 1
   FROM public.peer_mentors p
  WHERE (p.id = listing_confirmations.mentor_id))));

--
-- Name: sync_queue mentor_in_scope; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY mentor_in_scope ON public.sync_queue FOR SELECT TO authenticated USING ((EXISTS ( SELECT 1
   FROM public.peer_mentors p
  WHERE (p.id = sync_queue.mentor_id))));

--
-- Name: operator_notices; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.operator_notices ENABLE ROW LEVEL SECURITY;

--
-- Name: org_settings; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.org_settings ENABLE ROW LEVEL SECURITY;

--
-- Name: organization_admins; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.organization_admins ENABLE ROW LEVEL SECURITY;

--
-- Name: organizations; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.organizations ENABLE ROW LEVEL SECURITY;

--
-- Name: alert_deliveries own; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY own ON public.alert_deliveries FOR SELECT TO authenticated USING ((user_id = ( SELECT auth.uid() AS uid)));

--
-- Name: device_tokens own; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY own ON public.device_tokens FOR SELECT TO authenticated USING ((user_id = ( SELECT auth.uid() AS uid)));

--
-- Name: peer_mentors; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.peer_mentors ENABLE ROW LEVEL SECURITY;

--
-- Name: scheduled_runs; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.scheduled_runs ENABLE ROW LEVEL SECURITY;

--
-- Name: schema_migrations; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.schema_migrations ENABLE ROW LEVEL SECURITY;

--
-- Name: app_users self_or_admin; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY self_or_admin ON public.app_users FOR SELECT TO authenticated USING (((id = ( SELECT auth.uid() AS uid)) OR (organization_id IN ( SELECT public.auth_admin_orgs() AS auth_admin_orgs))));

--
-- Name: organization_admins self_or_admin; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY self_or_admin ON public.organization_admins FOR SELECT TO authenticated USING (((user_id = ( SELECT auth.uid() AS uid)) OR (organization_id IN ( SELECT public.auth_admin_orgs() AS auth_admin_orgs))));

--
-- Name: alert_deliveries service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.alert_deliveries TO service_role USING (true) WITH CHECK (true);

--
-- Name: alerts service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.alerts TO service_role USING (true) WITH CHECK (true);

--
-- Name: app_users service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.app_users TO service_role USING (true) WITH CHECK (true);

--
-- Name: audit_log service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.audit_log TO service_role USING (true) WITH CHECK (true);

--
-- Name: cert_expiry_reminders service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.cert_expiry_reminders TO service_role USING (true) WITH CHECK (true);

--
-- Name: certifications service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.certifications TO service_role USING (true) WITH CHECK (true);

--
-- Name: chapter_memberships service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.chapter_memberships TO service_role USING (true) WITH CHECK (true);

--
-- Name: chapters service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.chapters TO service_role USING (true) WITH CHECK (true);

--
-- Name: chart_hour_classes service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.chart_hour_classes TO service_role USING (true) WITH CHECK (true);

--
-- Name: chart_hours service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.chart_hours TO service_role USING (true) WITH CHECK (true);

--
-- Name: circuit_breakers service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.circuit_breakers TO service_role USING (true) WITH CHECK (true);

--
-- Name: coordinator_chapters service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.coordinator_chapters TO service_role USING (true) WITH CHECK (true);

--
-- Name: credential_health service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.credential_health TO service_role USING (true) WITH CHECK (true);

--
-- Name: dead_letter_queue service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.dead_letter_queue TO service_role USING (true) WITH CHECK (true);

--
-- Name: device_tokens service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.device_tokens TO service_role USING (true) WITH CHECK (true);

--
-- Name: listing_confirmations service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.listing_confirmations TO service_role USING (true) WITH CHECK (true);

--
-- Name: mentor_class_generation service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.mentor_class_generation TO service_role USING (true) WITH CHECK (true);

--
-- Name: mentor_class_members service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.mentor_class_members TO service_role USING (true) WITH CHECK (true);

--
-- Name: mentor_classes service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.mentor_classes TO service_role USING (true) WITH CHECK (true);

--
-- Name: operator_notices service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.operator_notices TO service_role USING (true) WITH CHECK (true);

--
-- Name: org_settings service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.org_settings TO service_role USING (true) WITH CHECK (true);

--
-- Name: organization_admins service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.organization_admins TO service_role USING (true) WITH CHECK (true);

--
-- Name: organizations service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.organizations TO service_role USING (true) WITH CHECK (true);

--
-- Name: peer_mentors service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.peer_mentors TO service_role USING (true) WITH CHECK (true);

--
-- Name: scheduled_runs service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.scheduled_runs TO service_role USING (true) WITH CHECK (true);

--
-- Name: schema_migrations service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.schema_migrations TO service_role USING (true) WITH CHECK (true);

--
-- Name: sign_in_codes service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.sign_in_codes TO service_role USING (true) WITH CHECK (true);

--
-- Name: sync_queue service_access; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY service_access ON public.sync_queue TO service_role USING (true) WITH CHECK (true);

--
-- Name: sign_in_codes; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.sign_in_codes ENABLE ROW LEVEL SECURITY;

--
-- Name: circuit_breakers staff_reads; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY staff_reads ON public.circuit_breakers FOR SELECT TO authenticated USING (( SELECT public.auth_is_staff() AS auth_is_staff));

--
-- Name: credential_health staff_reads; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY staff_reads ON public.credential_health FOR SELECT TO authenticated USING (( SELECT public.auth_is_staff() AS auth_is_staff));

--
-- Name: scheduled_runs staff_reads; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY staff_reads ON public.scheduled_runs FOR SELECT TO authenticated USING (( SELECT public.auth_is_staff() AS auth_is_staff));

--
-- Name: sync_queue; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.sync_queue ENABLE ROW LEVEL SECURITY;

--
-- Name: SCHEMA auth; Type: ACL; Schema: -; Owner: -
--

GRANT USAGE ON SCHEMA auth TO anon;
GRANT USAGE ON SCHEMA auth TO authenticated;
GRANT USAGE ON SCHEMA auth TO service_role;

--
-- Name: FUNCTION add_listing_row(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.add_listing_row() FROM PUBLIC;

--
-- Name: FUNCTION api_force_sync(mentor uuid); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.api_force_sync(mentor uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.api_force_sync(mentor uuid) TO authenticated;
GRANT ALL ON FUNCTION public.api_force_sync(mentor uuid) TO service_role;

--
-- Name: FUNCTION api_queue_overview(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.api_queue_overview() FROM PUBLIC;
GRANT ALL ON FUNCTION public.api_queue_overview() TO authenticated;
GRANT ALL ON FUNCTION public.api_queue_overview() TO service_role;

--
-- Name: FUNCTION api_requeue_dead_letter(letter bigint); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.api_requeue_dead_letter(letter bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION public.api_requeue_dead_letter(letter bigint) TO authenticated;
GRANT ALL ON FUNCTION public.api_requeue_dead_letter(letter bigint) TO service_role;

--
-- Name: FUNCTION api_require_mentor(mentor uuid); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.api_require_mentor(mentor uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.api_require_mentor(mentor uuid) TO authenticated;
GRANT ALL ON FUNCTION public.api_require_mentor(mentor uuid) TO service_role;

--
-- Name: FUNCTION api_resolve_dead_letter(letter bigint, note text); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.api_resolve_dead_letter(letter bigint, note text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.api_resolve_dead_letter(letter bigint, note text) TO authenticated;
GRANT ALL ON FUNCTION public.api_resolve_dead_letter(letter bigint, note text) TO service_role;

--
-- Name: FUNCTION audit_actor(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.audit_actor() FROM PUBLIC;
GRANT ALL ON FUNCTION public.audit_actor() TO authenticated;
GRANT ALL ON FUNCTION public.audit_actor() TO service_role;

--
-- Name: FUNCTION auth_admin_orgs(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.auth_admin_orgs() FROM PUBLIC;
GRANT ALL ON FUNCTION public.auth_admin_orgs() TO authenticated;
GRANT ALL ON FUNCTION public.auth_admin_orgs() TO service_role;

--
-- Name: FUNCTION auth_coordinated_chapters(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.auth_coordinated_chapters() FROM PUBLIC;
GRANT ALL ON FUNCTION public.auth_coordinated_chapters() TO authenticated;
GRANT ALL ON FUNCTION public.auth_coordinated_chapters() TO service_role;

--
-- Name: FUNCTION auth_is_api_caller(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.auth_is_api_caller() FROM PUBLIC;
GRANT ALL ON FUNCTION public.auth_is_api_caller() TO authenticated;
GRANT ALL ON FUNCTION public.auth_is_api_caller() TO service_role;

--
-- Name: FUNCTION auth_is_staff(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.auth_is_staff() FROM PUBLIC;
GRANT ALL ON FUNCTION public.auth_is_staff() TO authenticated;
GRANT ALL ON FUNCTION public.auth_is_staff() TO service_role;

--
-- Name: FUNCTION auth_mentors_named(pattern text, after uuid, lim integer, only_status text, in_chapter uuid); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.auth_mentors_named(pattern text, after uuid, lim integer, only_status text, in_chapter uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.auth_mentors_named(pattern text, after uuid, lim integer, only_status text, in_chapter uuid) TO authenticated;
GRANT ALL ON FUNCTION public.auth_mentors_named(pattern text, after uuid, lim integer, only_status text, in_chapter uuid) TO service_role;

--
-- Name: FUNCTION auth_mentors_of_status(only_status text, after uuid, lim integer, budget integer); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.auth_mentors_of_status(only_status text, after uuid, lim integer, budget integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.auth_mentors_of_status(only_status text, after uuid, lim integer, budget integer) TO authenticated;
GRANT ALL ON FUNCTION public.auth_mentors_of_status(only_status text, after uuid, lim integer, budget integer) TO service_role;

--
-- Name: FUNCTION auth_user_org(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.auth_user_org() FROM PUBLIC;
GRANT ALL ON FUNCTION public.auth_user_org() TO authenticated;
GRANT ALL ON FUNCTION public.auth_user_org() TO service_role;

--
-- Name: FUNCTION auth_visible_chapters(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.auth_visible_chapters() FROM PUBLIC;
GRANT ALL ON FUNCTION public.auth_visible_chapters() TO authenticated;
GRANT ALL ON FUNCTION public.auth_visible_chapters() TO service_role;

--
-- Name: FUNCTION auth_visible_classes(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.auth_visible_classes() FROM PUBLIC;
GRANT ALL ON FUNCTION public.auth_visible_classes() TO authenticated;
GRANT ALL ON FUNCTION public.auth_visible_classes() TO service_role;

--
-- Name: FUNCTION auth_visible_mentors(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.auth_visible_mentors() FROM PUBLIC;
GRANT ALL ON FUNCTION public.auth_visible_mentors() TO authenticated;
GRANT ALL ON FUNCTION public.auth_visible_mentors() TO service_role;

--
-- Name: FUNCTION can_see_mentor(mentor uuid); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.can_see_mentor(mentor uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.can_see_mentor(mentor uuid) TO authenticated;
GRANT ALL ON FUNCTION public.can_see_mentor(mentor uuid) TO service_role;

--
-- Name: FUNCTION chart_events(since timestamp with time zone, upto timestamp with time zone); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.chart_events(since timestamp with time zone, upto timestamp with time zone) FROM PUBLIC;

--
-- Name: FUNCTION chart_grace(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.chart_grace() FROM PUBLIC;

--
-- Name: FUNCTION chart_note_late_event(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.chart_note_late_event() FROM PUBLIC;

--
-- Name: FUNCTION chart_roll_up(since timestamp with time zone); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.chart_roll_up(since timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION public.chart_roll_up(since timestamp with time zone) TO service_role;

--
-- Name: FUNCTION dashboard_counts(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.dashboard_counts() FROM PUBLIC;
GRANT ALL ON FUNCTION public.dashboard_counts() TO authenticated;
GRANT ALL ON FUNCTION public.dashboard_counts() TO service_role;

--
-- Name: FUNCTION dashboard_hourly(upto timestamp with time zone, hours integer); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.dashboard_hourly(upto timestamp with time zone, hours integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.dashboard_hourly(upto timestamp with time zone, hours integer) TO authenticated;
GRANT ALL ON FUNCTION public.dashboard_hourly(upto timestamp with time zone, hours integer) TO service_role;

--
-- Name: FUNCTION enqueue_sync(mentors uuid[], src text, prio integer, who text); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.enqueue_sync(mentors uuid[], src text, prio integer, who text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.enqueue_sync(mentors uuid[], src text, prio integer, who text) TO service_role;

--
-- Name: FUNCTION expiry_chunk_bounds(size integer); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.expiry_chunk_bounds(size integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.expiry_chunk_bounds(size integer) TO service_role;

--
-- Name: FUNCTION expiry_duplicates(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.expiry_duplicates() FROM PUBLIC;
GRANT ALL ON FUNCTION public.expiry_duplicates() TO service_role;

--
-- Name: FUNCTION expiry_pause_expired(today date, who text, at timestamp with time zone); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.expiry_pause_expired(today date, who text, at timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION public.expiry_pause_expired(today date, who text, at timestamp with time zone) TO service_role;

--
-- Name: FUNCTION expiry_pause_expired(today date, who text, at timestamp with time zone, lo uuid, hi uuid); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.expiry_pause_expired(today date, who text, at timestamp with time zone, lo uuid, hi uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.expiry_pause_expired(today date, who text, at timestamp with time zone, lo uuid, hi uuid) TO service_role;

--
-- Name: FUNCTION expiry_send_reminders(today date, who text, at timestamp with time zone); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.expiry_send_reminders(today date, who text, at timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION public.expiry_send_reminders(today date, who text, at timestamp with time zone) TO service_role;

--
-- Name: FUNCTION expiry_send_reminders(today date, who text, at timestamp with time zone, lo uuid, hi uuid); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.expiry_send_reminders(today date, who text, at timestamp with time zone, lo uuid, hi uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.expiry_send_reminders(today date, who text, at timestamp with time zone, lo uuid, hi uuid) TO service_role;

--
-- Name: FUNCTION operator_notice_breaker_closed(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.operator_notice_breaker_closed() FROM PUBLIC;

--
-- Name: FUNCTION operator_notice_credentials_ok(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.operator_notice_credentials_ok() FROM PUBLIC;

--
-- Name: FUNCTION operator_notice_for_alert(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.operator_notice_for_alert() FROM PUBLIC;

--
-- Name: FUNCTION operator_notice_recovered(notice_kind text, notice_key text, at timestamp with time zone, notice_details jsonb); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.operator_notice_recovered(notice_kind text, notice_key text, at timestamp with time zone, notice_details jsonb) FROM PUBLIC;

--
-- Name: FUNCTION peer_mentor_reason_guard(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.peer_mentor_reason_guard() FROM PUBLIC;

--
-- Name: FUNCTION peer_mentor_status_outbox(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.peer_mentor_status_outbox() FROM PUBLIC;

--
-- Name: FUNCTION peer_mentor_status_stamp(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.peer_mentor_status_stamp() FROM PUBLIC;

--
-- Name: FUNCTION raise_compensation_alert(at timestamp with time zone); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.raise_compensation_alert(at timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION public.raise_compensation_alert(at timestamp with time zone) TO service_role;

--
-- Name: FUNCTION raise_mentor_alerts(alert_kind text, alert_at timestamp with time zone, alert_mentors uuid[], alert_keys text[], alert_payloads jsonb[], alert_details jsonb[]); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.raise_mentor_alerts(alert_kind text, alert_at timestamp with time zone, alert_mentors uuid[], alert_keys text[], alert_payloads jsonb[], alert_details jsonb[]) FROM PUBLIC;
GRANT ALL ON FUNCTION public.raise_mentor_alerts(alert_kind text, alert_at timestamp with time zone, alert_mentors uuid[], alert_keys text[], alert_payloads jsonb[], alert_details jsonb[]) TO service_role;

--
-- Name: FUNCTION reclass_changed_mentors(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.reclass_changed_mentors() FROM PUBLIC;

--
-- Name: FUNCTION reclass_mentors(touched uuid[]); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.reclass_mentors(touched uuid[]) FROM PUBLIC;
GRANT ALL ON FUNCTION public.reclass_mentors(touched uuid[]) TO service_role;

--
-- Name: FUNCTION record_synced_listing(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.record_synced_listing() FROM PUBLIC;

--
-- Name: FUNCTION refuse_cross_organisation_row(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.refuse_cross_organisation_row() FROM PUBLIC;

--
-- Name: FUNCTION refuse_organisation_move(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.refuse_organisation_move() FROM PUBLIC;

--
-- Name: FUNCTION requeue_dead_letters(letters bigint[], who text); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.requeue_dead_letters(letters bigint[], who text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.requeue_dead_letters(letters bigint[], who text) TO service_role;

--
-- Name: FUNCTION resolve_dead_letter(letter bigint, note text, who text); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.resolve_dead_letter(letter bigint, note text, who text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.resolve_dead_letter(letter bigint, note text, who text) TO service_role;

--
-- Name: FUNCTION status_reason_reserved(reason text); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.status_reason_reserved(reason text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.status_reason_reserved(reason text) TO authenticated;
GRANT ALL ON FUNCTION public.status_reason_reserved(reason text) TO service_role;

--
-- Name: FUNCTION track_listing_should(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.track_listing_should() FROM PUBLIC;

--
-- Name: TABLE alert_deliveries; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.alert_deliveries TO service_role;
GRANT SELECT ON TABLE public.alert_deliveries TO authenticated;

--
-- Name: SEQUENCE alert_deliveries_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON SEQUENCE public.alert_deliveries_id_seq TO service_role;

--
-- Name: TABLE alerts; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.alerts TO service_role;
GRANT SELECT ON TABLE public.alerts TO authenticated;

--
-- Name: SEQUENCE alerts_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON SEQUENCE public.alerts_id_seq TO service_role;

--
-- Name: TABLE app_users; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.app_users TO service_role;
GRANT SELECT ON TABLE public.app_users TO authenticated;

--
-- Name: TABLE audit_log; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.audit_log TO service_role;
GRANT SELECT ON TABLE public.audit_log TO authenticated;

--
-- Name: SEQUENCE audit_log_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON SEQUENCE public.audit_log_id_seq TO service_role;

--
-- Name: TABLE cert_expiry_reminders; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.cert_expiry_reminders TO service_role;
GRANT SELECT ON TABLE public.cert_expiry_reminders TO authenticated;

--
-- Name: SEQUENCE cert_expiry_reminders_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON SEQUENCE public.cert_expiry_reminders_id_seq TO service_role;

--
-- Name: TABLE certifications; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.certifications TO service_role;
GRANT SELECT ON TABLE public.certifications TO authenticated;

--
-- Name: TABLE chapter_memberships; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.chapter_memberships TO service_role;
GRANT SELECT ON TABLE public.chapter_memberships TO authenticated;

--
-- Name: TABLE chapters; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.chapters TO service_role;
GRANT SELECT ON TABLE public.chapters TO authenticated;

--
-- Name: TABLE chart_hour_classes; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.chart_hour_classes TO service_role;

--
-- Name: TABLE chart_hours; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.chart_hours TO service_role;

--
-- Name: TABLE circuit_breakers; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.circuit_breakers TO service_role;
GRANT SELECT ON TABLE public.circuit_breakers TO authenticated;

--
-- Name: TABLE coordinator_chapters; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.coordinator_chapters TO service_role;
GRANT SELECT ON TABLE public.coordinator_chapters TO authenticated;

--
-- Name: TABLE credential_health; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.credential_health TO service_role;
GRANT SELECT ON TABLE public.credential_health TO authenticated;

--
-- Name: TABLE dead_letter_queue; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.dead_letter_queue TO service_role;
GRANT SELECT ON TABLE public.dead_letter_queue TO authenticated;

--
-- Name: SEQUENCE dead_letter_queue_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON SEQUENCE public.dead_letter_queue_id_seq TO service_role;

--
-- Name: TABLE device_tokens; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.device_tokens TO service_role;
GRANT SELECT ON TABLE public.device_tokens TO authenticated;

--
-- Name: SEQUENCE device_tokens_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON SEQUENCE public.device_tokens_id_seq TO service_role;

--
-- Name: TABLE listing_confirmations; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.listing_confirmations TO service_role;
GRANT SELECT ON TABLE public.listing_confirmations TO authenticated;

--
-- Name: TABLE mentor_class_generation; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.mentor_class_generation TO service_role;

--
-- Name: TABLE mentor_class_members; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.mentor_class_members TO service_role;

--
-- Name: TABLE mentor_classes; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.mentor_classes TO service_role;

--
-- Name: SEQUENCE mentor_classes_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON SEQUENCE public.mentor_classes_id_seq TO service_role;

--
-- Name: TABLE peer_mentors; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.peer_mentors TO service_role;
GRANT SELECT ON TABLE public.peer_mentors TO authenticated;

--
-- Name: COLUMN peer_mentors.status; Type: ACL; Schema: public; Owner: -
--

GRANT UPDATE(status) ON TABLE public.peer_mentors TO authenticated;

--
-- Name: COLUMN peer_mentors.status_reason; Type: ACL; Schema: public; Owner: -
--

GRANT UPDATE(status_reason) ON TABLE public.peer_mentors TO authenticated;

--
-- Name: TABLE sync_queue; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.sync_queue TO service_role;
GRANT SELECT ON TABLE public.sync_queue TO authenticated;

--
-- Name: TABLE mentor_listing; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT ON TABLE public.mentor_listing TO authenticated;
GRANT SELECT ON TABLE public.mentor_listing TO service_role;

--
-- Name: TABLE operator_notices; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.operator_notices TO service_role;

--
-- Name: SEQUENCE operator_notices_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON SEQUENCE public.operator_notices_id_seq TO service_role;

--
-- Name: TABLE org_settings; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.org_settings TO service_role;
GRANT SELECT ON TABLE public.org_settings TO authenticated;

--
-- Name: TABLE organization_admins; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.organization_admins TO service_role;
GRANT SELECT ON TABLE public.organization_admins TO authenticated;

--
-- Name: TABLE organizations; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.organizations TO service_role;
GRANT SELECT ON TABLE public.organizations TO authenticated;

--
-- Name: TABLE scheduled_runs; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.scheduled_runs TO service_role;

--
-- Name: COLUMN scheduled_runs.id; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT(id) ON TABLE public.scheduled_runs TO authenticated;

--
-- Name: COLUMN scheduled_runs.job; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT(job) ON TABLE public.scheduled_runs TO authenticated;

--
-- Name: COLUMN scheduled_runs.slot; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT(slot) ON TABLE public.scheduled_runs TO authenticated;

--
-- Name: COLUMN scheduled_runs.status; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT(status) ON TABLE public.scheduled_runs TO authenticated;

--
-- Name: COLUMN scheduled_runs.started_at; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT(started_at) ON TABLE public.scheduled_runs TO authenticated;

--
-- Name: COLUMN scheduled_runs.finished_at; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT(finished_at) ON TABLE public.scheduled_runs TO authenticated;

--
-- Name: COLUMN scheduled_runs.heartbeat_at; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT(heartbeat_at) ON TABLE public.scheduled_runs TO authenticated;

--
-- Name: COLUMN scheduled_runs.attempts; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT(attempts) ON TABLE public.scheduled_runs TO authenticated;

--
-- Name: SEQUENCE scheduled_runs_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON SEQUENCE public.scheduled_runs_id_seq TO service_role;

--
-- Name: TABLE schema_migrations; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.schema_migrations TO service_role;

--
-- Name: TABLE sign_in_codes; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.sign_in_codes TO service_role;

--
-- Name: SEQUENCE sync_queue_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON SEQUENCE public.sync_queue_id_seq TO service_role;
