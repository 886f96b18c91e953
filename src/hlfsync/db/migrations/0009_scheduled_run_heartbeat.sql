-- Why: a worker killed during a scheduled run (SIGKILL, a lost machine) left its slot `running`
-- for ever, and the slot's unique key kept every other worker from running it: a nightly
-- expiry check could silently not happen. A running run now proves it is alive by a heartbeat;
-- one whose heartbeat stopped is marked `abandoned` by the next scheduler that looks, and that
-- slot is taken over (same row, `attempts` + 1) while it is still the one due.

ALTER TABLE scheduled_runs
    ADD COLUMN heartbeat_at timestamptz,
    ADD COLUMN attempts int NOT NULL DEFAULT 1 CHECK (attempts >= 1);

UPDATE scheduled_runs SET heartbeat_at = coalesce(finished_at, started_at);
ALTER TABLE scheduled_runs ALTER COLUMN heartbeat_at SET NOT NULL,
                           ALTER COLUMN heartbeat_at SET DEFAULT now();

ALTER TABLE scheduled_runs DROP CONSTRAINT scheduled_runs_status_check;
ALTER TABLE scheduled_runs ADD CONSTRAINT scheduled_runs_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'abandoned'));

-- The abandonment sweep looks only at running rows.
CREATE INDEX scheduled_runs_running_idx ON scheduled_runs (heartbeat_at) WHERE status = 'running';
