"""Supabase-style access tokens: HS256 JWTs signed with HLFSYNC_JWT_SECRET.

Owns verification (signature, `exp`, `aud`, a UUID `sub`, `role` = authenticated) and minting for
`hlfsync token`. Every failure is one `Problem(401)`; the reason is logged, never the token.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
import structlog

from hlfsync.api.problems import Problem, unauthorized
from hlfsync.core import errors

ALGORITHM = "HS256"
ROLE = "authenticated"
MIN_SECRET_LENGTH = 32  # RFC 7518 §3.2: an HS256 key must be at least 256 bits

log = structlog.get_logger("hlfsync.api")


@dataclass(frozen=True)
class Caller:
    """A verified caller: the JWT subject and the claims the database sees."""

    user_id: uuid.UUID
    claims: dict[str, Any]


def verify(token: str, *, secret: str, audience: str) -> Caller:
    """The caller a token names, or Problem(401) if it is not exactly what we issue."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],  # never "none", never whatever the header asks for
            audience=audience,
            options={"require": ["exp", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise _reject("token expired") from exc
    except jwt.InvalidAudienceError as exc:
        raise _reject("token is for another audience") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise _reject(f"token lacks the {exc.claim!r} claim") from exc
    except jwt.InvalidTokenError as exc:
        raise _reject("token is not valid") from exc
    except (OverflowError, ValueError, TypeError) as exc:  # e.g. "exp": Infinity, past int()
        raise _reject("token is not valid") from exc
    sub, exp = claims["sub"], claims["exp"]
    if not isinstance(sub, str):
        raise _reject("token subject is not a user id")
    try:
        user_id = uuid.UUID(sub)
    except ValueError as exc:
        raise _reject("token subject is not a user id") from exc
    # PyJWT takes "123" for a date; nothing after it would. Only JSON numbers are dates here.
    for name in ("exp", "iat", "nbf"):
        value = claims.get(name)
        if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise _reject(f"token {name!r} claim is not a number")
    if claims.get("role") != ROLE:
        raise _reject(f"token role must be {ROLE!r}")
    # What the database sees is what was checked, normalised: the canonical spelling of the
    # user id (PostgreSQL reads braces or upper case, but not every spelling uuid.UUID takes),
    # and no claim it was never checked for (any text there could fail a ::jsonb cast).
    normalised = {"sub": str(user_id), "role": ROLE, "aud": audience, "exp": int(exp)}
    return Caller(user_id, normalised)


def _reject(reason: str) -> Problem:
    log.info("api_token_rejected", reason=reason)
    return unauthorized(reason)


def mint_token(
    secret: str,
    user_id: uuid.UUID | str,
    ttl_s: float = 3600.0,
    audience: str = "authenticated",
    *,
    now: float | None = None,
) -> str:
    """An access token for `user_id`, valid for `ttl_s` seconds (development and tests)."""
    check_secret(secret)
    issued = int(time.time() if now is None else now)
    claims = {
        "sub": str(uuid.UUID(str(user_id))),
        "aud": audience,
        "role": ROLE,
        "iss": "hlfsync",
        "iat": issued,
        "exp": issued + int(ttl_s),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def check_secret(secret: str | None) -> str:
    """The secret, if usable; otherwise a ConfigError naming the setting."""
    if not secret:
        raise errors.ConfigError("HLFSYNC_JWT_SECRET is required for the API (and for tokens)")
    if len(secret) < MIN_SECRET_LENGTH:
        raise errors.ConfigError(
            f"HLFSYNC_JWT_SECRET must be at least {MIN_SECRET_LENGTH} characters for HS256"
        )
    return secret
