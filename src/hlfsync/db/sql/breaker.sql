-- name: breaker_read
-- The shared breaker, without a lock: the common, closed case needs nothing more.
SELECT state, consecutive_failures, opened_at, probe_started_at, paused_until, auth_failed,
       incident, hold_reason
  FROM circuit_breakers WHERE name = %(name)s;

-- name: breaker_lock
-- The breaker row under lock, for a read-decide-write by the pure state machine.
SELECT state, consecutive_failures, opened_at, probe_started_at, paused_until, auth_failed,
       incident, hold_reason
  FROM circuit_breakers WHERE name = %(name)s FOR UPDATE;

-- name: breaker_store
-- Store what the state machine decided; `incident` advances when the circuit opens from closed.
UPDATE circuit_breakers
   SET state = %(state)s, consecutive_failures = %(failures)s, opened_at = %(opened_at)s,
       probe_started_at = %(probe_started_at)s, paused_until = %(paused_until)s,
       auth_failed = %(auth_failed)s, incident = %(incident)s,
       hold_reason = CASE WHEN %(auth_failed)s THEN %(hold_reason)s END,
       last_error = coalesce(%(error)s, last_error), updated_at = %(now)s
 WHERE name = %(name)s;

-- name: breaker_notify
-- Tell every worker the breaker changed, so their local view is fresh within milliseconds.
SELECT pg_notify('hlfsync_breaker', %(name)s);

-- name: credential_failed
-- Record a failing credential check; returns the incident number and whether it is new.
INSERT INTO credential_health AS h (name, ok, checked_at, failing_since, incident, detail)
VALUES (%(name)s, false, %(now)s, %(now)s, 1, %(detail)s)
ON CONFLICT (name) DO UPDATE
   SET ok = false, checked_at = %(now)s, detail = %(detail)s,
       failing_since = coalesce(h.failing_since, %(now)s),
       incident = CASE WHEN h.ok THEN h.incident + 1 ELSE h.incident END
RETURNING incident, (xmax = 0 OR failing_since = %(now)s) AS new_incident;

-- name: credential_ok
-- Record a working credential check; the incident, if any, is over.
INSERT INTO credential_health AS h (name, ok, checked_at, detail)
VALUES (%(name)s, true, %(now)s, %(detail)s)
ON CONFLICT (name) DO UPDATE
   SET ok = true, checked_at = %(now)s, failing_since = NULL, detail = %(detail)s
RETURNING (SELECT NOT ok FROM credential_health WHERE name = %(name)s) AS recovered, h.incident;

-- name: audit_write_probe
-- The health check's write probe (a contact's listing written back as it was) is a real call to
-- Dynamics: one audit row, with its correlation id, for the mentor of that contact if any.
INSERT INTO audit_log (occurred_at, mentor_id, event_type, actor, details)
SELECT %(now)s, (SELECT m.id FROM peer_mentors m
                  WHERE m.dynamics_contact_id = %(contact_id)s::uuid),
       'health_write_probe', 'health_check',
       jsonb_build_object('correlation_id', %(correlation_id)s::text,
                          'contact_id', %(contact_id)s::text,
                          'verdict', %(verdict)s::text, 'detail', %(detail)s::text);
