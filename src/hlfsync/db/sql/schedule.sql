-- name: schedule_last_slots
-- The latest slot recorded per job: what a starting scheduler compares the due slot with.
SELECT job, max(slot) AS slot FROM scheduled_runs GROUP BY job;

-- name: schedule_claim
-- Claim one job's slot: the UNIQUE (job, slot) key lets exactly one worker win; others get no row.
INSERT INTO scheduled_runs (job, slot, status, started_at, worker)
VALUES (%(job)s, %(slot)s, 'running', coalesce(%(now)s::timestamptz, now()), %(worker)s)
ON CONFLICT (job, slot) DO NOTHING
RETURNING id;

-- name: schedule_finish
-- Record how a claimed run ended; guarded, so a run is finished once.
UPDATE scheduled_runs
   SET status = %(status)s, finished_at = coalesce(%(now)s::timestamptz, now()),
       stats = %(stats)s, error = %(error)s
 WHERE id = %(id)s AND status = 'running';
