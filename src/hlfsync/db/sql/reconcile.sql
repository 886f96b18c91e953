-- name: reconcile_prepare
-- A per-run scratch table of what Dynamics lists, so the comparison is one set-based query and
-- the worker's memory stays flat however many contacts there are.
CREATE TEMP TABLE IF NOT EXISTS reconcile_seen (
    contact_id  uuid NOT NULL,
    listed      boolean NOT NULL
) ON COMMIT PRESERVE ROWS;

-- name: reconcile_index
-- Indexed and analysed once loaded, so the comparison joins instead of scanning.
CREATE INDEX IF NOT EXISTS reconcile_seen_contact ON reconcile_seen (contact_id);

-- name: reconcile_prepare_drift
-- The divergent mentors of this run, kept in the database too: queued from there, so nothing
-- proportional to the drift is held in the worker either.
CREATE TEMP TABLE IF NOT EXISTS reconcile_drift (
    mentor_id  uuid NOT NULL,
    listed     boolean NOT NULL,
    status     text NOT NULL
) ON COMMIT PRESERVE ROWS;

-- name: reconcile_reset
-- Start the scratch tables empty.
TRUNCATE reconcile_seen, reconcile_drift;

-- name: reconcile_analyze
-- Fresh statistics for the planner after the load.
ANALYZE reconcile_seen;

-- name: reconcile_divergent
-- Mentors whose listing in Dynamics differs from what their status says, except those already
-- on their way (an operation waiting or running), just synced (the portal's read lag), or held
-- for a person (an open dead letter).
INSERT INTO reconcile_drift (mentor_id, listed, status)
SELECT m.id, s.listed, m.status
  FROM reconcile_seen s
  JOIN peer_mentors m ON m.dynamics_contact_id = s.contact_id
 WHERE s.listed <> (m.status = 'active')
   AND NOT EXISTS (SELECT 1 FROM sync_queue q
                    WHERE q.mentor_id = m.id
                      AND (q.status IN ('pending', 'in_progress')
                           OR (q.status = 'succeeded'
                               AND q.finished_at > %(now)s - %(lag_s)s * interval '1 second')))
   AND NOT EXISTS (SELECT 1 FROM dead_letter_queue l
                    WHERE l.mentor_id = m.id AND l.status = 'open')

;

-- name: reconcile_confirm_chunks
-- The confirmations' chunks: first and last contact of every %(size)s, in contact order. Each
-- chunk commits on its own, so a person's status change (whose trigger updates the mentor's
-- confirmation row) waits at most for one chunk, never for all 100,000 rows at once.
SELECT chunk[1], chunk[cardinality(chunk)]
  FROM (SELECT array_agg(contact_id ORDER BY contact_id) AS chunk
          FROM (SELECT contact_id, row_number() OVER (ORDER BY contact_id) - 1 AS n
                  FROM (SELECT DISTINCT contact_id FROM reconcile_seen) AS d) AS numbered
         GROUP BY n / %(size)s) AS chunks
 ORDER BY 1;

-- name: reconcile_confirm
-- What Dynamics listed is each mentor's confirmed listing, as of the run's start (every page
-- was read after it), for the contacts from %(lo)s to %(hi)s. Never over a newer
-- confirmation, nor over a sync confirmed within the portal's read lag (the read may not show
-- that write yet).
INSERT INTO listing_confirmations AS c
       (mentor_id, listed, confirmed_at, confirmed_by, should_list, differs_since)
SELECT DISTINCT ON (m.id) m.id, s.listed, %(now)s, 'reconcile', m.status = 'active',
       CASE WHEN s.listed <> (m.status = 'active') THEN %(now)s::timestamptz END
  FROM reconcile_seen s
  JOIN peer_mentors m ON m.dynamics_contact_id = s.contact_id
 WHERE s.contact_id BETWEEN %(lo)s::uuid AND %(hi)s::uuid
 ORDER BY m.id
ON CONFLICT (mentor_id) DO UPDATE
   SET listed = excluded.listed, confirmed_at = excluded.confirmed_at,
       confirmed_by = excluded.confirmed_by, sync_queue_id = NULL,
       should_list = excluded.should_list,
       differs_since = CASE WHEN excluded.listed = excluded.should_list THEN NULL
                            WHEN c.listed = excluded.listed
                            THEN coalesce(c.differs_since, excluded.confirmed_at)
                            ELSE excluded.confirmed_at END
 WHERE (c.confirmed_at IS NULL OR c.confirmed_at < excluded.confirmed_at)
   AND NOT coalesce(c.confirmed_by = 'sync'
                    AND c.confirmed_at > excluded.confirmed_at - %(lag_s)s * interval '1 second',
                    false);

-- name: reconcile_drift_sample
-- A few of them, for the report.
SELECT mentor_id, listed, status FROM reconcile_drift ORDER BY mentor_id LIMIT %(limit)s;

-- name: reconcile_enqueue
-- Queue every divergent mentor in one call, straight from the scratch table.
SELECT count(*)::int
  FROM enqueue_sync(ARRAY(SELECT mentor_id FROM reconcile_drift ORDER BY mentor_id),
                    %(source)s, %(priority)s, %(actor)s);

-- name: reconcile_counts
-- The other findings: diverging but skipped, contacts the app does not know, mentors Dynamics
-- does not know, mentors with no contact id.
SELECT
    (SELECT count(*) FROM reconcile_seen)::int AS contacts_read,
    (SELECT count(*) FROM reconcile_drift)::int AS to_queue,
    (SELECT count(*) FROM reconcile_seen s JOIN peer_mentors m ON m.dynamics_contact_id = s.contact_id
      WHERE s.listed <> (m.status = 'active'))::int AS diverging,
    (SELECT count(*) FROM reconcile_seen s
      WHERE s.listed AND NOT EXISTS (SELECT 1 FROM peer_mentors m
                                      WHERE m.dynamics_contact_id = s.contact_id))::int
        AS unknown_listed_contacts,
    (SELECT count(*) FROM peer_mentors m
      WHERE m.dynamics_contact_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM reconcile_seen s
                         WHERE s.contact_id = m.dynamics_contact_id))::int
        AS contacts_missing_in_dynamics,
    (SELECT count(*) FROM peer_mentors WHERE dynamics_contact_id IS NULL)::int
        AS mentors_without_contact;

-- name: reconcile_unknown_sample
-- A few contacts Dynamics lists that no mentor has, for the report.
SELECT s.contact_id FROM reconcile_seen s
 WHERE s.listed AND NOT EXISTS (SELECT 1 FROM peer_mentors m
                                 WHERE m.dynamics_contact_id = s.contact_id)
 ORDER BY s.contact_id LIMIT %(limit)s;
