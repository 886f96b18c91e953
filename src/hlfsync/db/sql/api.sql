-- name: api_become_caller
-- Run the rest of this transaction as the caller, exactly as PostgREST does on Supabase: the
-- `authenticated` role and the verified JWT claims, both reverting at COMMIT or ROLLBACK.
SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', %(claims)s, true);

-- name: api_mentor_page
-- One page of the caller's mentors in id order, after the cursor, with their sync state. The
-- walk starts from the caller's chapters and organisations by index (a page costs the same
-- anywhere in 100,000 mentors); row-level security still decides every row.
WITH page AS (
    SELECT DISTINCT m.id
      FROM (SELECT x.id
              FROM auth_coordinated_chapters() AS ch (id)
             CROSS JOIN LATERAL (
                   SELECT cm.mentor_id AS id
                     FROM chapter_memberships cm JOIN peer_mentors v ON v.id = cm.mentor_id
                    WHERE cm.chapter_id = ch.id AND cm.mentor_id > %(after)s
                    ORDER BY cm.mentor_id LIMIT %(limit)s) x
            UNION ALL
            SELECT x.id
              FROM auth_admin_orgs() AS o (id)
             CROSS JOIN LATERAL (
                   SELECT v.id FROM peer_mentors v
                    WHERE v.organization_id = o.id AND v.id > %(after)s
                    ORDER BY v.id LIMIT %(limit)s) x) m
     ORDER BY m.id
     LIMIT %(limit)s
)
SELECT p.id, p.full_name, p.organization_id, p.status, p.status_reason, p.status_changed_at,
       p.dynamics_contact_id IS NOT NULL AS has_contact,
       q.id AS queue_id, q.operation, q.status AS queue_status, q.source, q.attempt_count,
       q.next_attempt_at, q.last_error, q.updated_at AS queue_updated_at,
       ok.finished_at AS last_synced_at, d.id AS dead_letter_id
  FROM page
  JOIN peer_mentors p ON p.id = page.id
  LEFT JOIN LATERAL (SELECT * FROM sync_queue s WHERE s.mentor_id = p.id
                      ORDER BY s.id DESC LIMIT 1) q ON true
  LEFT JOIN LATERAL (SELECT s.finished_at FROM sync_queue s
                      WHERE s.mentor_id = p.id AND s.status = 'succeeded'
                      ORDER BY s.id DESC LIMIT 1) ok ON true
  LEFT JOIN LATERAL (SELECT l.id FROM dead_letter_queue l
                      WHERE l.mentor_id = p.id AND l.status = 'open'
                      ORDER BY l.id DESC LIMIT 1) d ON true
 ORDER BY p.id;

-- name: api_mentor
-- One mentor with its sync state (the same columns as a page row); no row when not visible.
SELECT p.id, p.full_name, p.organization_id, p.status, p.status_reason, p.status_changed_at,
       p.dynamics_contact_id IS NOT NULL AS has_contact,
       q.id AS queue_id, q.operation, q.status AS queue_status, q.source, q.attempt_count,
       q.next_attempt_at, q.last_error, q.updated_at AS queue_updated_at,
       ok.finished_at AS last_synced_at, d.id AS dead_letter_id
  FROM peer_mentors p
  LEFT JOIN LATERAL (SELECT * FROM sync_queue s WHERE s.mentor_id = p.id
                      ORDER BY s.id DESC LIMIT 1) q ON true
  LEFT JOIN LATERAL (SELECT s.finished_at FROM sync_queue s
                      WHERE s.mentor_id = p.id AND s.status = 'succeeded'
                      ORDER BY s.id DESC LIMIT 1) ok ON true
  LEFT JOIN LATERAL (SELECT l.id FROM dead_letter_queue l
                      WHERE l.mentor_id = p.id AND l.status = 'open'
                      ORDER BY l.id DESC LIMIT 1) d ON true
 WHERE p.id = %(mentor)s;

-- name: api_mentor_attempts
-- The mentor's latest calls to Dynamics and their outcomes, newest first, from the audit log.
SELECT a.id, a.occurred_at, a.event_type, a.sync_queue_id, a.details
  FROM audit_log a
 WHERE a.mentor_id = %(mentor)s
   AND a.event_type IN ('sync_succeeded', 'sync_retry_scheduled', 'sync_throttled',
                        'dead_lettered', 'lease_expired')
 ORDER BY a.id DESC
 LIMIT %(limit)s;

-- name: api_mentor_audit_page
-- The mentor's audit trail, newest first, before the cursor.
SELECT a.id, a.occurred_at, a.event_type, a.actor, a.sync_queue_id, a.details
  FROM audit_log a
 WHERE a.mentor_id = %(mentor)s AND a.id < %(before)s
 ORDER BY a.id DESC
 LIMIT %(limit)s;

-- name: api_force_sync
-- Queue an immediate sync as the caller; the function checks the caller's scope itself.
SELECT mentor_id, sync_queue_id, operation FROM api_force_sync(%(mentor)s);

-- name: api_dead_letter_page
-- Dead letters the caller may see, newest first, before the cursor, optionally of one status.
SELECT l.id, l.mentor_id, p.full_name AS mentor_name, l.sync_queue_id, l.operation_type,
       l.failure_reason, l.attempt_count, l.status, l.created_at, l.updated_at, l.requeued_as,
       l.handled_by, l.handled_at, l.resolution_note
  FROM dead_letter_queue l
  LEFT JOIN peer_mentors p ON p.id = l.mentor_id
 WHERE l.id < %(before)s AND (%(status)s::text IS NULL OR l.status = %(status)s)
 ORDER BY l.id DESC
 LIMIT %(limit)s;

-- name: api_dead_letter
-- One dead letter, if the caller may see it.
SELECT l.id, l.mentor_id, p.full_name AS mentor_name, l.sync_queue_id, l.operation_type,
       l.failure_reason, l.attempt_count, l.status, l.created_at, l.updated_at, l.requeued_as,
       l.handled_by, l.handled_at, l.resolution_note
  FROM dead_letter_queue l
  LEFT JOIN peer_mentors p ON p.id = l.mentor_id
 WHERE l.id = %(letter)s;

-- name: api_requeue_dead_letter
-- Re-queue one dead letter as the caller; no row back when it was not open.
SELECT dead_letter_id, sync_queue_id FROM api_requeue_dead_letter(%(letter)s);

-- name: api_resolve_dead_letter
-- Resolve one dead letter with a note as the caller; false when it was not open.
SELECT api_resolve_dead_letter(%(letter)s, %(note)s);

-- name: api_alert_page
-- Alerts the caller may see, newest first, before the cursor.
SELECT a.id, a.kind, a.mentor_id, a.status, a.created_at, a.details
  FROM alerts a
 WHERE a.id < %(before)s
 ORDER BY a.id DESC
 LIMIT %(limit)s;

-- name: api_me
-- Who the caller is to hlfsync: their user row, the chapters they coordinate, the
-- organisations they administer.
SELECT auth.uid() AS id,
       (SELECT u.full_name FROM app_users u WHERE u.id = auth.uid()) AS full_name,
       auth_user_org() AS organization_id,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('id', c.id, 'name', c.name)
                                  ORDER BY c.name), '[]'::jsonb)
          FROM chapters c WHERE c.id IN (SELECT auth_coordinated_chapters())) AS chapters,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('id', o.id, 'name', o.name)
                                  ORDER BY o.name), '[]'::jsonb)
          FROM organizations o WHERE o.id IN (SELECT auth_admin_orgs())) AS administers;

-- name: api_queue_overview
-- Global queue totals for staff (no mentor data), through the checking function.
SELECT queue, oldest_pending_at, open_dead_letters FROM api_queue_overview();

-- name: api_applied_migrations
-- What /readyz compares with the migrations this build ships.
SELECT version FROM schema_migrations;

-- name: metrics_audit_settled
-- The newest audit row old enough that every transaction that could still add a row below it
-- has ended: counters add rows up to here once, and recount only the rows after it.
SELECT coalesce(max(id), 0) AS upto FROM (
    SELECT id FROM audit_log
     WHERE occurred_at < now() - %(settle_s)s * interval '1 second'
     ORDER BY id DESC LIMIT 1) a;

-- name: metrics_audit_counts
-- Audit rows in (lo, hi] (hi NULL: all after lo), by event type, failure class and call-time
-- bucket: the source of every counter and the Dynamics latency histogram, whichever process
-- made the call.
SELECT a.event_type,
       CASE WHEN a.event_type = 'dead_lettered'
            THEN split_part(a.details ->> 'reason', ':', 1) END AS reason,
       -- Over negated bounds: the number of bounds >= the call time (Prometheus buckets are `le`).
       width_bucket(-((a.details ->> 'duration_ms')::float8), %(neg_bounds_ms)s::float8[]) AS bucket,
       (a.details ->> 'duration_ms') IS NOT NULL AS timed,
       count(*)::bigint AS n,
       coalesce(sum((a.details ->> 'duration_ms')::float8), 0)::float8 AS duration_ms
  FROM audit_log a
 WHERE a.id > %(lo)s AND (%(hi)s::bigint IS NULL OR a.id <= %(hi)s)
 GROUP BY 1, 2, 3, 4;

-- name: metrics_dead_letters
-- Dead letters by status (open ones wait for a person).
SELECT status, count(*)::int AS n FROM dead_letter_queue GROUP BY status;

-- name: metrics_alert_deliveries
-- Push deliveries by status.
SELECT status, count(*)::int AS n FROM alert_deliveries GROUP BY status;

-- name: metrics_renewal_history_oversized
-- Certifications whose renewal history is past the size guard: the guard's findings, counted
-- from the data so every process reports the same.
SELECT count(*)::int FROM certifications
 WHERE jsonb_array_length(renewal_history) > %(limit)s;

-- name: api_queue_row
-- The operation a force-sync or re-queue just created, as the caller sees it.
SELECT id, mentor_id, operation FROM sync_queue WHERE id = %(id)s;

-- name: api_open_dead_letter_count
-- How many open dead letters the caller's mentors have.
SELECT count(*)::int AS n FROM dead_letter_queue WHERE status = 'open';

-- name: api_last_scheduled_runs
-- Each scheduled job's latest run as staff may see it: when and how it ended, never its
-- statistics or error (they hold samples of every organisation's mentors and contacts).
SELECT DISTINCT ON (job) job, slot, status, started_at, finished_at
  FROM scheduled_runs ORDER BY job, slot DESC;
