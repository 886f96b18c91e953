"""The adversarial suite's fixtures: the isolation world of tests/integration/api (two
organisations, multi-chapter coordinators, a stray cross-organisation membership), its tokens,
and the app in-process."""

from __future__ import annotations

from tests.integration.api.conftest import (  # noqa: F401 - fixtures, found by name
    api_settings,
    auth,
    client,
    token,
    world,
)
