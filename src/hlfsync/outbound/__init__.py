"""What every adapter that calls out over HTTPS shares, knowing none of them.

`errors` is the one table from HTTP answers and transport errors to `core.errors`; `tls` makes a
configured CA bundle the only trust of an httpx or a requests client. Dataverse, the webhook and
FCM all use both.
"""
