-- Why: the breaker's rules live in one place, the pure state machine `core.breaker` (issue 16);
-- this table only stores its snapshot. The table already refuses an unknown state, an open
-- circuit without `opened_at` and a probe outside half_open; it now also refuses the two other
-- rows `BreakerSnapshot` refuses, so no writer (a hand-run UPDATE included) can store a row the
-- state machine would reject when it next reads it:
--
-- * a closed circuit held for credentials or a broken contract (`auth_failed`): only a success
--   lifts a hold, and a success closes the circuit and clears the hold in one step;
-- * a hold reason (migration 0011) on a circuit that is not held: `breaker_store` writes it only
--   while `auth_failed`. Rows left with one by hand-run resets are cleared first.
--
-- tests/integration/db/test_breaker_store.py holds these CHECKs against BreakerSnapshot.

UPDATE circuit_breakers SET hold_reason = NULL WHERE NOT auth_failed AND hold_reason IS NOT NULL;

ALTER TABLE circuit_breakers
    ADD CONSTRAINT breaker_closed_is_not_held CHECK (state <> 'closed' OR NOT auth_failed),
    ADD CONSTRAINT breaker_reason_only_when_held CHECK (auth_failed OR hold_reason IS NULL);
