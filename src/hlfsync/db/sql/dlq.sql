-- name: dlq_list
-- Dead letters, newest first, optionally only those with a given status.
SELECT l.id, l.sync_queue_id, l.mentor_id, l.operation_type, l.failure_reason, l.attempt_count,
       l.status, l.created_at, l.handled_by, l.handled_at, l.resolution_note, l.requeued_as
  FROM dead_letter_queue l
 WHERE %(status)s::text IS NULL OR l.status = %(status)s
 ORDER BY l.id DESC
 LIMIT %(limit)s;

-- name: dlq_requeue
-- Re-queue open dead letters (NULL = all open ones) as fresh operations ahead of the queue.
SELECT dead_letter_id, sync_queue_id FROM requeue_dead_letters(%(ids)s::bigint[], %(actor)s);

-- name: dlq_resolve
-- Close one dead letter by hand, with a note.
SELECT resolve_dead_letter(%(id)s, %(note)s, %(actor)s);

-- name: mentors_exist
-- Which of the given ids are mentors, and whether each has a Dynamics contact.
SELECT id, dynamics_contact_id IS NOT NULL FROM peer_mentors WHERE id = ANY (%(ids)s::uuid[]);

-- name: chapter_mentors
-- The mentors of one chapter.
SELECT mentor_id FROM chapter_memberships WHERE chapter_id = %(chapter)s;

-- name: force_sync
-- Queue an immediate sync of the given mentors (NULL: everyone), ahead of the routine queue.
SELECT mentor_id, sync_queue_id, operation
  FROM enqueue_sync(%(ids)s::uuid[], 'force', %(priority)s, %(actor)s);
