"""The one route under `/api/data/v9.2/`: bearer check, then `$batch` or a single request.

Owns only that dispatch; the request rules are in `dataverse`, the batch framing in `batch`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hlfsync_sandbox import batch, dataverse, gateway, tokens
from hlfsync_sandbox.state import SandboxState

METHODS = ["GET", "PATCH", "POST", "PUT", "DELETE"]


def routes(state: SandboxState) -> list[Route]:
    async def web_api(request: Request) -> Response:
        base = tokens.base_url(request)
        denied = tokens.check_entra(state, request.headers, base)
        if denied is not None:
            return denied.response()
        body = await request.body()
        target = request.path_params["target"]
        entry = gateway.entry(request)
        if target == "$batch" and request.method == "POST":
            return batch.execute(state, request.headers, body, base, entry).response()
        web_request = dataverse.WebRequest(
            method=request.method,
            target=target,
            query=request.scope["query_string"].decode("latin-1"),
            headers=request.headers,
            body=body,
            base_url=base,
        )
        return dataverse.handle(state, state.contacts, web_request, entry).response()

    return [Route(dataverse.API_ROOT + "{target:path}", web_api, methods=METHODS)]
