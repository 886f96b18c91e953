"""HLF's portal, whichever contract `HLFSYNC_DYNAMICS_CONTRACT` names.

`port` is the one interface the engine knows (`DynamicsClient`) and the values it speaks in
(`ListingChange`, `ContactListing`, `Identity`); `factory.build_client(settings)` builds the
configured adapter; `webhook` is the `webhook-v1` adapter (and `verify_signature` for receivers).
The `dataverse-v9` adapter, the Dataverse Web API, is `hlfsync.dataverse`, which only the factory
imports.
"""
