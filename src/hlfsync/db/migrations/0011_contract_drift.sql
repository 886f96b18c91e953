-- 0011: contract drift (issue 14). A broken contract (an unknown field or entity set, an
-- endpoint gone, TLS or host) must hold every operation the way failing credentials do, with one
-- administrator alert per incident and one "recovered" notice, never thousands of dead letters.
-- The breaker row says why it is held; a mentor may be addressed by an alternate key fed by a
-- column of its own; and a mentor that gains a contact id wakes its held operation at once.

ALTER TABLE alerts DROP CONSTRAINT alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check
    CHECK (kind IN ('sync_failure', 'breaker_open', 'auth_failure', 'cert_reminder',
                    'cert_paused', 'cert_restored', 'compensation',
                    'contract_failure', 'hold_recovered'));

-- Why a held circuit (auth_failed) is held: failing credentials or a broken contract.
ALTER TABLE circuit_breakers
    ADD COLUMN hold_reason text CHECK (hold_reason IS NULL OR hold_reason IN ('auth', 'contract'));

-- A value Dynamics knows the contact by (an alternate key such as a mentor number), for mentors
-- whose contact GUID is not known; HLFSYNC_DYNAMICS_ALTERNATE_KEY_COLUMN may name another column.
ALTER TABLE peer_mentors
    ADD COLUMN mentor_number text UNIQUE
        CHECK (mentor_number IS NULL OR length(mentor_number) BETWEEN 1 AND 100);

-- A held unlinked operation (no contact id) runs as soon as the mentor is linked.
CREATE FUNCTION public.sync_queue_link_contact() RETURNS trigger
LANGUAGE plpgsql SET search_path = '' AS $$
BEGIN
    UPDATE public.sync_queue
       SET payload_json = jsonb_set(payload_json, '{contact_id}',
                                    to_jsonb(NEW.dynamics_contact_id)),
           next_attempt_at = now(), updated_at = now()
     WHERE mentor_id = NEW.id AND status = 'pending';
    RETURN NULL;
END
$$;

CREATE TRIGGER peer_mentors_linked
    AFTER UPDATE OF dynamics_contact_id ON peer_mentors
    FOR EACH ROW
    WHEN (NEW.dynamics_contact_id IS NOT NULL
          AND OLD.dynamics_contact_id IS DISTINCT FROM NEW.dynamics_contact_id)
    EXECUTE FUNCTION public.sync_queue_link_contact();
