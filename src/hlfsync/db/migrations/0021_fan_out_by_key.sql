-- Why: the first-ever expiry catch-up (issue 13, target 3 s) still took 2.8-3.3 s. Its plans,
-- read chunk by chunk (auto_explain), showed three statements doing more than their rows need:
--
-- * The alert fan-out found each alert's coordinators by joining the alerts to every chapter of
--   their organisation and then probing memberships: 29,430 probes for 4,905 alerts. The
--   planner cannot count what an INSERT ... RETURNING will return, guessed 241, and chose that
--   order. The memberships are now looked up first, by the mentor's key, in their own CTE.
-- * The pause and reminder statements built the alerts' four arrays in four passes, each
--   sorting the chunk again. One pass sorts once (aggregates sharing an ORDER BY).
-- * The outbox trigger's superseding UPDATE read every pending row in the queue to find the
--   moved mentors' (during a catch-up, every pause queued so far); it now reads them by key.
--
-- And one index was a copy: peer_mentors_organization_idx (organization_id) answers nothing that
-- peer_mentors_organization_id_idx (organization_id, id) does not, and every status change, which
-- cannot be a HOT update (status is indexed), wrote an entry into both.
--
-- Behaviour is unchanged, statement for statement; the bodies are 0020's otherwise.

-- ---------------------------------------------------------------------------------------------
-- The outbox trigger: pending rows by key
-- ---------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION peer_mentor_status_outbox() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp AS $$
DECLARE
    who         text := audit_actor();
    -- Bulk writers (the nightly expiry) say so; a person's change keeps the default, 0. The
    -- API roles cannot choose: what they change is a person's change.
    prio        smallint := CASE WHEN auth_is_api_caller() THEN 0
                                 ELSE coalesce(nullif(current_setting('hlfsync.priority', true),
                                                      ''), '0')::smallint END;
    -- Looked up once: called per row, it reads the catalogue each time (2 µs a row, five times
    -- what nextval itself costs).
    queue_seq   regclass := pg_get_serial_sequence('sync_queue', 'id')::regclass;
    moved_ids   uuid[];
    queue_ids   bigint[];
BEGIN
    -- Through EXECUTE: planned for this statement's transition tables (one row or fifty
    -- thousand), never a plan cached from another statement's size.
    -- Ids drawn first, in mentor order, so the superseded rows can point at their successors.
    EXECUTE $q$
        SELECT array_agg(s.id), array_agg(nextval($1))
          FROM (SELECT n.id
                  FROM changed_new n JOIN changed_old o ON o.id = n.id
                 WHERE (o.status = 'active') IS DISTINCT FROM (n.status = 'active')
                 ORDER BY n.id) AS s
    $q$ INTO moved_ids, queue_ids USING queue_seq;

    IF moved_ids IS NOT NULL THEN
        -- Desired state, not commands: the waiting operation, if any, is now moot. Before the
        -- insert, since a mentor has at most one pending operation (a unique index).
        EXECUTE $q$
            UPDATE sync_queue q
               SET status = 'superseded', superseded_by = m.queued_id,
                   finished_at = now(), updated_at = now()
              FROM unnest($1::uuid[], $2::bigint[]) AS m (mentor_id, queued_id)
             WHERE q.mentor_id = m.mentor_id AND q.status = 'pending'
               -- By key: these mentors' pending rows, not every pending row in the queue.
               AND q.mentor_id = ANY ($1::uuid[])
        $q$ USING moved_ids, queue_ids;

        EXECUTE $q$
            INSERT INTO sync_queue (id, mentor_id, operation, payload_json, source, priority)
            OVERRIDING SYSTEM VALUE
            SELECT m.queued_id, n.id,
                   CASE WHEN n.status = 'active' THEN 'restore' ELSE 'remove' END,
                   jsonb_build_object('contact_id', n.dynamics_contact_id,
                                      'listed', n.status = 'active',
                                      'status', n.status,
                                      'reason', n.status_reason,
                                      'changed_at', now()),
                   'status_change', $3
              FROM unnest($1::uuid[], $2::bigint[]) AS m (mentor_id, queued_id)
              JOIN changed_new n ON n.id = m.mentor_id
             ORDER BY m.queued_id
        $q$ USING moved_ids, queue_ids, prio;

        PERFORM pg_notify('hlfsync_sync_queue', queue_ids[array_upper(queue_ids, 1)]::text);
    END IF;

    EXECUTE $q$
        INSERT INTO audit_log (mentor_id, sync_queue_id, event_type, actor, details)
        SELECT n.id, m.queued_id,
               CASE WHEN o.status IS DISTINCT FROM n.status THEN 'status_changed'
                    ELSE 'status_reason_changed' END,
               $3,
               jsonb_build_object('old_status', o.status, 'new_status', n.status,
                                  'reason', n.status_reason,
                                  'old_reason', o.status_reason,
                                  'operation', CASE WHEN m.queued_id IS NULL THEN NULL
                                                    WHEN n.status = 'active' THEN 'restore'
                                                    ELSE 'remove' END)
          FROM changed_new n
          JOIN changed_old o ON o.id = n.id
          LEFT JOIN unnest($1::uuid[], $2::bigint[]) AS m (mentor_id, queued_id)
                 ON m.mentor_id = n.id
         WHERE o.status IS DISTINCT FROM n.status
            OR o.status_reason IS DISTINCT FROM n.status_reason
         ORDER BY n.id
    $q$ USING moved_ids, queue_ids, who;
    RETURN NULL;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- The alert fan-out: memberships first
-- ---------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION raise_mentor_alerts(
    alert_kind text, alert_at timestamptz,
    alert_mentors uuid[], alert_keys text[], alert_payloads jsonb[], alert_details jsonb[])
RETURNS TABLE (alert_id bigint, mentor_id uuid, incident_key text, payload jsonb,
               deliveries int)
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
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
$$;

-- ---------------------------------------------------------------------------------------------
-- The expiry check: the alerts' arrays in one pass
-- ---------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION expiry_send_reminders(today date, who text, at timestamptz,
                                                 lo uuid, hi uuid)
RETURNS TABLE (threshold_day int, reminders int, alerts int, deliveries int)
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
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
$$;

CREATE OR REPLACE FUNCTION expiry_pause_expired(today date, who text, at timestamptz,
                                                lo uuid, hi uuid)
RETURNS TABLE (mentors_paused int, alerts_raised int, deliveries_created int)
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
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
$$;

-- ---------------------------------------------------------------------------------------------
-- One index fewer per status change
-- ---------------------------------------------------------------------------------------------

DROP INDEX peer_mentors_organization_idx;
