"""The `dataverse-v9` adapter: HLF's portal through the Dataverse Web API with OAuth tokens.

`client.DataverseClient` implements `dynamics.port.DynamicsClient`; `wire` holds the OData
payloads (OData names stop there), `auth` the msal tokens, `transport` the HTTP connection pools
(which `dynamics.factory` also gives the webhook adapter). Only `dynamics.factory` imports this
package; what it shares with the other adapters is in `hlfsync.outbound`.
"""
