-- name: sign_in_code_issue
-- Keep a new one-time sign-in code (its hash) for a user; old codes are swept on the way.
WITH swept AS (
    DELETE FROM sign_in_codes WHERE expires_at < now() - interval '1 day'
)
INSERT INTO sign_in_codes (code_hash, user_id, expires_at)
VALUES (%(hash)s, %(user)s, now() + %(ttl_s)s * interval '1 second');

-- name: sign_in_code_redeem
-- Use a sign-in code: once, before it expires; the user it was for, or no row.
UPDATE sign_in_codes
   SET used_at = now()
 WHERE code_hash = %(hash)s AND used_at IS NULL AND expires_at > now()
RETURNING user_id;
