-- Why: 0011 gives a held `unlinked` operation its contact id when the mentor is linked, but only
-- while the operation is `pending`. Linked while a worker held it (`in_progress`), the worker
-- put it back as it had read it (no contact id) and the hourly recheck held it again, for good.
-- The payload of an operation in flight is now filled in too; the worker's release leaves the
-- payload as the row has it, so the next recheck sends it. Nothing else changes.

CREATE OR REPLACE FUNCTION public.sync_queue_link_contact() RETURNS trigger
LANGUAGE plpgsql SET search_path = '' AS $$
BEGIN
    UPDATE public.sync_queue
       SET payload_json = jsonb_set(payload_json, '{contact_id}',
                                    to_jsonb(NEW.dynamics_contact_id)),
           -- In flight, the worker's release sets the time; a pending one runs at once.
           next_attempt_at = CASE WHEN status = 'pending' THEN now() ELSE next_attempt_at END,
           updated_at = now()
     WHERE mentor_id = NEW.id AND status IN ('pending', 'in_progress');
    RETURN NULL;
END
$$;
