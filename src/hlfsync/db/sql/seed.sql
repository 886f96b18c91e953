-- name: seed_existing
-- What is already there: new sample organisations and users are numbered after it.
SELECT (SELECT count(*) FROM organizations), (SELECT count(*) FROM app_users);

-- name: seed_mentor_contacts
-- Every linked mentor's contact and whether it should be listed: what a sandbox must hold.
SELECT dynamics_contact_id, status = 'active' FROM peer_mentors
 WHERE dynamics_contact_id IS NOT NULL;
