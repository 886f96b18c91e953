"""Where the database URL comes from, and connections whose failures read as one line.

Above this package nobody catches psycopg errors: an unreachable database becomes `ConfigError`.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

import psycopg

from hlfsync.core.errors import ConfigError
from hlfsync.db import embedded
from hlfsync.settings import Settings

CONNECT_TIMEOUT_S = 5


def with_database(url: str, name: str) -> str:
    """The same server, another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def database_url(settings: Settings) -> str:
    """The configured URL, or the embedded server's (started if needed)."""
    if settings.database_url:
        return settings.database_url
    return embedded.start(settings.data_dir)


# libpq also takes the password as a query parameter: `postgresql://host/db?password=...`.
_PASSWORD_PARAM = re.compile(r"((?:^|&)(?:ssl)?password=)[^&]*", re.IGNORECASE)


def redact(url: str) -> str:
    """The URL without its password (in the user info or the query), for messages and logs."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    query = _PASSWORD_PARAM.sub(r"\1***", parts.query)
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def describe(exc: psycopg.Error, url: str) -> str:
    """One line for a connection failure, without the password."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"cannot reach the database at {redact(url)}: {first}"


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection[tuple[object, ...]]:
    """A synchronous connection for one-shot commands (migrate, seed, status)."""
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.Error as exc:
        raise ConfigError(describe(exc, url)) from exc


async def aconnect(
    url: str, *, autocommit: bool = False
) -> psycopg.AsyncConnection[tuple[object, ...]]:
    """An asynchronous connection (LISTEN, one-off async work)."""
    try:
        return await psycopg.AsyncConnection.connect(
            url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S
        )
    except psycopg.Error as exc:
        raise ConfigError(describe(exc, url)) from exc
