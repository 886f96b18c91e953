-- Why: everything stateful about syncing lives here, so worker processes hold nothing of their
-- own: the queue, dead letters, the audit trail, the shared circuit breaker, credential health,
-- alerts with their deliveries, and the record of scheduled runs.

CREATE TABLE sync_queue (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- RESTRICT: a mentor with sync history is never deleted by accident, and history never is.
    mentor_id        uuid NOT NULL REFERENCES peer_mentors (id) ON DELETE RESTRICT,
    operation        text NOT NULL CHECK (operation IN ('remove', 'restore')),
    payload_json     jsonb NOT NULL CHECK (jsonb_typeof(payload_json) = 'object'),
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'in_progress', 'succeeded', 'dead_lettered',
                                       'superseded')),
    source           text NOT NULL DEFAULT 'status_change'
                     CHECK (source IN ('status_change', 'reconcile', 'force', 'requeue',
                                       'break_glass')),
    -- Higher runs first: force-sync and re-queues go ahead of the routine queue.
    priority         smallint NOT NULL DEFAULT 0,
    -- Calls made to Dynamics (4 when the default 3 retries are spent). Throttled calls and
    -- calls refused for credentials are not failures and are counted apart.
    attempt_count    int NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
    throttle_count   int NOT NULL DEFAULT 0 CHECK (throttle_count >= 0),
    claim_count      int NOT NULL DEFAULT 0 CHECK (claim_count >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    locked_by        text,
    locked_until     timestamptz,
    last_error       text,
    superseded_by    bigint REFERENCES sync_queue (id) DEFERRABLE INITIALLY DEFERRED,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    CONSTRAINT sync_queue_finished_iff_terminal
        CHECK ((status IN ('succeeded', 'dead_lettered', 'superseded')) = (finished_at IS NOT NULL)),
    CONSTRAINT sync_queue_leased_iff_in_progress
        CHECK ((status = 'in_progress') = (locked_until IS NOT NULL))
);
-- The claim: due pending operations, highest priority first, oldest first.
CREATE INDEX sync_queue_claim_idx ON sync_queue (priority DESC, next_attempt_at, id)
    WHERE status = 'pending';
-- The rescuer: leases that ran out.
CREATE INDEX sync_queue_lease_idx ON sync_queue (locked_until) WHERE status = 'in_progress';
-- Per mentor, at most one operation waits and at most one runs: a newer operation supersedes
-- the waiting one, and one mentor's operations apply in order.
CREATE UNIQUE INDEX sync_queue_one_pending_per_mentor ON sync_queue (mentor_id)
    WHERE status = 'pending';
CREATE UNIQUE INDEX sync_queue_one_running_per_mentor ON sync_queue (mentor_id)
    WHERE status = 'in_progress';
CREATE INDEX sync_queue_mentor_idx ON sync_queue (mentor_id, id DESC);
CREATE INDEX sync_queue_status_idx ON sync_queue (status);

CREATE TABLE dead_letter_queue (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sync_queue_id    bigint NOT NULL UNIQUE REFERENCES sync_queue (id),
    mentor_id        uuid NOT NULL,
    operation_type   text NOT NULL CHECK (operation_type IN ('remove', 'restore')),
    payload_json     jsonb NOT NULL,
    failure_reason   text NOT NULL
                     CHECK (failure_reason LIKE 'retries\_exhausted%'
                         OR failure_reason LIKE 'requires\_investigation%'),
    attempt_count    int NOT NULL CHECK (attempt_count >= 0),
    status           text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'requeued', 'resolved')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    requeued_as      bigint REFERENCES sync_queue (id),
    handled_by       text,
    handled_at       timestamptz,
    resolution_note  text,
    CONSTRAINT dead_letter_requeued_has_target
        CHECK ((status = 'requeued') = (requeued_as IS NOT NULL)),
    CONSTRAINT dead_letter_resolved_has_note
        CHECK (status <> 'resolved' OR length(btrim(coalesce(resolution_note, ''))) > 0)
);
CREATE INDEX dead_letter_open_idx ON dead_letter_queue (created_at) WHERE status = 'open';
CREATE INDEX dead_letter_mentor_idx ON dead_letter_queue (mentor_id);

-- Dead letters are evidence: never deleted.
CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER dead_letter_queue_no_delete BEFORE DELETE ON dead_letter_queue
    FOR EACH ROW EXECUTE FUNCTION refuse_delete();
CREATE TRIGGER dead_letter_queue_no_truncate BEFORE TRUNCATE ON dead_letter_queue
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_delete();

-- Every attempt, outcome, transition, breaker change, reminder and manual action. The database
-- itself refuses UPDATE, DELETE and TRUNCATE, whoever asks, superusers included.
CREATE TABLE audit_log (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at    timestamptz NOT NULL DEFAULT now(),
    mentor_id      uuid,
    sync_queue_id  bigint,
    event_type     text NOT NULL CHECK (length(event_type) BETWEEN 1 AND 64),
    actor          text NOT NULL DEFAULT 'system',
    details        jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(details) = 'object')
);
CREATE INDEX audit_log_mentor_idx ON audit_log (mentor_id, id) WHERE mentor_id IS NOT NULL;
CREATE INDEX audit_log_event_idx ON audit_log (event_type, occurred_at);
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION refuse_delete();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_delete();

-- The breaker shared by every worker. Decisions compare these timestamps with the clock, so a
-- restart changes nothing. `paused_until` is the shared throttle pause (429 Retry-After).
CREATE TABLE circuit_breakers (
    name                  text PRIMARY KEY,
    state                 text NOT NULL DEFAULT 'closed'
                          CHECK (state IN ('closed', 'open', 'half_open')),
    consecutive_failures  int NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    opened_at             timestamptz,
    probe_started_at      timestamptz,
    paused_until          timestamptz,
    auth_failed           boolean NOT NULL DEFAULT false,
    -- Bumped each time the circuit opens from closed: the key that deduplicates its alert.
    incident              int NOT NULL DEFAULT 0 CHECK (incident >= 0),
    last_error            text,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT breaker_open_has_time CHECK (state = 'closed' OR opened_at IS NOT NULL),
    CONSTRAINT breaker_probe_only_half_open
        CHECK (state = 'half_open' OR probe_started_at IS NULL)
);
INSERT INTO circuit_breakers (name) VALUES ('dynamics');

-- The last credential check against each remote system (token + WhoAmI for Dynamics).
CREATE TABLE credential_health (
    name           text PRIMARY KEY,
    ok             boolean NOT NULL,
    checked_at     timestamptz NOT NULL DEFAULT now(),
    failing_since  timestamptz,
    incident       int NOT NULL DEFAULT 0 CHECK (incident >= 0),
    detail         text
);

-- An alert is a row first, then deliveries. (kind, incident_key) deduplicates per incident.
CREATE TABLE alerts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text NOT NULL CHECK (kind IN ('sync_failure', 'breaker_open', 'auth_failure',
                                                   'cert_reminder', 'cert_paused', 'cert_restored',
                                                   'compensation')),
    incident_key     text NOT NULL,
    mentor_id        uuid,
    organization_id  uuid,
    -- The push data, exactly as sent: minimal, string values, no names, no secrets.
    payload          jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    -- What the API shows: the reason, counts, links. Never a secret.
    details          jsonb NOT NULL DEFAULT '{}'::jsonb,
    status           text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, incident_key)
);
CREATE INDEX alerts_mentor_idx ON alerts (mentor_id, id) WHERE mentor_id IS NOT NULL;

-- One row per alert and device: the unique key keeps a crash or a second worker from creating
-- a second delivery; a retry reuses the row.
CREATE TABLE alert_deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id         bigint NOT NULL REFERENCES alerts (id),
    user_id          uuid NOT NULL,
    device_token     text NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'in_progress', 'delivered', 'failed',
                                       'unregistered', 'not_configured')),
    attempt_count    int NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    locked_until     timestamptz,
    last_error       text,
    message_name     text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    UNIQUE (alert_id, device_token),
    CONSTRAINT delivery_leased_iff_in_progress
        CHECK ((status = 'in_progress') = (locked_until IS NOT NULL))
);
CREATE INDEX alert_deliveries_due_idx ON alert_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX alert_deliveries_lease_idx ON alert_deliveries (locked_until)
    WHERE status = 'in_progress';

-- One row per scheduled job and slot: the unique key makes each slot run once across workers.
CREATE TABLE scheduled_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job          text NOT NULL CHECK (job IN ('expiry_check', 'reconcile', 'health_check',
                                              'compensation')),
    slot         timestamptz NOT NULL,
    status       text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed')),
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    worker       text,
    stats        jsonb NOT NULL DEFAULT '{}'::jsonb,
    error        text,
    UNIQUE (job, slot),
    CONSTRAINT scheduled_run_finished_iff_done
        CHECK ((status = 'running') = (finished_at IS NULL))
);
CREATE INDEX scheduled_runs_job_idx ON scheduled_runs (job, slot DESC);
