-- Why: four branches changed the schema side by side (security 0010, contract drift 0011,
-- alerts 0012, latency 0013) and two of their changes meet here.
--
-- * The outbox trigger: 0010 took the actor from audit_actor() and audited reason-only changes;
--   0013 wrote the operation's priority from `hlfsync.priority` but started from 0008's body,
--   so, applied after 0010, it undid 0010's attribution. This is 0010's function with 0013's
--   priority, and the API roles cannot pick a priority (a person's change is 0, always).
-- * Operators' notices: 0011 announces the end of a hold with a `hold_recovered` alert, and
--   0012 sends operators a "recovered" notice when a failing credential check passes. The
--   recovered alert is therefore not raised again as an incident of its own, and a contract
--   hold's end (a `contract_failure` incident) gets its recovered notice as an auth hold does.

CREATE OR REPLACE FUNCTION peer_mentor_status_outbox() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    who         text := audit_actor();
    -- Bulk writers (the nightly expiry) say so; a person's change keeps the default, 0. The
    -- API roles cannot choose: what they change is a person's change.
    prio        smallint := CASE WHEN auth_is_api_caller() THEN 0
                                 ELSE coalesce(nullif(current_setting('hlfsync.priority', true),
                                                      ''), '0')::smallint END;
    moved_ids   uuid[];
    queue_ids   bigint[];
BEGIN
    SELECT array_agg(s.id), array_agg(nextval(pg_get_serial_sequence('sync_queue', 'id')))
      INTO moved_ids, queue_ids
      FROM (SELECT n.id
              FROM changed_new n JOIN changed_old o ON o.id = n.id
             WHERE (o.status = 'active') IS DISTINCT FROM (n.status = 'active')
             ORDER BY n.id) AS s;

    IF moved_ids IS NOT NULL THEN
        UPDATE sync_queue q
           SET status = 'superseded', superseded_by = m.queued_id,
               finished_at = now(), updated_at = now()
          FROM unnest(moved_ids, queue_ids) AS m (mentor_id, queued_id)
         WHERE q.mentor_id = m.mentor_id AND q.status = 'pending';

        INSERT INTO sync_queue (id, mentor_id, operation, payload_json, source, priority)
        OVERRIDING SYSTEM VALUE
        SELECT m.queued_id, n.id,
               CASE WHEN n.status = 'active' THEN 'restore' ELSE 'remove' END,
               jsonb_build_object('contact_id', n.dynamics_contact_id,
                                  'listed', n.status = 'active',
                                  'status', n.status,
                                  'reason', n.status_reason,
                                  'changed_at', now()),
               'status_change', prio
          FROM unnest(moved_ids, queue_ids) AS m (mentor_id, queued_id)
          JOIN changed_new n ON n.id = m.mentor_id
         ORDER BY m.queued_id;

        PERFORM pg_notify('hlfsync_sync_queue', queue_ids[array_upper(queue_ids, 1)]::text);
    END IF;

    INSERT INTO audit_log (mentor_id, sync_queue_id, event_type, actor, details)
    SELECT n.id, m.queued_id,
           CASE WHEN o.status IS DISTINCT FROM n.status THEN 'status_changed'
                ELSE 'status_reason_changed' END,
           who,
           jsonb_build_object('old_status', o.status, 'new_status', n.status,
                              'reason', n.status_reason,
                              'old_reason', o.status_reason,
                              'operation', CASE WHEN m.queued_id IS NULL THEN NULL
                                                WHEN n.status = 'active' THEN 'restore'
                                                ELSE 'remove' END)
      FROM changed_new n
      JOIN changed_old o ON o.id = n.id
      LEFT JOIN unnest(moved_ids, queue_ids) AS m (mentor_id, queued_id) ON m.mentor_id = n.id
     WHERE o.status IS DISTINCT FROM n.status
        OR o.status_reason IS DISTINCT FROM n.status_reason
     ORDER BY n.id;
    RETURN NULL;
END
$$;


CREATE OR REPLACE FUNCTION public.operator_notice_for_alert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
    -- `hold_recovered` is the end of an incident, told by operator_notice_credentials_ok().
    IF NEW.mentor_id IS NULL AND NEW.kind <> 'hold_recovered' THEN
        INSERT INTO public.operator_notices
            (kind, incident_key, event, alert_id, details, next_attempt_at, created_at)
        VALUES (NEW.kind, NEW.incident_key, 'raised', NEW.id, NEW.details, NEW.created_at,
                NEW.created_at)
        ON CONFLICT (kind, incident_key, event) DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION public.operator_notice_credentials_ok() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
    IF NOT OLD.ok AND NEW.ok THEN
        -- Only the kind that raised a notice for this incident inserts (see the function).
        PERFORM public.operator_notice_recovered(
            kind, OLD.name || ':' || OLD.incident, NEW.checked_at,
            jsonb_build_object('check', NEW.name, 'detail', NEW.detail))
          FROM unnest(ARRAY['auth_failure', 'contract_failure']) AS kinds (kind);
    END IF;
    RETURN NULL;
END
$$;
