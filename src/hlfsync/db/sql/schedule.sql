-- name: schedule_last_slots
-- The latest slot recorded per job: what a starting scheduler compares the due slot with. An
-- abandoned run does not count, so its slot is offered again while it is still the one due.
SELECT job, max(slot) AS slot FROM scheduled_runs WHERE status <> 'abandoned' GROUP BY job;

-- name: schedule_abandon
-- Runs whose worker stopped sending heartbeats (killed, machine lost): closed as `abandoned`,
-- so the slot can be taken over. Only one sweeper wins each row.
UPDATE scheduled_runs
   SET status = 'abandoned', finished_at = %(now)s,
       error = 'abandoned: no heartbeat from ' || coalesce(worker, 'unknown worker')
               || ' since ' || to_char(heartbeat_at AT TIME ZONE 'UTC',
                                       'YYYY-MM-DD"T"HH24:MI:SS"Z"')
 WHERE status = 'running' AND heartbeat_at < %(stale_before)s
RETURNING job, slot, worker;

-- name: schedule_claim
-- Claim one job's slot: the UNIQUE (job, slot) key lets exactly one worker win; others get no
-- row. An abandoned run of the same slot is taken over in place; of two takers, the second
-- finds the row running again and gets nothing.
INSERT INTO scheduled_runs AS r (job, slot, status, started_at, heartbeat_at, worker)
VALUES (%(job)s, %(slot)s, 'running', %(now)s, %(now)s, %(worker)s)
ON CONFLICT (job, slot) DO UPDATE
   SET status = 'running', started_at = EXCLUDED.started_at,
       heartbeat_at = EXCLUDED.heartbeat_at, worker = EXCLUDED.worker, finished_at = NULL,
       stats = '{}'::jsonb, error = NULL, attempts = r.attempts + 1
 WHERE r.status = 'abandoned'
RETURNING id, attempts;

-- name: schedule_heartbeat
-- A running job's proof of life; false once the run is no longer ours.
UPDATE scheduled_runs SET heartbeat_at = %(now)s
 WHERE id = %(id)s AND status = 'running' AND worker = %(worker)s;

-- name: schedule_finish
-- Record how a claimed run ended; guarded, so a run is finished once, by the worker running it.
UPDATE scheduled_runs
   SET status = %(status)s, finished_at = %(now)s, heartbeat_at = %(now)s,
       stats = %(stats)s, error = %(error)s
 WHERE id = %(id)s AND status = 'running' AND worker = %(worker)s;

-- name: schedule_record_manual
-- A run started by hand (the CLI) is recorded like a scheduled one, in its own slot (its
-- start), so `status` shows it beside them; a second run in the same instant is not recorded.
INSERT INTO scheduled_runs (job, slot, status, started_at, finished_at, worker, stats, error)
VALUES (%(job)s, %(slot)s, %(status)s, %(started)s, %(finished)s, %(worker)s, %(stats)s, %(error)s)
ON CONFLICT (job, slot) DO NOTHING;
