-- Why: certification expiry is decided here, set-based, so the nightly check costs a handful of
-- statements whatever the number of mentors, and its promises hold for every writer (the
-- worker, the CLI, pg_cron, or the app renewing a certificate directly):
--   * one reminder per mentor, threshold and certification period (the UNIQUE key of
--     cert_expiry_reminders), and an alert only for a reminder actually inserted;
--   * a pause only for a mentor still active, checked in the pausing statement itself;
--   * a renewal appends its history entry and restores only a mentor paused for expiry.
-- The rules match `hlfsync.core.expiry`; tests check one against the other.
--
-- "Today" is a date in HLF's time zone, never the server's or UTC: a check at 23:30 UTC on
-- 31 March 2026 runs on 1 April in Oslo. Callers pass the date in; a trigger, which has no
-- caller to ask, reads the `hlfsync.timezone` setting (transaction, role or database level,
-- e.g. `ALTER DATABASE … SET hlfsync.timezone = 'Europe/Oslo'`), defaulting to Europe/Oslo as
-- HLFSYNC_TIMEZONE does. hlfsync sets it from HLFSYNC_TIMEZONE on every renewal it makes.

-- Who is acting: the caller's `hlfsync.actor`, else the JWT subject, else the database user
-- (the same chain the outbox trigger uses).
CREATE FUNCTION expiry_actor() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('hlfsync.actor', true), ''),
                    auth.uid()::text, session_user::text)
$$;

-- The date at `at` (default: the transaction's start) in HLF's time zone.
CREATE FUNCTION expiry_today(at timestamptz DEFAULT NULL) RETURNS date
LANGUAGE sql STABLE AS $$
    SELECT (coalesce(at, now())
            AT TIME ZONE coalesce(nullif(current_setting('hlfsync.timezone', true), ''),
                                  'Europe/Oslo'))::date
$$;

-- The reminder due with `days_left` days to go: the smallest threshold not below it. A missed
-- night is caught up (20 left → the 30-day one, if never sent) but never after a later
-- threshold (3 left → the 7-day one only). NULL when expired or further out than any threshold.
-- A loop over the few thresholds, not over mentors; plpgsql because it is called per row and a
-- SQL body with a subquery cannot be inlined.
CREATE FUNCTION expiry_threshold(days_left int, thresholds int[]) RETURNS int
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
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

-- Alerts about many mentors at once, each for the coordinators of the mentor's chapters (the
-- organisation's admins when the chapters have none), one delivery per device: the set-based
-- form of the `raise_mentor_alert` query. ON CONFLICT makes each key once per incident; only
-- alerts actually inserted are returned and delivered. Always planned for the batch at hand: a
-- plan cached for a batch of one (a renewal) would be nested loops over 50,000 alerts.
CREATE FUNCTION raise_mentor_alerts(
    alert_kind text, alert_at timestamptz,
    alert_mentors uuid[], alert_keys text[], alert_payloads jsonb[], alert_details jsonb[])
RETURNS TABLE (alert_id bigint, mentor_id uuid, incident_key text, payload jsonb,
               deliveries int)
LANGUAGE sql SET plan_cache_mode = force_custom_plan AS $$
WITH wanted AS (
    SELECT w.m, w.k, w.p, w.d
      FROM unnest(alert_mentors, alert_keys, alert_payloads, alert_details) AS w (m, k, p, d)
), raised AS (
    INSERT INTO alerts AS a (kind, incident_key, mentor_id, organization_id, payload, details,
                             created_at)
    SELECT alert_kind, w.k, pm.id, pm.organization_id, w.p, w.d, coalesce(alert_at, now())
      FROM wanted w JOIN peer_mentors pm ON pm.id = w.m
     ORDER BY w.k  -- one order for every writer, so concurrent raises cannot deadlock
    ON CONFLICT (kind, incident_key) DO NOTHING
    RETURNING a.id, a.mentor_id, a.organization_id, a.incident_key, a.payload
), coordinators AS (
    SELECT DISTINCT r.id AS alert_id, cc.user_id
      FROM raised r
      JOIN chapter_memberships cm ON cm.mentor_id = r.mentor_id
      JOIN coordinator_chapters cc ON cc.chapter_id = cm.chapter_id
), recipients AS (
    SELECT c.alert_id, c.user_id FROM coordinators c
    UNION
    SELECT r.id, oa.user_id
      FROM raised r JOIN organization_admins oa ON oa.organization_id = r.organization_id
     WHERE NOT EXISTS (SELECT 1 FROM chapter_memberships cm
                         JOIN coordinator_chapters cc ON cc.chapter_id = cm.chapter_id
                        WHERE cm.mentor_id = r.mentor_id)
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
    -- The dispatcher only needs waking; one NOTIFY per batch, not one per alert.
    SELECT pg_notify('hlfsync_alerts', alert_kind) AS woke WHERE EXISTS (SELECT 1 FROM raised)
)
SELECT r.id, r.mentor_id, r.incident_key, r.payload, coalesce(pa.n, 0)
  FROM raised r
  LEFT JOIN per_alert pa ON pa.alert_id = r.id
  CROSS JOIN (SELECT count(*) FROM notified) AS woke
$$;

-- Reminders for `today`: for each active mentor's certification not yet expired, the threshold
-- `expiry_threshold` picks from the organisation's `reminder_threshold_days` (read at each run,
-- so a change applies the next night without a restart). One statement: the insert, its audit
-- rows and the alerts, the latter only for reminders actually inserted, so a repeated or
-- concurrent run creates no second reminder and no second alert. Returns counts per threshold.
CREATE FUNCTION expiry_send_reminders(today date, who text, at timestamptz DEFAULT NULL)
RETURNS TABLE (threshold_day int, reminders int, alerts int, deliveries int)
LANGUAGE sql SET plan_cache_mode = force_custom_plan AS $$
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

-- Pause every active mentor whose certification expired before `today`, in one statement that
-- re-checks the status under the row lock (a mentor paused by hand, or by a concurrent run, in
-- the meantime is left alone). The outbox trigger queues each `remove` and audits the change
-- with `who` as actor; this adds a `certification_expired` audit row naming the period (what
-- the compensation check counts) and one coordinator alert per transition.
-- plan_cache_mode: one pause can fire the outbox trigger thousands of times in one statement.
-- Its cached plans may date from when sync_queue was nearly empty (a new install) and scan it
-- whole, for every row, as it grows: quadratic (5 minutes for 50,000 pauses). Planning each
-- trigger query afresh, against the table's current size, keeps it linear.
CREATE FUNCTION expiry_pause_expired(today date, who text, at timestamptz DEFAULT NULL)
RETURNS TABLE (mentors_paused int, alerts_raised int, deliveries_created int)
LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    prev_actor   text := current_setting('hlfsync.actor', true);
    prev_reason  text := current_setting('hlfsync.reason', true);
BEGIN
    PERFORM set_config('hlfsync.actor', who, true);
    PERFORM set_config('hlfsync.reason', 'certification_expired', true);
    RETURN QUERY
    WITH expired AS (
        -- Locks in id order, as enqueue_sync does, so the two cannot deadlock. The certificate
        -- is locked too: a renewal committed meanwhile is seen, and one waiting on us sees the
        -- pause and restores.
        SELECT m.id, c.expires_on
          FROM peer_mentors m JOIN certifications c ON c.mentor_id = m.id
         WHERE m.status = 'active' AND c.expires_on < today
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
END
$$;

-- Renewal, part 1: an expiry date moved later appends a version-1 history entry (the shape
-- `hlfsync.core.renewals.RenewalEntry` validates), whoever writes the row.
CREATE FUNCTION certification_renewal_history() RETURNS trigger
LANGUAGE plpgsql AS $$
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

CREATE TRIGGER certifications_renewal_history
    BEFORE UPDATE OF expires_on ON certifications
    FOR EACH ROW WHEN (NEW.expires_on > OLD.expires_on)
    EXECUTE FUNCTION certification_renewal_history();

-- Renewal, part 2: audit it, and if the new date is not in the past (today or later in HLF's
-- time zone) restore a mentor paused for expiry — never one paused by hand or for another
-- reason. The outbox trigger queues the `restore`. SECURITY DEFINER because a renewal may come
-- from the app under row-level security, while the restore writes queue, audit and alert rows
-- that the renewing user must not write directly; it acts on NEW.mentor_id only.
CREATE FUNCTION certification_renewal_restore() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
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

CREATE TRIGGER certifications_renewal_restore
    AFTER UPDATE OF expires_on ON certifications
    FOR EACH ROW WHEN (NEW.expires_on > OLD.expires_on)
    EXECUTE FUNCTION certification_renewal_restore();

-- What must never exist: two reminders of one threshold for one certification period (the
-- UNIQUE key forbids it), or two expiry pauses of one mentor for one period (the status check
-- forbids it). Finding any means a constraint was bypassed or a bug slipped through.
CREATE FUNCTION expiry_duplicates()
RETURNS TABLE (finding text, mentor_id uuid, certification_expiry_date date, threshold_day int,
               copies int)
LANGUAGE sql STABLE AS $$
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

-- The compensation check: one operations alert for administrators when duplicates exist, keyed
-- by what was found, so the same findings alert once and a new one alerts again.
CREATE FUNCTION raise_compensation_alert(at timestamptz DEFAULT NULL)
RETURNS TABLE (findings int, alert_id bigint, deliveries int)
LANGUAGE sql AS $$
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
), delivered AS (
    INSERT INTO alert_deliveries AS d (alert_id, user_id, device_token, next_attempt_at,
                                       created_at)
    SELECT r.id, t.user_id, t.token, coalesce(at, now()), coalesce(at, now())
      FROM raised r
      JOIN device_tokens t ON t.user_id IN (SELECT user_id FROM organization_admins)
    ON CONFLICT (alert_id, device_token) DO NOTHING
    RETURNING d.id
), notified AS (
    SELECT pg_notify('hlfsync_alerts', 'compensation') AS woke
     WHERE EXISTS (SELECT 1 FROM raised)
)
SELECT s.n, (SELECT r.id FROM raised r), (SELECT count(*) FROM delivered)::int
  FROM summary s CROSS JOIN (SELECT count(*) FROM notified) AS woke
$$;

-- The job functions are the service's, not the API roles': on Supabase the default privileges
-- would otherwise let any signed-in user run the nightly check. (Trigger functions cannot be
-- called directly, and firing a trigger checks no EXECUTE privilege.)
REVOKE EXECUTE ON FUNCTION
    raise_mentor_alerts(text, timestamptz, uuid[], text[], jsonb[], jsonb[]),
    expiry_send_reminders(date, text, timestamptz),
    expiry_pause_expired(date, text, timestamptz),
    raise_compensation_alert(timestamptz),
    expiry_duplicates()
FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION
    raise_mentor_alerts(text, timestamptz, uuid[], text[], jsonb[], jsonb[]),
    expiry_send_reminders(date, text, timestamptz),
    expiry_pause_expired(date, text, timestamptz),
    raise_compensation_alert(timestamptz),
    expiry_duplicates()
TO service_role;
