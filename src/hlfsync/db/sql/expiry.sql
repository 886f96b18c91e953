-- name: expiry_chunk_bounds
-- Where the check's chunks end: every %(size)s-th mentor id, so each chunk commits on its own.
SELECT b.bound FROM expiry_chunk_bounds(%(size)s) AS b (bound);

-- name: expiry_send_reminders
-- The day's reminders for mentors in (lo, hi], set-based; counts per threshold of what was
-- inserted (nothing on a rerun).
SELECT threshold_day, reminders, alerts, deliveries
  FROM expiry_send_reminders(%(today)s::date, %(actor)s, %(now)s::timestamptz,
                             %(lo)s::uuid, %(hi)s::uuid);

-- name: expiry_pause_expired
-- Pause the active mentors in (lo, hi] whose certification expired; the outbox queues each
-- `remove` as bulk work.
SELECT mentors_paused, alerts_raised, deliveries_created
  FROM expiry_pause_expired(%(today)s::date, %(actor)s, %(now)s::timestamptz,
                            %(lo)s::uuid, %(hi)s::uuid);

-- name: expiry_oversized_histories
-- The size guard: how many renewal histories are longer than the limit, and a few of whose.
SELECT count(*)::int AS n,
       (array_agg(mentor_id ORDER BY mentor_id))[1:10] AS sample
  FROM certifications
 WHERE jsonb_array_length(renewal_history) > %(limit)s;

-- name: expiry_lock_certification
-- Renewal: the current expiry date, locked, so the entry validated is the one the trigger writes.
SELECT expires_on, jsonb_array_length(renewal_history) AS history_length
  FROM certifications WHERE mentor_id = %(mentor)s
   FOR UPDATE;

-- name: expiry_renewal_context
-- Renewal: who renews and in which time zone "today" is, for the triggers of this transaction.
SELECT set_config('hlfsync.actor', %(actor)s, true),
       set_config('hlfsync.timezone',
                  coalesce(%(timezone)s::text, current_setting('hlfsync.timezone', true), ''),
                  true);

-- name: expiry_renew
-- Move the expiry date; the triggers append the history entry and restore an expiry pause.
UPDATE certifications SET expires_on = %(new_expires_on)s::date
 WHERE mentor_id = %(mentor)s
RETURNING renewal_history -> -1 AS entry, jsonb_array_length(renewal_history) AS history_length;

-- name: expiry_mentor_status
-- A mentor's status and why, after a renewal.
SELECT status, status_reason FROM peer_mentors WHERE id = %(mentor)s;

-- name: expiry_renewal_history
-- A certification's whole renewal history, for reading through the versioned parser.
SELECT renewal_history FROM certifications WHERE mentor_id = %(mentor)s;

-- name: expiry_duplicates
-- What the compensation check looks for: duplicate reminders or pauses for one period.
SELECT finding, mentor_id, certification_expiry_date, threshold_day, copies
  FROM expiry_duplicates()
 ORDER BY finding, mentor_id, certification_expiry_date, threshold_day;

-- name: raise_compensation_alert
-- One administrators' alert when duplicates exist, once per distinct set of findings.
SELECT findings, alert_id, deliveries FROM raise_compensation_alert(%(now)s::timestamptz);
