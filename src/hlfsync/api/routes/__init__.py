"""One router per resource; `ROUTERS` is what the app includes, in the order they document."""

from __future__ import annotations

from hlfsync.api.routes import alerts, dead_letters, health, me, mentors

ROUTERS = (mentors.router, dead_letters.router, alerts.router, me.router, health.router)
