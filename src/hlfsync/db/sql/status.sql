-- name: queue_counts
-- Queue depth by status, for `status`, the dashboard and /metrics.
SELECT status, count(*)::int AS n FROM sync_queue GROUP BY status;

-- name: oldest_pending
-- The sync lag: how long the oldest waiting operation has waited.
SELECT min(created_at) AS oldest, count(*)::int AS n
  FROM sync_queue WHERE status IN ('pending', 'in_progress');

-- name: open_dead_letters
-- Dead letters nobody has handled yet.
SELECT count(*)::int AS n, min(created_at) AS oldest FROM dead_letter_queue WHERE status = 'open';

-- name: breaker_state
-- The shared circuit breaker and throttle pause.
SELECT name, state, consecutive_failures, opened_at, probe_started_at, paused_until, auth_failed,
       incident, last_error, updated_at, hold_reason
  FROM circuit_breakers ORDER BY name;

-- name: last_scheduled_runs
-- Each scheduled job's latest run.
SELECT DISTINCT ON (job) job, slot, status, started_at, finished_at, stats, error
  FROM scheduled_runs ORDER BY job, slot DESC;

-- name: credential_health
-- The last credential checks.
SELECT name, ok, checked_at, failing_since, detail FROM credential_health ORDER BY name;
