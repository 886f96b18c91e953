-- name: api_become_caller
-- Run the rest of this transaction as the caller, exactly as PostgREST does on Supabase: the
-- `authenticated` role and the verified JWT claims, both reverting at COMMIT or ROLLBACK.
SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', %(claims)s, true);

-- name: api_mentor_page
-- One page of the caller's mentors in id order, after the cursor, with their sync state and
-- verdict; optionally of one status, chapter or name pattern. The walk starts from the caller's
-- chapters and organisations by index (a page costs the same anywhere in 100,000 mentors), the
-- filters apply inside each walk, and only the page's rows are judged; row-level security
-- still decides every row.
WITH page AS (
    SELECT DISTINCT m.id
      FROM (SELECT x.id
              FROM auth_coordinated_chapters() AS ch (id)
             CROSS JOIN LATERAL (
                   SELECT cm.mentor_id AS id
                     FROM chapter_memberships cm JOIN peer_mentors v ON v.id = cm.mentor_id
                    WHERE cm.chapter_id = ch.id AND cm.mentor_id > %(after)s
                   AND (%(status)s::text IS NULL OR v.status = %(status)s)
                   AND (%(pattern)s::text IS NULL OR v.full_name ILIKE %(pattern)s)
                   AND (%(chapter)s::uuid IS NULL OR EXISTS (SELECT 1 FROM chapter_memberships x
                                                               WHERE x.mentor_id = v.id AND x.chapter_id = %(chapter)s))
                    ORDER BY cm.mentor_id LIMIT %(limit)s) x
            UNION ALL
            SELECT x.id
              FROM auth_admin_orgs() AS o (id)
             CROSS JOIN LATERAL (
                   SELECT v.id FROM peer_mentors v
                    WHERE v.organization_id = o.id AND v.id > %(after)s
                   AND (%(status)s::text IS NULL OR v.status = %(status)s)
                   AND (%(pattern)s::text IS NULL OR v.full_name ILIKE %(pattern)s)
                   AND (%(chapter)s::uuid IS NULL OR EXISTS (SELECT 1 FROM chapter_memberships x
                                                               WHERE x.mentor_id = v.id AND x.chapter_id = %(chapter)s))
                    ORDER BY v.id LIMIT %(limit)s) x) m
     ORDER BY m.id
     LIMIT %(limit)s
)
SELECT m.* FROM page JOIN mentor_listing m ON m.id = page.id ORDER BY m.id;

-- name: api_mentor_page_judged
-- The same walk for the common verdict (in step): each walk judges its rows as it goes and
-- stops at a page of matches.
SELECT DISTINCT ON (x.id) x.*
  FROM (SELECT x.*
          FROM auth_coordinated_chapters() AS ch (id)
         CROSS JOIN LATERAL (
               SELECT v.* FROM chapter_memberships cm JOIN mentor_listing v ON v.id = cm.mentor_id
                WHERE cm.chapter_id = ch.id AND cm.mentor_id > %(after)s
               AND (%(status)s::text IS NULL OR v.status = %(status)s)
               AND (%(pattern)s::text IS NULL OR v.full_name ILIKE %(pattern)s)
               AND (%(chapter)s::uuid IS NULL OR EXISTS (SELECT 1 FROM chapter_memberships x
                                                           WHERE x.mentor_id = v.id AND x.chapter_id = %(chapter)s))
               AND (%(verdict)s::text IS NULL OR v.verdict = %(verdict)s)
                ORDER BY cm.mentor_id LIMIT %(limit)s) x
        UNION ALL
        SELECT x.*
          FROM auth_admin_orgs() AS o (id)
         CROSS JOIN LATERAL (
               SELECT v.* FROM mentor_listing v
                WHERE v.organization_id = o.id AND v.id > %(after)s
               AND (%(status)s::text IS NULL OR v.status = %(status)s)
               AND (%(pattern)s::text IS NULL OR v.full_name ILIKE %(pattern)s)
               AND (%(chapter)s::uuid IS NULL OR EXISTS (SELECT 1 FROM chapter_memberships x
                                                           WHERE x.mentor_id = v.id AND x.chapter_id = %(chapter)s))
               AND (%(verdict)s::text IS NULL OR v.verdict = %(verdict)s)
                ORDER BY v.id LIMIT %(limit)s) x) x
 ORDER BY x.id
 LIMIT %(limit)s;

-- name: api_mentor_page_of_chapter
-- One chapter's mentors, walked by the membership index; only the page's rows are judged.
WITH page AS (
    SELECT cm.mentor_id AS id
      FROM chapter_memberships cm JOIN peer_mentors v ON v.id = cm.mentor_id
     WHERE cm.chapter_id = %(chapter)s AND cm.mentor_id > %(after)s
       AND (%(status)s::text IS NULL OR v.status = %(status)s)
       AND (%(pattern)s::text IS NULL OR v.full_name ILIKE %(pattern)s)
       AND (%(chapter)s::uuid IS NULL OR EXISTS (SELECT 1 FROM chapter_memberships x
                                                   WHERE x.mentor_id = v.id AND x.chapter_id = %(chapter)s))
     ORDER BY cm.mentor_id LIMIT %(limit)s
)
SELECT m.* FROM page JOIN mentor_listing m ON m.id = page.id ORDER BY m.id;

-- name: api_mentor_page_named
-- Mentors whose name contains the search: the trigram index finds the names among all mentors,
-- auth_mentors_named cuts the caller's page from them (under RLS the planner would scan every
-- visible mentor instead), and only the page's rows are judged; row-level security still
-- decides every row.
WITH page AS (
    SELECT h.id
      FROM auth_mentors_named(%(pattern)s, %(after)s, %(limit)s, %(status)s, %(chapter)s) AS h (id)
)
SELECT m.* FROM page JOIN mentor_listing m ON m.id = page.id ORDER BY m.id;

-- name: api_mentor_page_of_status
-- The caller's mentors of one status, walked from the status's index in id order. When the
-- walk's budget met too few of the caller's, the last row is all NULL: the caller then walks
-- their chapters instead (api_mentor_page). Row-level security still decides every row.
WITH walk AS (
    SELECT w.id FROM auth_mentors_of_status(%(status)s, %(after)s, %(limit)s, 1000) AS w (id)
)
SELECT m.*
  FROM walk LEFT JOIN mentor_listing m ON m.id = walk.id
 WHERE walk.id IS NULL OR m.id IS NOT NULL
 ORDER BY walk.id NULLS LAST;

-- name: api_mentor_page_dead_lettered
-- Mentors with an open dead letter: walked from the open letters (few), in mentor order.
SELECT m.*
  FROM dead_letter_queue l
  JOIN mentor_listing m ON m.id = l.mentor_id AND m.dead_letter_id = l.id
 WHERE l.status = 'open' AND l.mentor_id > %(after)s
   AND (%(status)s::text IS NULL OR m.status = %(status)s)
   AND (%(pattern)s::text IS NULL OR m.full_name ILIKE %(pattern)s)
   AND (%(chapter)s::uuid IS NULL OR EXISTS (SELECT 1 FROM chapter_memberships x
                                               WHERE x.mentor_id = m.id AND x.chapter_id = %(chapter)s))
   AND (%(verdict)s::text IS NULL OR m.verdict = %(verdict)s)
 ORDER BY l.mentor_id LIMIT %(limit)s;

-- name: api_mentor_page_pending
-- Mentors with an operation waiting or running: walked from those operations (the two
-- one-per-mentor indexes, merged in mentor order).
SELECT m.*
  FROM (SELECT DISTINCT f.mentor_id
          FROM (SELECT s.mentor_id FROM sync_queue s
                 WHERE s.status = 'pending' AND s.mentor_id > %(after)s
                UNION ALL
                SELECT s.mentor_id FROM sync_queue s
                 WHERE s.status = 'in_progress' AND s.mentor_id > %(after)s) f
         ORDER BY f.mentor_id) f
  JOIN mentor_listing m ON m.id = f.mentor_id
 WHERE true
   AND (%(status)s::text IS NULL OR m.status = %(status)s)
   AND (%(pattern)s::text IS NULL OR m.full_name ILIKE %(pattern)s)
   AND (%(chapter)s::uuid IS NULL OR EXISTS (SELECT 1 FROM chapter_memberships x
                                               WHERE x.mentor_id = m.id AND x.chapter_id = %(chapter)s))
   AND (%(verdict)s::text IS NULL OR m.verdict = %(verdict)s)
 ORDER BY f.mentor_id LIMIT %(limit)s;

-- name: api_mentor_page_out_of_step
-- Mentors whose confirmed listing differs from their status: walked from those differences.
SELECT m.* FROM listing_confirmations c JOIN mentor_listing m ON m.id = c.mentor_id
 WHERE c.differs AND c.mentor_id > %(after)s
   AND (%(status)s::text IS NULL OR m.status = %(status)s)
   AND (%(pattern)s::text IS NULL OR m.full_name ILIKE %(pattern)s)
   AND (%(chapter)s::uuid IS NULL OR EXISTS (SELECT 1 FROM chapter_memberships x
                                               WHERE x.mentor_id = m.id AND x.chapter_id = %(chapter)s))
   AND (%(verdict)s::text IS NULL OR m.verdict = %(verdict)s)
 ORDER BY c.mentor_id LIMIT %(limit)s;

-- name: api_mentor_page_unconfirmed
-- Mentors Dynamics has not confirmed yet: walked from their own index (few, once the first
-- reconciliation has run).
SELECT m.* FROM listing_confirmations c JOIN mentor_listing m ON m.id = c.mentor_id
 WHERE c.listed IS NULL AND c.mentor_id > %(after)s
   AND (%(status)s::text IS NULL OR m.status = %(status)s)
   AND (%(pattern)s::text IS NULL OR m.full_name ILIKE %(pattern)s)
   AND (%(chapter)s::uuid IS NULL OR EXISTS (SELECT 1 FROM chapter_memberships x
                                               WHERE x.mentor_id = m.id AND x.chapter_id = %(chapter)s))
   AND (%(verdict)s::text IS NULL OR m.verdict = %(verdict)s)
 ORDER BY c.mentor_id LIMIT %(limit)s;

-- name: api_mentor_page_unlinked
-- Mentors without a Dynamics contact (few): walked from their own index.
SELECT m.* FROM peer_mentors p JOIN mentor_listing m ON m.id = p.id
 WHERE p.dynamics_contact_id IS NULL AND p.id > %(after)s
   AND (%(status)s::text IS NULL OR m.status = %(status)s)
   AND (%(pattern)s::text IS NULL OR m.full_name ILIKE %(pattern)s)
   AND (%(chapter)s::uuid IS NULL OR EXISTS (SELECT 1 FROM chapter_memberships x
                                               WHERE x.mentor_id = m.id AND x.chapter_id = %(chapter)s))
   AND (%(verdict)s::text IS NULL OR m.verdict = %(verdict)s)
 ORDER BY p.id LIMIT %(limit)s;

-- name: api_mentor
-- One mentor with its sync state and verdict (the same columns as a page row); no row when
-- not visible.
SELECT m.* FROM mentor_listing m WHERE m.id = %(mentor)s;

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
-- Audit rows in (lo, hi] (hi NULL: all after lo), by event type, failure class, call-time
-- bucket and, for successes, lane and sync-lag bucket: the source of every counter, the Dynamics
-- latency histogram and the sync-lag histogram, whichever process made the call. The lag is the
-- dashboard's (`chart_events`): from the transaction that queued the operation until Dynamics
-- accepted it, the worker's clock at the answer minus the database's at the queuing.
WITH timed AS (
    SELECT a.event_type, a.details,
           (a.details ->> 'duration_ms')::float8 AS duration_ms,
           CASE WHEN s.id IS NULL THEN NULL
                WHEN s.priority >= %(live_priority)s THEN %(live)s ELSE %(bulk)s END AS lane,
           -- greatest() would turn the NULL of a row without a queue row into 0.
           CASE WHEN s.id IS NOT NULL
                THEN greatest(0, extract(epoch FROM a.occurred_at - s.created_at) * 1000)
           END::float8 AS lag_ms
      FROM audit_log a
      LEFT JOIN sync_queue s ON a.event_type = 'sync_succeeded' AND s.id = a.sync_queue_id
     WHERE a.id > %(lo)s AND (%(hi)s::bigint IS NULL OR a.id <= %(hi)s)
)
SELECT t.event_type,
       CASE WHEN t.event_type = 'dead_lettered'
            THEN split_part(t.details ->> 'reason', ':', 1) END AS reason,
       -- Over negated bounds: the number of bounds >= the time (Prometheus buckets are `le`).
       width_bucket(-t.duration_ms, %(neg_bounds_ms)s::float8[]) AS bucket,
       t.duration_ms IS NOT NULL AS timed,
       t.lane,
       width_bucket(-t.lag_ms, %(neg_lag_bounds_ms)s::float8[]) AS lag_bucket,
       count(*)::bigint AS n,
       coalesce(sum(t.duration_ms), 0)::float8 AS duration_ms,
       coalesce(sum(t.lag_ms), 0)::float8 AS lag_ms
  FROM timed t
 GROUP BY 1, 2, 3, 4, 5, 6;

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

-- name: dashboard_counts
-- The overview's numbers, of the caller's mentors only: per verdict, open dead letters, the
-- oldest operation still waiting.
SELECT verdicts, open_dead_letters, oldest_pending_at FROM dashboard_counts();

-- name: dashboard_hourly
-- The overview's chart: the caller's mentors' calls per hour by outcome, and the sync lag.
SELECT hour, succeeded, retried, throttled, dead_lettered, lag_p50_s, lag_max_s
  FROM dashboard_hourly(%(upto)s, %(hours)s);

-- name: dashboard_chapters
-- The chapters the caller may filter by (coordinated, or of an organisation they administer).
SELECT c.id, c.name FROM chapters c WHERE c.id IN (SELECT auth_visible_chapters())
 ORDER BY c.name, c.id;
