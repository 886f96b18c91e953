-- Why: the transactional outbox. A status change and its sync operation commit together or not
-- at all, so no change can be committed without its operation; NOTIFY (delivered at commit)
-- wakes a worker at once instead of at its next poll.
--
-- Writers may say why and who through the row (`status_reason`) or transaction-local settings:
--   SELECT set_config('hlfsync.reason', 'certification_expired', true);
--   SELECT set_config('hlfsync.actor', 'expiry-check', true);
-- Without them the actor is the JWT subject (auth.uid()) or the database user.

CREATE FUNCTION peer_mentor_status_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.status_changed_at := now();
    -- A status change that does not say why must not inherit the previous change's reason.
    IF NEW.status_reason IS NOT DISTINCT FROM OLD.status_reason THEN
        NEW.status_reason := nullif(current_setting('hlfsync.reason', true), '');
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER peer_mentors_status_stamp
    BEFORE UPDATE OF status ON peer_mentors
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION peer_mentor_status_stamp();

CREATE FUNCTION peer_mentor_status_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was_listed  boolean := OLD.status = 'active';
    is_listed   boolean := NEW.status = 'active';
    who         text := coalesce(nullif(current_setting('hlfsync.actor', true), ''),
                                 auth.uid()::text, session_user::text);
    op          text;
    queued_id   bigint;
BEGIN
    IF was_listed IS DISTINCT FROM is_listed THEN
        op := CASE WHEN is_listed THEN 'restore' ELSE 'remove' END;
        queued_id := nextval(pg_get_serial_sequence('sync_queue', 'id'));
        -- Desired state, not commands: the waiting operation, if any, is now moot.
        UPDATE sync_queue
           SET status = 'superseded', superseded_by = queued_id,
               finished_at = now(), updated_at = now()
         WHERE mentor_id = NEW.id AND status = 'pending';
        INSERT INTO sync_queue (id, mentor_id, operation, payload_json, source)
        OVERRIDING SYSTEM VALUE
        VALUES (queued_id, NEW.id, op,
                jsonb_build_object('contact_id', NEW.dynamics_contact_id,
                                   'listed', is_listed,
                                   'status', NEW.status,
                                   'reason', NEW.status_reason,
                                   'changed_at', now()),
                'status_change');
        PERFORM pg_notify('hlfsync_sync_queue', queued_id::text);
    END IF;
    INSERT INTO audit_log (mentor_id, sync_queue_id, event_type, actor, details)
    VALUES (NEW.id, queued_id, 'status_changed', who,
            jsonb_build_object('old_status', OLD.status, 'new_status', NEW.status,
                               'reason', NEW.status_reason, 'operation', op));
    RETURN NULL;
END
$$;

CREATE TRIGGER peer_mentors_status_outbox
    AFTER UPDATE OF status ON peer_mentors
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION peer_mentor_status_outbox();
