"""Pure decisions: retry, classification, breaker, states, expiry, reconciliation.

Nothing here does I/O, reads the clock or the environment; a unit test keeps it so.
"""
