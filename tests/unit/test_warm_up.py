"""The worker's start-up warm-up of its Dynamics credentials: a failure is one log line and
never stops the worker; the call or health check that needs the credentials meets it again."""

from __future__ import annotations

from structlog.testing import capture_logs

from hlfsync.core.errors import AuthFailure
from hlfsync.worker.health import warm_up


async def test_a_refused_secret_is_one_warning_and_no_raise() -> None:
    async def refused() -> str:
        raise AuthFailure("token authority refused the client secret (401)")

    with capture_logs() as logs:
        await warm_up([("token", refused)])
    assert [(e["event"], e["check"]) for e in logs] == [("dynamics_warm_up_failed", "token")]
    assert "401" in logs[0]["detail"]


async def test_an_unexpected_error_is_one_warning_and_no_raise() -> None:
    async def broken() -> str:
        raise RuntimeError("a bug\nwith a second line")

    with capture_logs() as logs:
        await warm_up([("token", broken)])
    assert [(e["event"], e["check"], e["detail"]) for e in logs] == [
        ("dynamics_warm_up_failed", "token", "RuntimeError")
    ]


async def test_a_working_token_logs_nothing() -> None:
    asked: list[str] = []

    async def fine() -> str:
        asked.append("token")
        return "token acquired"

    with capture_logs() as logs:
        await warm_up([("token", fine)])
    assert asked == ["token"]
    assert logs == []
