"""The coordinator API and dashboard (FastAPI): every request runs as its caller under RLS.

Public names: `create_app`, `serve`, `mint_token`, `sign_in_url`, `signin` (one-time codes).
"""

from __future__ import annotations

from hlfsync.api import signin
from hlfsync.api.app import create_app
from hlfsync.api.auth import mint_token
from hlfsync.api.server import serve
from hlfsync.api.session import sign_in_url

__all__ = ["create_app", "mint_token", "serve", "sign_in_url", "signin"]
