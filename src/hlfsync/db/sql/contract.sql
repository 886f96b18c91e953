-- name: mentor_link
-- Store the contactid Dynamics answered for a mentor addressed by alternate key; never overwrite
-- a known id, never take one another mentor already holds (the column is UNIQUE).
UPDATE peer_mentors SET dynamics_contact_id = %(contact)s
 WHERE id = %(mentor)s AND dynamics_contact_id IS NULL
   AND NOT EXISTS (SELECT 1 FROM peer_mentors WHERE dynamics_contact_id = %(contact)s)
RETURNING id;

-- name: key_column_exists
-- At start: the column named by HLFSYNC_DYNAMICS_ALTERNATE_KEY_COLUMN is one of peer_mentors'.
SELECT EXISTS (SELECT 1 FROM information_schema.columns
                WHERE table_schema = 'public' AND table_name = 'peer_mentors'
                  AND column_name = %(column)s);

-- name: unlinked_pending
-- Operations held because their mentor has no contact id (status, health and the drill count them).
SELECT count(*)::int FROM sync_queue
 WHERE status = 'pending' AND last_error LIKE 'unlinked:%%';
