"""A faithful local world: Dataverse Web API, Entra ID and Google token endpoints, FCM HTTP v1
and the `webhook-v1` receiver, in one ASGI app with scripted faults (docs/sandbox.md).

Others use `server.SandboxServer` (tests, demo, benchmarks), `server.serve` (the CLI),
`app.create_app` with `state.SandboxState` (any ASGI server), `client.AdminClient` and
`webhook.sign`; `python -m hlfsync_sandbox.bench` measures it. The sandbox never imports the
rest of hlfsync, so it cannot agree with it by accident.
"""
