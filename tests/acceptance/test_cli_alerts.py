"""`status` and `health` speak of the operators' channel and the push credentials (issue 17)."""

from __future__ import annotations

import json
import re

from hlfsync_sandbox.server import SandboxServer
from tests.acceptance.conftest import Run


def test_status_says_when_operators_would_not_be_told(hlfsync: Run, db_url: str) -> None:
    """Without a webhook or SMTP, status warns (exit code unchanged); with a webhook it does not."""
    env = {"HLFSYNC_DATABASE_URL": db_url}
    bare = hlfsync("status", env=env)
    assert bare.returncode == 0, bare.stderr
    assert "warning: operators would not be told" in bare.stdout
    hooked = hlfsync("status", "--json", env={**env, "HLFSYNC_OPERATOR_WEBHOOK_URL":
                                                "https://hooks.example/services/KEY"})  # fmt: skip
    assert json.loads(hooked.stdout)["warnings"] == []
    assert "KEY" not in hooked.stdout + hooked.stderr


def test_health_checks_the_push_credentials(
    hlfsync: Run, db_url: str, sandbox: SandboxServer
) -> None:
    """health asks Google for a token with the push key and names the operators' channel."""
    env = {**sandbox.env(), "HLFSYNC_DATABASE_URL": db_url}
    result = hlfsync("health", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^ok +push +FCM token granted$", result.stdout, re.M), result.stdout
    assert re.search(r"^off +operators +operators would not be told", result.stdout, re.M)
