"""Adapters to HLF's portal: `dataverse-v9` (Web API + OAuth) and `webhook-v1` (signed JSON).

Others use `base` (the interface and its values) and `factory.build_client(settings)`.
"""
