"""Property-based tests from the OpenAPI document (Schemathesis): whatever a client sends, the
API never answers with a server error, and its answers match the document."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from hlfsync import settings
from hlfsync.api import create_app, mint_token
from tests.integration.api import world as world_mod
from tests.integration.api.conftest import SECRET
from tests.integration.api.live import LiveServer

# The document does not depend on the database: build it from an app that never starts. (The
# lazy `from_fixture` loader would fetch it from the live server, but it does not run on
# pytest 9; calls still go to the live server below.)
_DOCUMENT = create_app(
    settings.load(jwt_secret=SECRET, database_url="postgresql://unused/unused")
).openapi()
# Two checks are tuned, the rest run as shipped. A cursor is opaque: no schema can say which
# strings are ours, so a schema-valid cursor may rightly be refused with 400 (documented on the
# list operations). And like most HTTP APIs this one ignores query parameters it does not know
# (cache busters, tracing), which `negative_data_rejection` counts as accepting invalid data.
_CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {"checks": {
        "positive_data_acceptance": {"expected-statuses": [
            "2xx", "3xx", "400", "401", "403", "404", "409", "429"]},
        "negative_data_rejection": {"enabled": False},
    }}
)  # fmt: skip
schema = schemathesis.openapi.from_dict(_DOCUMENT, config=_CONFIG)


@pytest.fixture
def live_api(db_url: str, conn: psycopg.Connection[Any]) -> Iterator[tuple[str, str]]:
    """The API on a real socket over the isolation world; its URL and an org admin's token."""
    world = world_mod.build(conn)
    conf = settings.load(database_url=db_url, jwt_secret=SECRET, db_pool_size=4)
    with LiveServer(conf) as server:
        yield server.url, mint_token(SECRET, world.users["admin_a"])


@pytest.mark.slow
@schema.parametrize()
@hypothesis_settings(max_examples=25, deadline=None,
                     suppress_health_check=list(HealthCheck))  # fmt: skip
def test_no_request_makes_the_api_fail(case: Any, live_api: tuple[str, str]) -> None:
    """For every operation, generated requests get documented answers and never a 5xx."""
    url, token = live_api
    case.call_and_validate(base_url=url, headers={"Authorization": f"Bearer {token}"})


@schema.parametrize()
@hypothesis_settings(max_examples=3, deadline=None,
                     suppress_health_check=list(HealthCheck))  # fmt: skip
def test_a_few_requests_per_operation_get_documented_answers(
    case: Any, live_api: tuple[str, str]
) -> None:
    """The same checks at a few requests per operation, for every run (the full one is slow)."""
    url, token = live_api
    case.call_and_validate(base_url=url, headers={"Authorization": f"Bearer {token}"})
