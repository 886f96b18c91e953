-- name: seed_existing
-- What is already there: new sample organisations and users are numbered after it.
SELECT (SELECT count(*) FROM organizations), (SELECT count(*) FROM app_users);

-- name: seed_mentor_contacts
-- Every linked mentor's contact and whether it should be listed: what a sandbox must hold.
SELECT dynamics_contact_id, status = 'active' FROM peer_mentors
 WHERE dynamics_contact_id IS NOT NULL;

-- name: seed_mentor_count
-- Whether the demo's database holds mentors already (it seeds only an empty one).
SELECT count(*) FROM peer_mentors;

-- name: demo_coordinator
-- The coordinator with the most mentors: the one the demo signs in as, so the dashboard is full.
SELECT cc.user_id FROM coordinator_chapters cc
  JOIN chapter_memberships cm ON cm.chapter_id = cc.chapter_id
 GROUP BY cc.user_id ORDER BY count(*) DESC, cc.user_id LIMIT 1;
