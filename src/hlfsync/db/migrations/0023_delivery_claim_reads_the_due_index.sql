-- Why: the push dispatcher's claim took deliveries that were due OR whose lease had expired,
-- in their raise order. No index gives that order under an OR, so every claim of 50 read and
-- sorted every due delivery: on the first night's 85,000 (one per coordinator device for each
-- of 49,000 pauses) 91 ms a claim, p50 under auto_explain, and quadratic over the night, on the
-- database that serves the people's changes meanwhile (issue 13).
--
-- Now a delivery whose dispatcher died goes back to pending first, as it was claimed (same due
-- time, no attempt spent: `release_expired_deliveries`), and the claim reads the pending ones
-- from this index in its order, stopping after the batch.

DROP INDEX alert_deliveries_due_idx;
CREATE INDEX alert_deliveries_due_idx ON alert_deliveries (next_attempt_at, alert_id, id)
    WHERE status = 'pending';
