"""Adapters to HLF's portal: `dataverse-v9` (Web API + OAuth) and `webhook-v1` (signed JSON).

Others use `base` (the interface and its values), `factory.build_client(settings)`, `errors` (the
one HTTP-to-taxonomy table, shared with `notify`) and `webhook.verify_signature` for receivers.
"""
