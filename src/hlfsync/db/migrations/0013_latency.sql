-- Why: scheduled bulk work slowed the live sync (issue 13). A night's expiry queued tens of
-- thousands of `remove`s at the priority of a person's change, so a coordinator's pause at 02:31
-- waited behind them; and the first-ever expiry check paused 49,000 mentors in one transaction,
-- holding their row locks (and the app's writes to them) for seconds.
--
-- * The outbox trigger takes the operation's priority from the transaction's `hlfsync.priority`
--   (default 0, a person's change). The expiry pause sets -10: bulk work, claimed after every
--   live change (the claim orders by priority; `sync_queue_claim_idx` already leads with it).
--   Force-sync and re-queues stay at 10, break-glass at 20; reconciliation passes -10 itself.
-- * The expiry functions take a mentor-id range (lo, hi]: the check runs as chunks that each
--   commit on their own, so no chunk holds many locks for long. Exactly-once does not depend on
--   the transaction: a reminder has its UNIQUE key and a pause re-checks the status under the
--   row lock, so a chunk that runs twice, or a run cut short and run again, does nothing twice.
--   The three-argument forms stay (whole range, one statement) for callers that use them.
-- * `expiry_chunk_bounds` cuts the mentors into ranges of about `size` ids.

-- The outbox trigger of 0008, with the priority.
CREATE OR REPLACE FUNCTION peer_mentor_status_outbox() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    who         text := coalesce(nullif(current_setting('hlfsync.actor', true), ''),
                                 auth.uid()::text, session_user::text);
    -- Bulk writers (the nightly expiry) say so; a person's change keeps the default, 0.
    prio        smallint := coalesce(nullif(current_setting('hlfsync.priority', true), ''),
                                     '0')::smallint;
    moved_ids   uuid[];
    queue_ids   bigint[];
BEGIN
    -- Ids drawn first, in mentor order, so the superseded rows can point at their successors.
    SELECT array_agg(s.id), array_agg(nextval(pg_get_serial_sequence('sync_queue', 'id')))
      INTO moved_ids, queue_ids
      FROM (SELECT n.id
              FROM changed_new n JOIN changed_old o ON o.id = n.id
             WHERE (o.status = 'active') IS DISTINCT FROM (n.status = 'active')
             ORDER BY n.id) AS s;

    IF moved_ids IS NOT NULL THEN
        -- Desired state, not commands: the waiting operation, if any, is now moot. Before the
        -- insert, since a mentor has at most one pending operation (a unique index).
        UPDATE sync_queue q
           SET status = 'superseded', superseded_by = m.queued_id,
               finished_at = now(), updated_at = now()
          FROM unnest(moved_ids, queue_ids) AS m (mentor_id, queued_id)
         WHERE q.mentor_id = m.mentor_id AND q.status = 'pending';

        INSERT INTO sync_queue (id, mentor_id, operation, payload_json, source, priority)
        OVERRIDING SYSTEM VALUE
        SELECT m.queued_id, n.id,
               CASE WHEN n.status = 'active' THEN 'restore' ELSE 'remove' END,
               jsonb_build_object('contact_id', n.dynamics_contact_id,
                                  'listed', n.status = 'active',
                                  'status', n.status,
                                  'reason', n.status_reason,
                                  'changed_at', now()),
               'status_change', prio
          FROM unnest(moved_ids, queue_ids) AS m (mentor_id, queued_id)
          JOIN changed_new n ON n.id = m.mentor_id
         ORDER BY m.queued_id;

        PERFORM pg_notify('hlfsync_sync_queue', queue_ids[array_upper(queue_ids, 1)]::text);
    END IF;

    INSERT INTO audit_log (mentor_id, sync_queue_id, event_type, actor, details)
    SELECT n.id, m.queued_id, 'status_changed', who,
           jsonb_build_object('old_status', o.status, 'new_status', n.status,
                              'reason', n.status_reason,
                              'operation', CASE WHEN m.queued_id IS NULL THEN NULL
                                                WHEN n.status = 'active' THEN 'restore'
                                                ELSE 'remove' END)
      FROM changed_new n
      JOIN changed_old o ON o.id = n.id
      LEFT JOIN unnest(moved_ids, queue_ids) AS m (mentor_id, queued_id) ON m.mentor_id = n.id
     WHERE o.status IS DISTINCT FROM n.status
     ORDER BY n.id;
    RETURN NULL;
END
$$;

-- The expiry check by ranges (0006's bodies, bounded).
CREATE FUNCTION expiry_send_reminders(today date, who text, at timestamptz, lo uuid, hi uuid)
RETURNS TABLE (threshold_day int, reminders int, alerts int, deliveries int)
LANGUAGE sql SET search_path = public, pg_temp SET plan_cache_mode = force_custom_plan AS $$
WITH horizon AS (
    -- No threshold looks further ahead than this: certificates beyond it are not even read.
    SELECT greatest(30, coalesce(max(d), 0)) AS days
      FROM org_settings s, unnest(s.reminder_threshold_days) AS d
), due AS (
    SELECT c.mentor_id, c.id AS certification_id, c.expires_on,
           c.expires_on - today AS days_left,
           -- An organisation without a settings row gets the column's default.
           expiry_threshold(c.expires_on - today,
                            coalesce(s.reminder_threshold_days, '{30,14,7}')) AS threshold
      FROM certifications c
      JOIN peer_mentors m ON m.id = c.mentor_id
      LEFT JOIN org_settings s ON s.organization_id = m.organization_id
     WHERE m.status = 'active'
       AND c.expires_on >= today
       AND c.expires_on <= today + (SELECT h.days FROM horizon h)
       AND (lo IS NULL OR c.mentor_id > lo) AND (hi IS NULL OR c.mentor_id <= hi)
), sent AS (
    INSERT INTO cert_expiry_reminders AS r (mentor_id, certification_id, threshold_day,
                                            certification_expiry_date, days_left, created_at)
    SELECT d.mentor_id, d.certification_id, d.threshold, d.expires_on, d.days_left,
           coalesce(at, now())
      FROM due d
     WHERE d.threshold IS NOT NULL
     ORDER BY d.mentor_id  -- one order for every run, so concurrent runs cannot deadlock
    ON CONFLICT (mentor_id, threshold_day, certification_expiry_date) DO NOTHING
    RETURNING r.id, r.mentor_id, r.threshold_day, r.certification_expiry_date, r.days_left
), audited AS (
    INSERT INTO audit_log (occurred_at, mentor_id, event_type, actor, details)
    SELECT coalesce(at, now()), s.mentor_id, 'cert_expiry_reminder', who,
           jsonb_build_object('reminder_id', s.id, 'threshold_day', s.threshold_day,
                              'days_left', s.days_left,
                              'certification_expiry_date', s.certification_expiry_date,
                              'today', today)
      FROM sent s
), raised AS (
    SELECT (ra.payload ->> 'threshold_days')::int AS threshold_day, ra.deliveries
      FROM raise_mentor_alerts(
          'cert_reminder', at,
          (SELECT array_agg(s.mentor_id ORDER BY s.id) FROM sent s),
          (SELECT array_agg(s.mentor_id || ':' || s.threshold_day || ':'
                            || to_char(s.certification_expiry_date, 'YYYY-MM-DD') ORDER BY s.id)
             FROM sent s),
          -- The push data: as notify.payloads.build_reminder_data builds it, strings only.
          (SELECT array_agg(jsonb_build_object('type', 'hlf_cert_expiry_reminder',
                                               'mentor_id', s.mentor_id::text,
                                               'threshold_days', s.threshold_day::text)
                            ORDER BY s.id) FROM sent s),
          (SELECT array_agg(jsonb_build_object('reminder_id', s.id,
                                               'threshold_day', s.threshold_day,
                                               'days_left', s.days_left,
                                               'certification_expiry_date',
                                               s.certification_expiry_date)
                            ORDER BY s.id) FROM sent s)) AS ra
)
-- Counted apart and joined per threshold (a handful of rows): a join of the two CTEs row by row
-- would be planned on guesses and can turn quadratic.
SELECT t.threshold_day, t.n, coalesce(a.n, 0), coalesce(a.deliveries, 0)
  FROM (SELECT s.threshold_day, count(*)::int AS n FROM sent s GROUP BY s.threshold_day) AS t
  LEFT JOIN (SELECT ra.threshold_day, count(*)::int AS n, sum(ra.deliveries)::int AS deliveries
               FROM raised ra GROUP BY ra.threshold_day) AS a
         ON a.threshold_day = t.threshold_day
 ORDER BY t.threshold_day DESC
$$;

CREATE FUNCTION expiry_pause_expired(today date, who text, at timestamptz, lo uuid, hi uuid)
RETURNS TABLE (mentors_paused int, alerts_raised int, deliveries_created int)
LANGUAGE plpgsql SET search_path = public, pg_temp SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    prev_actor   text := current_setting('hlfsync.actor', true);
    prev_reason  text := current_setting('hlfsync.reason', true);
    prev_prio    text := current_setting('hlfsync.priority', true);
BEGIN
    PERFORM set_config('hlfsync.actor', who, true);
    PERFORM set_config('hlfsync.reason', 'certification_expired', true);
    -- Bulk work: the `remove`s queued here wait behind any person's change.
    PERFORM set_config('hlfsync.priority', '-10', true);
    RETURN QUERY
    WITH expired AS (
        -- Locks in id order, as enqueue_sync does, so the two cannot deadlock. The certificate
        -- is locked too: a renewal committed meanwhile is seen, and one waiting on us sees the
        -- pause and restores.
        SELECT m.id, c.expires_on
          FROM peer_mentors m JOIN certifications c ON c.mentor_id = m.id
         WHERE m.status = 'active' AND c.expires_on < today
           AND (lo IS NULL OR m.id > lo) AND (hi IS NULL OR m.id <= hi)
         ORDER BY m.id
           FOR UPDATE OF m, c
    ), moved AS (
        UPDATE peer_mentors m
           SET status = 'paused', status_reason = 'certification_expired'
          FROM expired e
         WHERE m.id = e.id AND m.status = 'active'
        RETURNING m.id, e.expires_on
    ), audited AS (
        INSERT INTO audit_log (occurred_at, mentor_id, event_type, actor, details)
        SELECT coalesce(at, now()), mv.id, 'certification_expired', who,
               jsonb_build_object('certification_expiry_date', mv.expires_on, 'today', today)
          FROM moved mv
    ), raised AS (
        SELECT ra.deliveries
          FROM raise_mentor_alerts(
              'cert_paused', at,
              (SELECT array_agg(mv.id ORDER BY mv.id) FROM moved mv),
              (SELECT array_agg(mv.id || ':' || to_char(mv.expires_on, 'YYYY-MM-DD')
                                ORDER BY mv.id) FROM moved mv),
              (SELECT array_agg(jsonb_build_object('type', 'hlf_cert_paused',
                                                   'mentor_id', mv.id::text,
                                                   'operation', 'remove') ORDER BY mv.id)
                 FROM moved mv),
              (SELECT array_agg(jsonb_build_object('reason', 'certification_expired',
                                                   'certification_expiry_date', mv.expires_on)
                                ORDER BY mv.id)
                 FROM moved mv)) AS ra
    )
    SELECT (SELECT count(*) FROM moved)::int,
           (SELECT count(*) FROM raised)::int,
           (SELECT coalesce(sum(r.deliveries), 0) FROM raised r)::int;
    -- Transaction-local settings outlive this call; put the caller's back.
    PERFORM set_config('hlfsync.actor', coalesce(prev_actor, ''), true);
    PERFORM set_config('hlfsync.reason', coalesce(prev_reason, ''), true);
    PERFORM set_config('hlfsync.priority', coalesce(prev_prio, ''), true);
END
$$;

-- Every `size`-th mentor id, in id order: the upper bounds of the check's chunks (the last chunk
-- is open-ended). One index-only pass over the primary key.
CREATE FUNCTION expiry_chunk_bounds(size int)
RETURNS SETOF uuid
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
    SELECT b.id
      FROM (SELECT m.id, row_number() OVER (ORDER BY m.id) AS n FROM public.peer_mentors m) b
     WHERE b.n % greatest(size, 1) = 0
     ORDER BY b.id
$$;

-- The whole-range forms, as before, now through the ranged ones.
CREATE OR REPLACE FUNCTION expiry_send_reminders(today date, who text, at timestamptz DEFAULT NULL)
RETURNS TABLE (threshold_day int, reminders int, alerts int, deliveries int)
LANGUAGE sql SET search_path = public, pg_temp AS $$
    SELECT * FROM public.expiry_send_reminders(today, who, at, NULL::uuid, NULL::uuid)
$$;

CREATE OR REPLACE FUNCTION expiry_pause_expired(today date, who text, at timestamptz DEFAULT NULL)
RETURNS TABLE (mentors_paused int, alerts_raised int, deliveries_created int)
LANGUAGE sql SET search_path = public, pg_temp AS $$
    SELECT * FROM public.expiry_pause_expired(today, who, at, NULL::uuid, NULL::uuid)
$$;

REVOKE EXECUTE ON FUNCTION
    expiry_send_reminders(date, text, timestamptz, uuid, uuid),
    expiry_pause_expired(date, text, timestamptz, uuid, uuid),
    expiry_chunk_bounds(int)
FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION
    expiry_send_reminders(date, text, timestamptz, uuid, uuid),
    expiry_pause_expired(date, text, timestamptz, uuid, uuid),
    expiry_chunk_bounds(int)
TO service_role;
