"""The two token services: Entra ID (client credentials, with OIDC discovery) and Google OAuth.

Owns issuing, checking and revoking bearer tokens as those services do, enough for real `msal`
and `google-auth` to talk to it. Secrets are compared, never logged or echoed.
"""

from __future__ import annotations

import base64
import hmac
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hlfsync_sandbox import keys, wire
from hlfsync_sandbox.state import SandboxState

CLIENT_CREDENTIALS = "client_credentials"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FCM_SCOPES = frozenset(
    {
        "https://www.googleapis.com/auth/firebase.messaging",
        "https://www.googleapis.com/auth/cloud-platform",
    }
)
DISCOVERY_PATH = "/v2.0/.well-known/openid-configuration"
GOOGLE_TOKEN_PATH = "/token"  # noqa: S105 - a path, not a password


_BASE_URLS: dict[tuple[str, bytes], str] = {}


def base_url(request: Request) -> str:
    """`https://host:port` as the client addressed us; memoised, it is asked on every request."""
    scope = request.scope
    host = next((value for name, value in scope["headers"] if name == b"host"), b"")
    key = (scope["scheme"], host)
    cached = _BASE_URLS.get(key)
    if cached is None:
        if len(_BASE_URLS) > 64:  # a client inventing Host headers must not grow this forever
            _BASE_URLS.clear()
        cached = str(request.base_url).rstrip("/")
        _BASE_URLS[key] = cached
    return cached


def bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization")
    if value is None or value[:7].lower() != "bearer ":
        return None
    return value[7:].strip()


def check_entra(state: SandboxState, headers: Mapping[str, str], base: str) -> wire.Reply | None:
    """None when the request carries a live Entra token; else Dataverse's bare 401."""
    token = bearer(headers)
    outcome: str = "missing" if token is None else state.tokens.check(token, "entra")
    if outcome == "ok" and state.faults.config.auth == "reject":
        outcome = "rejected"
    if outcome == "ok":
        return None
    tenant = state.credentials.tenant_id
    challenge = f"Bearer authorization_uri={base}/{tenant}/oauth2/authorize, resource_id={base}/"
    # Dataverse sends no body with its 401; the extra header only helps a human reading a trace.
    return wire.Reply(401, b"", {"www-authenticate": challenge, "x-sandbox-auth": outcome})


def check_google(state: SandboxState, headers: Mapping[str, str]) -> wire.Reply | None:
    """None when the request carries a live Google token with an FCM scope; else Google's error."""
    token = bearer(headers)
    issued = None if token is None else state.tokens.get(token)
    outcome: str = "missing" if token is None else state.tokens.check(token, "google")
    if outcome == "ok" and state.faults.config.fcm_auth == "reject":
        outcome = "rejected"
    if outcome == "ok" and issued is not None and not (issued.scopes & FCM_SCOPES):
        return wire.google_error(403, "Request had insufficient authentication scopes.")
    if outcome == "ok":
        return None
    return wire.google_error(
        401,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
        "cookie or other valid authentication credential.",
        headers={"www-authenticate": 'Bearer realm="https://accounts.google.com/"'},
    )


def openid_configuration(state: SandboxState, tenant: str, base: str) -> wire.Reply:
    if tenant != state.credentials.tenant_id:
        return _unknown_tenant(tenant)
    root = f"{base}/{tenant}"
    return wire.json_reply(
        200,
        {
            "issuer": f"{root}/v2.0",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
            "jwks_uri": f"{root}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "sandbox.hlfsync.invalid",
        },
    )


def entra_token(
    state: SandboxState, tenant: str, body: bytes, auth: str | None, base: str
) -> wire.Reply:
    """The v2.0 token endpoint, client credentials grant only."""
    state.token_requests["entra"] += 1
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    try:
        _check_client(state, tenant, form, auth)
        _check_scope(form.get("scope", ""), tenant, base)
    except wire.Refusal as refusal:
        return refusal.reply
    ttl_s = state.settings.token_ttl_s
    token = state.tokens.issue("entra", ttl_s, state.credentials.generation)
    expires_in = max(1, math.floor(ttl_s))
    return wire.json_reply(
        200,
        {
            "token_type": "Bearer",
            "expires_in": expires_in,
            "ext_expires_in": expires_in,
            "access_token": token,
        },
        {"cache-control": "no-store, no-cache"},
    )


def _check_client(state: SandboxState, tenant: str, form: dict[str, str], auth: str | None) -> None:
    creds = state.credentials
    if tenant != creds.tenant_id:
        raise wire.Refusal(_unknown_tenant(tenant))
    client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    if auth is not None and auth[:6].lower() == "basic ":
        try:
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            client_id, secret = "", ""
    if form.get("grant_type") != CLIENT_CREDENTIALS:
        raise wire.Refusal(
            wire.aad_error(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        )
    if not hmac.compare_digest(client_id.encode(), creds.client_id.encode()):
        raise wire.Refusal(
            wire.aad_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant}'.",
            )
        )
    secret_ok = hmac.compare_digest(secret.encode(), creds.client_secret.encode())
    if not secret_ok or state.faults.config.auth == "reject":
        raise wire.Refusal(
            wire.aad_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                "the client secret value, not the client secret ID, for a secret added to app "
                f"'{client_id}'.",
            )
        )


def _check_scope(scope: str, tenant: str, base: str) -> None:
    resource = scope.removesuffix("/.default")
    if " " in scope.strip() or not scope.endswith("/.default"):
        raise wire.Refusal(
            wire.aad_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier.",
            )
        )
    if urlsplit(resource).netloc != urlsplit(base).netloc:
        raise wire.Refusal(
            wire.aad_error(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{tenant}.",
            )
        )


def google_token(state: SandboxState, body: bytes, base: str) -> wire.Reply:
    """The JWT-bearer grant google-auth's service-account credentials perform."""
    state.token_requests["google"] += 1
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    if form.get("grant_type") != JWT_BEARER:
        return wire.oauth_error(
            400, "unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type', '')}"
        )
    try:
        claims = _verify_assertion(state, form.get("assertion", ""), base)
    except wire.Refusal as refusal:
        return refusal.reply
    if state.faults.config.fcm_auth == "reject":
        return wire.oauth_error(400, "invalid_grant", "Invalid grant: account not found")
    scopes = frozenset(str(claims.get("scope", "")).split())
    ttl_s = state.settings.token_ttl_s
    token = state.tokens.issue("google", ttl_s, scopes=scopes)
    expires_in = max(1, math.floor(ttl_s))
    return wire.json_reply(
        200, {"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}
    )


def _verify_assertion(state: SandboxState, assertion: str, base: str) -> dict[str, Any]:
    account = state.service_account
    description = "Invalid JWT Signature."  # what Google says for a key it does not know
    try:
        kid = jwt.get_unverified_header(assertion).get("kid")
        claims = jwt.decode(
            assertion,
            account.public_key_pem,
            algorithms=["RS256"],
            audience=[keys.GOOGLE_TOKEN_URI, base + GOOGLE_TOKEN_PATH],
            issuer=account.client_email,
            options={"require": ["exp", "iat", "iss", "aud"]},
            leeway=60,
        )
    except jwt.ExpiredSignatureError:
        description = (
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
            "timeframe. Check your iat and exp values in the JWT claim."
        )
    except jwt.InvalidSignatureError:
        pass
    except jwt.PyJWTError as exc:
        description = f"Invalid JWT: {exc}"
    else:
        if kid == account.private_key_id:
            return claims
    raise wire.Refusal(wire.oauth_error(400, "invalid_grant", description))


def _unknown_tenant(tenant: str) -> wire.Reply:
    return wire.aad_error(
        400,
        "invalid_tenant",
        90002,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
        "are signing into the correct cloud.",
    )


def routes(state: SandboxState) -> list[Route]:
    async def discovery(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        return openid_configuration(state, tenant, base_url(request)).response()

    async def instance_discovery(request: Request) -> Response:
        # Only reached if hlfsync points msal's `instance_discovery` at the sandbox by URL.
        endpoint = request.query_params.get("authorization_endpoint", "")
        tenant = [*urlsplit(endpoint).path.split("/"), "", ""][1]
        base = base_url(request)
        host = urlsplit(base).netloc
        metadata = {"preferred_network": host, "preferred_cache": host, "aliases": [host]}
        return wire.json_reply(
            200,
            {
                "tenant_discovery_endpoint": f"{base}/{tenant}{DISCOVERY_PATH}",
                "api-version": "1.1",
                "metadata": [metadata],
            },
        ).response()

    async def token_v2(request: Request) -> Response:
        body = await request.body()
        tenant = request.path_params["tenant"]
        auth = request.headers.get("authorization")
        return entra_token(state, tenant, body, auth, base_url(request)).response()

    async def token_google(request: Request) -> Response:
        return google_token(state, await request.body(), base_url(request)).response()

    return [
        Route("/{tenant}" + DISCOVERY_PATH, discovery, methods=["GET"]),
        Route("/common/discovery/instance", instance_discovery, methods=["GET"]),
        Route("/{tenant}/oauth2/v2.0/token", token_v2, methods=["POST"]),
        Route(GOOGLE_TOKEN_PATH, token_google, methods=["POST"]),
    ]
