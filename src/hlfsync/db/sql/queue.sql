-- name: claim
-- Take up to %(limit)s due operations of priority %(min_priority)s to %(max_priority)s (one
-- lane's), highest priority first (a person's change, 0, before bulk work, -10), then oldest,
-- skipping rows other workers hold and mentors with an operation already running (one mentor's
-- operations apply in order). The claim index leads with priority, so a claim of live work
-- alone stops at the bulk rows, and one of bulk work starts after the live ones.
WITH picked AS (
    SELECT q.id
      FROM sync_queue q
     WHERE q.status = 'pending'
       AND q.priority BETWEEN %(min_priority)s AND %(max_priority)s
       AND q.next_attempt_at <= %(due)s
       AND NOT EXISTS (SELECT 1 FROM sync_queue r
                        WHERE r.mentor_id = q.mentor_id AND r.status = 'in_progress')
     ORDER BY q.priority DESC, q.next_attempt_at, q.id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
)
UPDATE sync_queue q
   SET status = 'in_progress', locked_by = %(worker)s,
       locked_until = %(now)s + %(lease)s * interval '1 second',
       claim_count = q.claim_count + 1, updated_at = %(now)s
  FROM picked
 WHERE q.id = picked.id
RETURNING q.id, q.mentor_id, q.operation, q.payload_json, q.source, q.attempt_count,
          q.throttle_count, q.claim_count, q.created_at, q.priority;

-- name: claim_commits_without_waiting_for_the_flush
-- For the claim's transaction only: its commit does not wait for its WAL to reach the disk.
-- Lost in a crash, a claim leaves its row pending and the call, idempotent, is made again; while
-- it waits, a person's change waits with it, behind whatever flush is under way: 100-180 ms
-- each time a burst of bulk work makes PostgreSQL create and zero-fill a new WAL segment
-- (`IO WalInitWrite`, seen in bench.latency's expiry row).
SET LOCAL synchronous_commit = off;

-- name: next_due
-- When the earliest waiting operation of a lane becomes due, so an idle worker sleeps exactly
-- that long (a lane waking for the other's work would find nothing to claim, again and again).
-- A loose scan of the claim index (priority DESC, next_attempt_at, id): the lane's priorities
-- one after another, each the next lower one, and under each the first entry is its earliest.
-- A lane has a few priorities and may have tens of thousands of waiting operations: min() over
-- the range read every one of them (49,000 on a first night, 35 ms a call).
WITH RECURSIVE priorities (priority) AS (
    (SELECT priority FROM sync_queue
      WHERE status = 'pending' AND priority BETWEEN %(min_priority)s AND %(max_priority)s
      ORDER BY priority DESC LIMIT 1)
    UNION ALL
    SELECT (SELECT s.priority FROM sync_queue s
             WHERE s.status = 'pending'
               AND s.priority < p.priority AND s.priority >= %(min_priority)s
             ORDER BY s.priority DESC LIMIT 1)
      FROM priorities p
     WHERE p.priority IS NOT NULL
)
SELECT min((SELECT s.next_attempt_at FROM sync_queue s
             WHERE s.status = 'pending' AND s.priority = p.priority
             ORDER BY s.next_attempt_at LIMIT 1))
  FROM priorities p
 WHERE p.priority IS NOT NULL;

-- name: succeed_many
-- Record successes in one statement (guarded: only the holder of each claim may), audit them,
-- and reset the breaker's failure count. Successes finishing together commit together: one
-- round trip and one WAL flush for the lot, which is what lets throughput follow concurrency.
-- The reset is `core.breaker.on_success` for a closed circuit, written here so a success costs
-- no breaker lock; every other success goes through the breaker (`success_closes`).
-- tests/integration/db/test_breaker_store.py holds the two together.
WITH input AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(claims)s::int[], %(at)s::timestamptz[],
                         %(durations)s::float8[], %(statuses)s::int[], %(correlations)s::text[])
           AS t (id, claim, at, duration_ms, http_status, correlation)
), done AS (
    UPDATE sync_queue q
       SET status = 'succeeded', attempt_count = q.attempt_count + 1, locked_by = NULL,
           locked_until = NULL, last_error = NULL, finished_at = i.at, updated_at = i.at
      FROM input i
     WHERE q.id = i.id AND q.status = 'in_progress' AND q.claim_count = i.claim
    RETURNING q.id, q.mentor_id, q.operation, q.attempt_count, i.at, i.duration_ms,
              i.http_status, i.correlation
), audited AS (
    INSERT INTO audit_log (occurred_at, mentor_id, sync_queue_id, event_type, actor, details)
    SELECT at, mentor_id, id, 'sync_succeeded', %(actor)s,
           jsonb_build_object('operation', operation, 'attempt', attempt_count,
                              'duration_ms', duration_ms, 'correlation_id', correlation,
                              'http_status', http_status)
      FROM done
), reset AS (
    UPDATE circuit_breakers SET consecutive_failures = 0, updated_at = now()
     WHERE name = 'dynamics' AND state = 'closed' AND consecutive_failures > 0
       AND EXISTS (SELECT 1 FROM done)
)
SELECT id FROM done;

-- name: retry_later
-- Back to pending for another try at %(at)s. Spends an attempt unless the call was throttled.
-- A newer operation that arrived meanwhile supersedes this one instead (desired state).
WITH newer AS (
    SELECT id FROM sync_queue
     WHERE mentor_id = %(mentor)s AND status = 'pending' AND id > %(id)s
     ORDER BY id DESC LIMIT 1
), moved AS (
    UPDATE sync_queue q
       SET status = CASE WHEN n.id IS NULL THEN 'pending' ELSE 'superseded' END,
           superseded_by = n.id,
           finished_at = CASE WHEN n.id IS NULL THEN NULL ELSE %(now)s::timestamptz END,
           attempt_count = q.attempt_count + %(spent)s,
           throttle_count = q.throttle_count + %(throttled)s,
           next_attempt_at = %(at)s, last_error = %(error)s,
           locked_by = NULL, locked_until = NULL, updated_at = %(now)s
      FROM (SELECT 1) one LEFT JOIN newer n ON true
     WHERE q.id = %(id)s AND q.status = 'in_progress' AND q.claim_count = %(claim)s
    RETURNING q.id, q.mentor_id, q.operation, q.attempt_count, q.status
), audited AS (
    INSERT INTO audit_log (occurred_at, mentor_id, sync_queue_id, event_type, actor, details)
    SELECT %(now)s, mentor_id, id, %(event)s, %(actor)s,
           jsonb_build_object('operation', operation, 'attempt', attempt_count,
                              'error', %(error)s::text, 'next_attempt_at', %(at)s::timestamptz,
                              'delay_s', %(delay_s)s::float8, 'duration_ms', %(duration_ms)s::float8,
                              'correlation_id', %(correlation)s::text, 'http_status', %(http_status)s::int,
                              'superseded', status = 'superseded')
      FROM moved
)
SELECT count(*)::int FROM moved;

-- name: release
-- Give the operation back untouched (no attempt spent): the breaker was open, a probe found the
-- outage still on, or credentials failed. It runs again once calls are allowed. A newer waiting
-- operation for the mentor makes this one moot (superseded). When a call was made (`event` is
-- given), it is audited like any other.
WITH newer AS (
    SELECT max(id) AS id FROM sync_queue
     WHERE mentor_id = %(mentor)s AND status = 'pending' AND id > %(id)s
), moved AS (
    UPDATE sync_queue q
       SET status = CASE WHEN n.id IS NULL THEN 'pending' ELSE 'superseded' END,
           superseded_by = n.id,
           finished_at = CASE WHEN n.id IS NULL THEN NULL ELSE %(now)s::timestamptz END,
           next_attempt_at = greatest(q.next_attempt_at, %(at)s), last_error = %(error)s,
           locked_by = NULL, locked_until = NULL, updated_at = %(now)s
      FROM newer n
     WHERE q.id = %(id)s AND q.status = 'in_progress' AND q.claim_count = %(claim)s
    RETURNING q.id, q.mentor_id, q.operation, q.attempt_count
), audited AS (
    INSERT INTO audit_log (occurred_at, mentor_id, sync_queue_id, event_type, actor, details)
    SELECT %(now)s, mentor_id, id, %(event)s, %(actor)s,
           jsonb_build_object('operation', operation, 'attempt', attempt_count,
                              'error', %(error)s::text, 'next_attempt_at', %(at)s::timestamptz,
                              'duration_ms', %(duration_ms)s::float8,
                              'correlation_id', %(correlation)s::text,
                              'http_status', %(http_status)s::int)
      FROM moved WHERE %(event)s::text IS NOT NULL
)
SELECT count(*)::int FROM moved;

-- name: dead_letter
-- Move the operation to the dead-letter queue with its reason, payload and attempt count.
WITH moved AS (
    UPDATE sync_queue
       SET status = 'dead_lettered', attempt_count = attempt_count + %(spent)s,
           last_error = %(reason)s, locked_by = NULL, locked_until = NULL,
           finished_at = %(now)s, updated_at = %(now)s
     WHERE id = %(id)s AND status = 'in_progress' AND claim_count = %(claim)s
    RETURNING id, mentor_id, operation, payload_json, attempt_count
), letter AS (
    INSERT INTO dead_letter_queue (sync_queue_id, mentor_id, operation_type, payload_json,
                                   failure_reason, attempt_count, created_at, updated_at)
    SELECT id, mentor_id, operation, payload_json, %(reason)s, attempt_count, %(now)s, %(now)s
      FROM moved
    RETURNING id, sync_queue_id, mentor_id, operation_type, attempt_count
), audited AS (
    INSERT INTO audit_log (occurred_at, mentor_id, sync_queue_id, event_type, actor, details)
    SELECT %(now)s, mentor_id, sync_queue_id, 'dead_lettered', %(actor)s,
           jsonb_build_object('operation', operation_type, 'attempt', attempt_count,
                              'reason', %(reason)s::text, 'dead_letter_id', id,
                              'duration_ms', %(duration_ms)s::float8, 'correlation_id', %(correlation)s::text,
                              'http_status', %(http_status)s::int)
      FROM letter
)
SELECT id, mentor_id, operation_type, attempt_count FROM letter;

-- name: rescue_expired_leases
-- Operations whose worker died mid-call: the call may have happened, so it counts as an
-- attempt (a poison operation that kills workers cannot loop forever); back to pending.
WITH expired AS (
    SELECT id FROM sync_queue
     WHERE status = 'in_progress' AND locked_until < %(now)s
     ORDER BY locked_until LIMIT 500
       FOR UPDATE SKIP LOCKED
), moved AS (
    UPDATE sync_queue q
       SET status = 'pending', attempt_count = q.attempt_count + 1,
           last_error = 'lease expired: worker ' || coalesce(q.locked_by, '?') || ' vanished mid-call',
           locked_by = NULL, locked_until = NULL, next_attempt_at = %(now)s, updated_at = %(now)s
      FROM expired e
     WHERE q.id = e.id
       AND NOT EXISTS (SELECT 1 FROM sync_queue n WHERE n.mentor_id = q.mentor_id
                          AND n.status = 'pending')
    RETURNING q.id, q.mentor_id, q.operation, q.attempt_count, q.claim_count
), superseded AS (
    UPDATE sync_queue q
       SET status = 'superseded', locked_by = NULL, locked_until = NULL,
           finished_at = %(now)s, updated_at = %(now)s,
           superseded_by = (SELECT max(n.id) FROM sync_queue n
                             WHERE n.mentor_id = q.mentor_id AND n.status = 'pending')
      FROM expired e
     WHERE q.id = e.id
       AND EXISTS (SELECT 1 FROM sync_queue n WHERE n.mentor_id = q.mentor_id
                      AND n.status = 'pending')
    RETURNING q.id, q.mentor_id, q.operation, q.attempt_count, q.claim_count
), audited AS (
    INSERT INTO audit_log (occurred_at, mentor_id, sync_queue_id, event_type, actor, details)
    SELECT %(now)s, mentor_id, id, 'lease_expired', %(actor)s,
           jsonb_build_object('operation', operation, 'attempt', attempt_count,
                              'correlation_id', 'hlfsync-' || id || '-' || claim_count)
      FROM (SELECT * FROM moved UNION ALL SELECT * FROM superseded) r
)
SELECT (SELECT count(*) FROM moved)::int AS rescued, (SELECT count(*) FROM superseded)::int AS superseded;

-- name: enqueue
-- Queue a sync of each given mentor to the state its status asks for now (desired state),
-- superseding what waits. Used by force-sync, reconciliation, re-queues and break-glass.
SELECT enqueue_sync(%(mentors)s::uuid[], %(source)s, %(priority)s, %(actor)s) AS id;

-- name: lock_mentor
-- Wait out a status change in flight for this mentor (its UPDATE holds the row), so the
-- statement that follows sees the operation that change queued and never makes a second one
-- wait beside it (which the one-pending-per-mentor index would refuse, failing the change).
SELECT 1 FROM peer_mentors WHERE id = %(mentor)s FOR SHARE;

-- name: lock_mentors_with_expired_leases
-- The same for every mentor the rescuer is about to touch, in id order (no deadlock between
-- rescuers and enqueue_sync, which locks in the same order).
SELECT 1 FROM peer_mentors
 WHERE id IN (SELECT mentor_id FROM sync_queue
               WHERE status = 'in_progress' AND locked_until < %(now)s)
 ORDER BY id FOR SHARE;

-- name: pending_count
-- How many operations wait: break-glass's progress bar total (the rest are in flight or done).
SELECT count(*) FROM sync_queue WHERE status = 'pending';

-- name: bulk_lane_take
-- Whether this session now runs the bulk lane: one worker process at a time does (a session
-- advisory lock, released when its connection closes), so the night's bulk calls keep one
-- worker's share of Dynamics however many workers run.
SELECT pg_try_advisory_lock(%(key)s);
