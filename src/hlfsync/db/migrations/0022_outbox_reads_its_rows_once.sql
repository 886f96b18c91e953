-- Why: since 0020 the outbox trigger ran four statements through EXECUTE, parsed and planned on
-- every call, so that the ones joining the statement's transition tables were planned for their
-- size. A person's status change paid for it: 0.94-1.01 ms in the database instead of
-- 0.74-0.95 ms (issue 13).
--
-- Only the first statement needs it: the one that joins `changed_new` to `changed_old`. It now
-- reads every changed row once, in mentor order, into arrays (and draws the queue ids of the
-- moved ones there, in that order, as before). The superseding UPDATE, the queue INSERT and the
-- audit INSERT read those arrays and join nothing but indexed tables by key, so a plan cached
-- for one row stays linear at fifty thousand: they are ordinary statements again, parsed once
-- per session. Behaviour is unchanged, row for row.

CREATE OR REPLACE FUNCTION peer_mentor_status_outbox() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp AS $$
DECLARE
    who          text := audit_actor();
    -- Bulk writers (the nightly expiry) say so; a person's change keeps the default, 0. The
    -- API roles cannot choose: what they change is a person's change.
    prio         smallint := CASE WHEN auth_is_api_caller() THEN 0
                                  ELSE coalesce(nullif(current_setting('hlfsync.priority', true),
                                                       ''), '0')::smallint END;
    -- Looked up once: called per row, it reads the catalogue each time (2 µs a row, five times
    -- what nextval itself costs).
    queue_seq    regclass := pg_get_serial_sequence('sync_queue', 'id')::regclass;
    -- The changed rows (status or reason), in mentor order; queue ids only for the moved ones.
    ids          uuid[];
    queue_ids    bigint[];
    old_status   text[];
    new_status   text[];
    old_reason   text[];
    new_reason   text[];
    contacts     uuid[];
BEGIN
    -- Through EXECUTE: planned for this statement's transition tables (one row or fifty
    -- thousand), never a plan cached from another statement's size. Queue ids are drawn in
    -- mentor order (the subquery's), so superseded rows can point at their successors.
    EXECUTE $q$
        SELECT array_agg(s.id),
               array_agg(CASE WHEN s.moved THEN nextval($1) END),
               array_agg(s.old_status), array_agg(s.new_status),
               array_agg(s.old_reason), array_agg(s.new_reason),
               array_agg(s.contact)
          FROM (SELECT n.id, (o.status = 'active') IS DISTINCT FROM (n.status = 'active') AS moved,
                       o.status AS old_status, n.status AS new_status,
                       o.status_reason AS old_reason, n.status_reason AS new_reason,
                       n.dynamics_contact_id AS contact
                  FROM changed_new n JOIN changed_old o ON o.id = n.id
                 WHERE o.status IS DISTINCT FROM n.status
                    OR o.status_reason IS DISTINCT FROM n.status_reason
                 ORDER BY n.id) AS s
    $q$ INTO ids, queue_ids, old_status, new_status, old_reason, new_reason, contacts
        USING queue_seq;

    IF ids IS NULL THEN
        RETURN NULL;
    END IF;

    IF EXISTS (SELECT 1 FROM unnest(queue_ids) AS q (id) WHERE q.id IS NOT NULL) THEN
        -- Desired state, not commands: the waiting operation, if any, is now moot. Before the
        -- insert, since a mentor has at most one pending operation (a unique index).
        UPDATE sync_queue q
           SET status = 'superseded', superseded_by = m.queued_id,
               finished_at = now(), updated_at = now()
          FROM unnest(ids, queue_ids) AS m (mentor_id, queued_id)
         WHERE m.queued_id IS NOT NULL
           AND q.mentor_id = m.mentor_id AND q.status = 'pending'
           -- By key: these mentors' pending rows, not every pending row in the queue.
           AND q.mentor_id = ANY (ids);

        INSERT INTO sync_queue (id, mentor_id, operation, payload_json, source, priority)
        OVERRIDING SYSTEM VALUE
        SELECT m.queued_id, m.mentor_id,
               CASE WHEN m.status = 'active' THEN 'restore' ELSE 'remove' END,
               jsonb_build_object('contact_id', m.contact,
                                  'listed', m.status = 'active',
                                  'status', m.status,
                                  'reason', m.reason,
                                  'changed_at', now()),
               'status_change', prio
          FROM unnest(ids, queue_ids, new_status, new_reason, contacts)
               AS m (mentor_id, queued_id, status, reason, contact)
         WHERE m.queued_id IS NOT NULL
         ORDER BY m.queued_id;

        PERFORM pg_notify('hlfsync_sync_queue',
                          (SELECT max(q.id) FROM unnest(queue_ids) AS q (id))::text);
    END IF;

    INSERT INTO audit_log (mentor_id, sync_queue_id, event_type, actor, details)
    SELECT m.mentor_id, m.queued_id,
           CASE WHEN m.old_status IS DISTINCT FROM m.new_status THEN 'status_changed'
                ELSE 'status_reason_changed' END,
           who,
           jsonb_build_object('old_status', m.old_status, 'new_status', m.new_status,
                              'reason', m.new_reason,
                              'old_reason', m.old_reason,
                              'operation', CASE WHEN m.queued_id IS NULL THEN NULL
                                                WHEN m.new_status = 'active' THEN 'restore'
                                                ELSE 'remove' END)
      FROM unnest(ids, queue_ids, old_status, new_status, old_reason, new_reason)
           AS m (mentor_id, queued_id, old_status, new_status, old_reason, new_reason)
     ORDER BY m.mentor_id;
    RETURN NULL;
END
$$;
