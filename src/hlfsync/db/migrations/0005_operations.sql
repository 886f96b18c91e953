-- Why: the manual and scheduled ways into the queue (force sync, reconciliation, dead-letter
-- re-queue, break-glass) must follow the same rules as the outbox trigger: desired state taken
-- from the mentor's status at this moment, the waiting operation superseded, an audit row, a
-- NOTIFY. One function each, so the CLI, the API and the scheduler cannot drift apart.

-- Queue a sync for each mentor (NULL = every mentor) that has a Dynamics contact. Returns the
-- new operations. Mentor rows are locked first, in id order, so a concurrent status change
-- (whose trigger holds the same lock) is serialised with this and no deadlock can form.
CREATE FUNCTION enqueue_sync(mentors uuid[], src text, prio int, who text)
RETURNS TABLE (mentor_id uuid, sync_queue_id bigint, operation text)
LANGUAGE plpgsql AS $$
DECLARE
    m_ids  uuid[];
    q_ids  bigint[];
BEGIN
    PERFORM 1 FROM peer_mentors p
     WHERE (mentors IS NULL OR p.id = ANY (mentors)) AND p.dynamics_contact_id IS NOT NULL
     ORDER BY p.id FOR UPDATE;
    SELECT array_agg(p.id ORDER BY p.id),
           array_agg(nextval(pg_get_serial_sequence('sync_queue', 'id')) ORDER BY p.id)
      INTO m_ids, q_ids
      FROM peer_mentors p
     WHERE (mentors IS NULL OR p.id = ANY (mentors)) AND p.dynamics_contact_id IS NOT NULL;
    IF m_ids IS NULL THEN
        RETURN;
    END IF;

    UPDATE sync_queue q
       SET status = 'superseded', superseded_by = t.qid, finished_at = now(), updated_at = now()
      FROM unnest(m_ids, q_ids) AS t (mid, qid)
     WHERE q.mentor_id = t.mid AND q.status = 'pending';

    INSERT INTO sync_queue (id, mentor_id, operation, payload_json, source, priority)
    OVERRIDING SYSTEM VALUE
    SELECT t.qid, p.id,
           CASE WHEN p.status = 'active' THEN 'restore' ELSE 'remove' END,
           jsonb_build_object('contact_id', p.dynamics_contact_id,
                              'listed', p.status = 'active',
                              'status', p.status,
                              'reason', p.status_reason,
                              'changed_at', now()),
           src, prio
      FROM unnest(m_ids, q_ids) AS t (mid, qid)
      JOIN peer_mentors p ON p.id = t.mid;

    INSERT INTO audit_log (mentor_id, sync_queue_id, event_type, actor, details)
    SELECT q.mentor_id, q.id, 'sync_requested', who,
           jsonb_build_object('source', src, 'operation', q.operation, 'priority', prio)
      FROM sync_queue q WHERE q.id = ANY (q_ids);

    PERFORM pg_notify('hlfsync_sync_queue', src);
    RETURN QUERY
        SELECT q.mentor_id, q.id, q.operation FROM sync_queue q WHERE q.id = ANY (q_ids)
         ORDER BY q.id;
END
$$;

-- Re-queue open dead letters: each becomes a fresh operation for its mentor's current desired
-- state, ahead of the routine queue. Returns the dead letters re-queued and their operations.
CREATE FUNCTION requeue_dead_letters(letters bigint[], who text)
RETURNS TABLE (dead_letter_id bigint, sync_queue_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    d record;
    queued bigint;
BEGIN
    FOR d IN
        SELECT l.id, l.mentor_id FROM dead_letter_queue l
         WHERE (letters IS NULL OR l.id = ANY (letters)) AND l.status = 'open'
         ORDER BY l.mentor_id, l.id FOR UPDATE
    LOOP
        SELECT e.sync_queue_id INTO queued
          FROM enqueue_sync(ARRAY[d.mentor_id], 'requeue', 10, who) e;
        IF queued IS NULL THEN
            CONTINUE;  -- the mentor lost its contact id; the letter stays open
        END IF;
        UPDATE dead_letter_queue
           SET status = 'requeued', requeued_as = queued, handled_by = who, handled_at = now(),
               updated_at = now()
         WHERE id = d.id;
        INSERT INTO audit_log (mentor_id, sync_queue_id, event_type, actor, details)
        VALUES (d.mentor_id, queued, 'dead_letter_requeued', who,
                jsonb_build_object('dead_letter_id', d.id));
        dead_letter_id := d.id;
        sync_queue_id := queued;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Close a dead letter by hand with a note saying what was done.
CREATE FUNCTION resolve_dead_letter(letter bigint, note text, who text)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    m uuid;
BEGIN
    IF note IS NULL OR length(btrim(note)) = 0 THEN
        RAISE EXCEPTION 'a resolution note is required' USING ERRCODE = 'check_violation';
    END IF;
    UPDATE dead_letter_queue
       SET status = 'resolved', resolution_note = note, handled_by = who, handled_at = now(),
           updated_at = now()
     WHERE id = letter AND status = 'open'
    RETURNING mentor_id INTO m;
    IF m IS NULL THEN
        RETURN false;
    END IF;
    INSERT INTO audit_log (mentor_id, event_type, actor, details)
    VALUES (m, 'dead_letter_resolved', who, jsonb_build_object('dead_letter_id', letter,
                                                               'note', note));
    RETURN true;
END
$$;
