-- Why: the outbox trigger of 0004 ran once per changed row, three statements each. That is
-- nothing for one change, but a statement that changes many mentors at once (the first expiry
-- check after installation or a long outage pauses tens of thousands) paid about 0.3 ms per
-- mentor, 14-21 s for 50,000. Run once per statement over its transition tables, the same work
-- is four set-based statements whatever the number of rows.
--
-- Behaviour is that of 0004, row for row: each change of listing queues exactly one operation,
-- superseding the mentor's waiting one; each change of status writes one `status_changed` audit
-- row (old status, new status, reason, actor); one NOTIFY per statement, delivered at commit,
-- carries the newest operation's id.
--
-- A trigger with transition tables cannot name columns (`UPDATE OF status`), so it fires for
-- every UPDATE of peer_mentors and finds the status changes itself: a join of two in-memory
-- tables of the rows that statement touched.

DROP TRIGGER peer_mentors_status_outbox ON peer_mentors;
DROP FUNCTION peer_mentor_status_outbox();

-- Planned for the statement at hand: a plan cached from a one-row change (or from when
-- sync_queue was nearly empty) must not be reused for fifty thousand.
-- SECURITY DEFINER, as 0007 made the function it replaces: a status change by an
-- `authenticated` user (row-level security) must still queue its sync and write its audit row.
CREATE FUNCTION peer_mentor_status_outbox() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    who         text := coalesce(nullif(current_setting('hlfsync.actor', true), ''),
                                 auth.uid()::text, session_user::text);
    moved_ids   uuid[];
    queue_ids   bigint[];
BEGIN
    -- Ids drawn first, in mentor order, so the superseded rows can point at their successors.
    SELECT array_agg(s.id), array_agg(nextval(pg_get_serial_sequence('sync_queue', 'id')))
      INTO moved_ids, queue_ids
      FROM (SELECT n.id
              FROM changed_new n JOIN changed_old o ON o.id = n.id
             WHERE (o.status = 'active') IS DISTINCT FROM (n.status = 'active')
             ORDER BY n.id) AS s;

    IF moved_ids IS NOT NULL THEN
        -- Desired state, not commands: the waiting operation, if any, is now moot. Before the
        -- insert, since a mentor has at most one pending operation (a unique index).
        UPDATE sync_queue q
           SET status = 'superseded', superseded_by = m.queued_id,
               finished_at = now(), updated_at = now()
          FROM unnest(moved_ids, queue_ids) AS m (mentor_id, queued_id)
         WHERE q.mentor_id = m.mentor_id AND q.status = 'pending';

        INSERT INTO sync_queue (id, mentor_id, operation, payload_json, source)
        OVERRIDING SYSTEM VALUE
        SELECT m.queued_id, n.id,
               CASE WHEN n.status = 'active' THEN 'restore' ELSE 'remove' END,
               jsonb_build_object('contact_id', n.dynamics_contact_id,
                                  'listed', n.status = 'active',
                                  'status', n.status,
                                  'reason', n.status_reason,
                                  'changed_at', now()),
               'status_change'
          FROM unnest(moved_ids, queue_ids) AS m (mentor_id, queued_id)
          JOIN changed_new n ON n.id = m.mentor_id
         ORDER BY m.queued_id;

        PERFORM pg_notify('hlfsync_sync_queue', queue_ids[array_upper(queue_ids, 1)]::text);
    END IF;

    INSERT INTO audit_log (mentor_id, sync_queue_id, event_type, actor, details)
    SELECT n.id, m.queued_id, 'status_changed', who,
           jsonb_build_object('old_status', o.status, 'new_status', n.status,
                              'reason', n.status_reason,
                              'operation', CASE WHEN m.queued_id IS NULL THEN NULL
                                                WHEN n.status = 'active' THEN 'restore'
                                                ELSE 'remove' END)
      FROM changed_new n
      JOIN changed_old o ON o.id = n.id
      LEFT JOIN unnest(moved_ids, queue_ids) AS m (mentor_id, queued_id) ON m.mentor_id = n.id
     WHERE o.status IS DISTINCT FROM n.status
     ORDER BY n.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER peer_mentors_status_outbox
    AFTER UPDATE ON peer_mentors
    REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new
    FOR EACH STATEMENT
    EXECUTE FUNCTION peer_mentor_status_outbox();

REVOKE EXECUTE ON FUNCTION peer_mentor_status_outbox() FROM PUBLIC, anon, authenticated;
