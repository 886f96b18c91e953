"""The composition root: builds what a command, the worker or the API needs from Settings and
connects the parts. What each part does lives in its own module; nothing else wires them.

Each CLI command calls one function here. Heavy modules are imported inside the function that
needs them, so `hlfsync --help` and the short commands start fast. By area:

- `parts`: the database (migrated), "today", retry and breaker settings, pool and clients
- `worker`: the worker process and the long-running commands (`worker`, `api`, `run`)
- `by_hand`: the scheduled tasks run now (through `hlfsync.tasks`) and break-glass
- `commands`: one-shot commands on the data (seed, status, force-sync, dead letters, token)
"""

from hlfsync.services.by_hand import break_glass, expiry_check, health_check, reconcile
from hlfsync.services.commands import (
    dead_letters,
    force_sync,
    mentor_contacts,
    mint,
    push_contacts_to_sandbox,
    requeue,
    resolve,
    seed,
    status_snapshot,
)
from hlfsync.services.parts import breaker_config, database_url, retry_policy, today
from hlfsync.services.worker import (
    WorkerServices,
    api_forever,
    background,
    beside_the_loop,
    build_scheduler,
    build_worker,
    bulk_lane,
    run_forever,
    worker_forever,
    worker_once,
)

__all__ = [
    "WorkerServices",
    "api_forever",
    "background",
    "beside_the_loop",
    "break_glass",
    "breaker_config",
    "build_scheduler",
    "build_worker",
    "bulk_lane",
    "database_url",
    "dead_letters",
    "expiry_check",
    "force_sync",
    "health_check",
    "mentor_contacts",
    "mint",
    "push_contacts_to_sandbox",
    "reconcile",
    "requeue",
    "resolve",
    "retry_policy",
    "run_forever",
    "seed",
    "status_snapshot",
    "today",
    "worker_forever",
    "worker_once",
]
