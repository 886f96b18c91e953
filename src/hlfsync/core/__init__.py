"""Pure decisions: failures, retry, attempt outcomes, breaker, pacing, schedules, health, renewals,
expiry dates.

Nothing here does I/O, reads the clock or the environment; a unit test keeps it so.
"""
