"""The worker's start-up warm-up of its Dynamics credentials: a failure is one log line and
never stops the worker; the call or health check that needs the credentials meets it again."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from hlfsync.core.errors import AuthFailure
from hlfsync.worker.health import warm_up


class _Client:
    def __init__(self, step: Any) -> None:
        self.step = step

    def credential_checks(self) -> list[Any]:
        return [("token", self.step)]


async def test_a_refused_secret_is_one_warning_and_no_raise() -> None:
    async def refused() -> str:
        raise AuthFailure("token authority refused the client secret (401)")

    with capture_logs() as logs:
        await warm_up(_Client(refused))  # type: ignore[arg-type]
    assert [(e["event"], e["check"]) for e in logs] == [("dynamics_warm_up_failed", "token")]
    assert "401" in logs[0]["detail"]


async def test_an_unexpected_error_is_one_warning_and_no_raise() -> None:
    async def broken() -> str:
        raise RuntimeError("a bug\nwith a second line")

    with capture_logs() as logs:
        await warm_up(_Client(broken))  # type: ignore[arg-type]
    assert [(e["event"], e["detail"]) for e in logs] == [
        ("dynamics_warm_up_failed", "RuntimeError")
    ]


async def test_a_working_token_logs_nothing() -> None:
    asked: list[str] = []

    async def fine() -> str:
        asked.append("token")
        return "token acquired"

    with capture_logs() as logs:
        await warm_up(_Client(fine))  # type: ignore[arg-type]
    assert asked == ["token"]
    assert logs == []
