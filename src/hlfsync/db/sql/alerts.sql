-- name: raise_mentor_alert
-- An alert about one mentor, for the coordinators (of the mentor's organisation) of the mentor's
-- chapters (the organisation's admins when the chapters have none), with one delivery per device, all in one statement.
-- ON CONFLICT makes it once per incident: a second raise of the same key does nothing.
WITH alert AS (
    INSERT INTO alerts (kind, incident_key, mentor_id, organization_id, payload, details, created_at)
    SELECT %(kind)s, %(key)s, m.id, m.organization_id, %(payload)s, %(details)s, %(now)s
      FROM peer_mentors m WHERE m.id = %(mentor)s
    ON CONFLICT (kind, incident_key) DO NOTHING
    RETURNING id, mentor_id, organization_id
), coordinators AS (
    -- Only the mentor's organisation's chapters and coordinators: a stray membership or
    -- coordination row across organisations must not push one organisation's alert to another.
    SELECT DISTINCT cc.user_id
      FROM alert a
      JOIN chapter_memberships cm ON cm.mentor_id = a.mentor_id
      JOIN chapters c ON c.id = cm.chapter_id AND c.organization_id = a.organization_id
      JOIN coordinator_chapters cc ON cc.chapter_id = cm.chapter_id
      JOIN app_users u ON u.id = cc.user_id AND u.organization_id = a.organization_id
), admins AS (
    SELECT oa.user_id FROM alert a JOIN organization_admins oa
        ON oa.organization_id = a.organization_id
     WHERE NOT EXISTS (SELECT 1 FROM coordinators)
), deliveries AS (
    INSERT INTO alert_deliveries (alert_id, user_id, device_token, next_attempt_at, created_at)
    SELECT a.id, t.user_id, t.token, %(now)s, %(now)s
      FROM alert a
      JOIN device_tokens t ON t.user_id IN (SELECT user_id FROM coordinators
                                             UNION SELECT user_id FROM admins)
    ON CONFLICT (alert_id, device_token) DO NOTHING
    RETURNING id
), notified AS (
    SELECT pg_notify('hlfsync_alerts', a.id::text) FROM alert a
)
SELECT a.id, (SELECT count(*) FROM deliveries)::int AS deliveries,
       (SELECT count(*) FROM notified)::int AS notified
  FROM alert a;

-- name: raise_admin_alert
-- An alert for the service's operators (breaker open, credentials failing): no organisation
-- (so `audience` is `operators`: no API role sees it, no organisation's phones get it; the
-- operators' channel picks it up); once per incident key.
WITH alert AS (
    INSERT INTO alerts (kind, incident_key, payload, details, created_at)
    VALUES (%(kind)s, %(key)s, %(payload)s, %(details)s, %(now)s)
    ON CONFLICT (kind, incident_key) DO NOTHING
    RETURNING id
), notified AS (
    SELECT pg_notify('hlfsync_alerts', a.id::text) FROM alert a
)
SELECT a.id, 0 AS deliveries, (SELECT count(*) FROM notified)::int AS notified
  FROM alert a;

-- name: release_expired_deliveries
-- Deliveries whose dispatcher died mid-push (their lease ran out) go back to pending exactly as
-- they were claimed (same due time, no attempt spent), for the claim below to take in order.
UPDATE alert_deliveries
   SET status = 'pending', locked_until = NULL
 WHERE status = 'in_progress' AND locked_until < %(now)s;

-- name: claim_deliveries
-- Due push deliveries, leased (a crashed dispatcher's are released after the lease, above); in
-- the order their alerts were raised (held ones keep their due time, so they come first). Read
-- from alert_deliveries_due_idx in that order: a claim reads its batch, not every due delivery.
WITH picked AS (
    SELECT d.id FROM alert_deliveries d
     WHERE d.status = 'pending' AND d.next_attempt_at <= %(now)s
     ORDER BY d.next_attempt_at, d.alert_id, d.id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
)
UPDATE alert_deliveries d
   SET status = 'in_progress', locked_until = %(now)s + %(lease)s * interval '1 second'
  FROM picked
 WHERE d.id = picked.id
RETURNING d.id, d.alert_id, d.user_id, d.device_token, d.attempt_count,
          (SELECT a.payload FROM alerts a WHERE a.id = d.alert_id) AS payload,
          (SELECT a.kind FROM alerts a WHERE a.id = d.alert_id) AS kind,
          (SELECT a.incident_key FROM alerts a WHERE a.id = d.alert_id) AS incident_key;

-- name: deliveries_delivered
-- Record the deliveries FCM accepted in one statement: one commit for a batch instead of one
-- per push (a first night sends 115,000, on the database that serves people's changes).
UPDATE alert_deliveries d
   SET status = 'delivered', attempt_count = d.attempt_count + 1, locked_until = NULL,
       last_error = NULL, message_name = m.message, finished_at = %(now)s
  FROM unnest(%(ids)s::bigint[], %(messages)s::text[]) AS m (id, message)
 WHERE d.id = m.id AND d.status = 'in_progress';

-- name: delivery_done
-- Record a delivery's outcome: failed (for good) or unregistered.
UPDATE alert_deliveries
   SET status = %(status)s, attempt_count = attempt_count + 1, locked_until = NULL,
       last_error = %(error)s, message_name = %(message)s, finished_at = %(now)s
 WHERE id = %(id)s AND status = 'in_progress';

-- name: delivery_retry
-- Try this delivery again later (FCM unavailable, internal error, 429).
UPDATE alert_deliveries
   SET status = 'pending', attempt_count = attempt_count + 1, locked_until = NULL,
       last_error = %(error)s, next_attempt_at = %(at)s
 WHERE id = %(id)s AND status = 'in_progress';

-- name: delivery_hold
-- The push channel itself was refused or unusable, not this message: back to pending exactly as
-- claimed (no attempt spent, same due time), so held deliveries later go out in their order.
UPDATE alert_deliveries
   SET status = 'pending', locked_until = NULL, last_error = %(error)s
 WHERE id = ANY(%(ids)s) AND status = 'in_progress';

-- name: forget_device_token
-- FCM says the app was uninstalled, the token rotated or it is not a valid token: stop sending.
DELETE FROM device_tokens WHERE token = %(token)s;

-- name: deliveries_not_configured
-- Without FCM settings, alerts are stored and logged only: close their deliveries as such.
UPDATE alert_deliveries
   SET status = 'not_configured', finished_at = %(now)s, locked_until = NULL
 WHERE status IN ('pending', 'in_progress')
RETURNING alert_id;

-- name: operator_notices_claim
-- Due operator notices, leased like deliveries; a recovery waits until its incident's raised
-- notice is out, so operators never read "recovered" before the alert.
WITH picked AS (
    SELECT n.id FROM operator_notices n
     WHERE ((n.status = 'pending' AND n.next_attempt_at <= %(now)s)
            OR (n.status = 'in_progress' AND n.locked_until < %(now)s))
       AND NOT (n.event = 'recovered' AND EXISTS (
                SELECT 1 FROM operator_notices r
                 WHERE r.kind = n.kind AND r.incident_key = n.incident_key
                   AND r.event = 'raised' AND r.status <> 'delivered'))
     ORDER BY n.next_attempt_at, n.id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
)
UPDATE operator_notices n
   SET status = 'in_progress', locked_until = %(now)s + %(lease)s * interval '1 second'
  FROM picked
 WHERE n.id = picked.id
RETURNING n.id, n.kind, n.incident_key, n.event, n.details, n.sent_to, n.attempt_count;

-- name: operator_notice_delivered
-- Every configured channel has the notice.
UPDATE operator_notices
   SET status = 'delivered', locked_until = NULL, sent_to = %(sent_to)s,
       attempt_count = attempt_count + 1, last_error = NULL, delivered_at = %(now)s
 WHERE id = %(id)s AND status = 'in_progress';

-- name: operator_notice_retry
-- A channel failed: keep who has it already, try the others again later.
UPDATE operator_notices
   SET status = 'pending', locked_until = NULL, sent_to = %(sent_to)s,
       attempt_count = attempt_count + 1, last_error = %(error)s, next_attempt_at = %(at)s
 WHERE id = %(id)s AND status = 'in_progress';

-- name: audit
-- One audit row, for events that are not part of a queue statement.
INSERT INTO audit_log (occurred_at, mentor_id, sync_queue_id, event_type, actor, details)
VALUES (%(now)s, %(mentor)s, %(queue_id)s, %(event)s, %(actor)s, %(details)s);
