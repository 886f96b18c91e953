"""`hlfsync health` in a subprocess: each named check with its verdict, and exit codes."""

from __future__ import annotations

import json
import uuid

from hlfsync_sandbox.client import AdminClient
from hlfsync_sandbox.server import SandboxServer
from tests.acceptance.conftest import Run


def test_health_prints_each_check_and_fails_on_a_renamed_field(
    hlfsync: Run, db_url: str, sandbox: SandboxServer, admin: AdminClient
) -> None:
    """Healthy: every check `pass`, exit 0; with the listing field renamed, `listing_field`
    fails as a contract failure naming the field, exit 1; `--json` gives the same list."""
    admin.put_contacts([{"contactid": str(uuid.uuid4()), "listed": True}])
    env = {**sandbox.env(), "HLFSYNC_DATABASE_URL": db_url}
    ok = hlfsync("health", env=env)
    assert ok.returncode == 0, ok.stderr
    for name in ("token", "whoami", "entity_set", "listing_field", "writable"):
        assert any(line.startswith("pass") and name in line for line in ok.stdout.splitlines())
    admin.set_faults(drift={"listing_field": "hlf_listed_v2"})
    broken = hlfsync("health", "--json", env=env)
    assert broken.returncode == 1
    result = json.loads(broken.stdout)
    verdicts = {c["name"]: (c["verdict"], c["failure"]) for c in result["checks"]}
    assert verdicts["whoami"] == ("pass", None)
    assert verdicts["listing_field"] == ("fail", "contract")
    assert "Could not find a property named 'hlf_listedonwebsite'" in result["detail"]
    assert result["contract"] is True
