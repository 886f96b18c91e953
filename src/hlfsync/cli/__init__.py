"""`hlfsync`: the command line. `app` is the Typer application, `main` the console script.

Importing this package registers every command, one module per area, in the order `--help`
lists them; each command imports what it needs only when it runs.
"""

# isort: skip_file
from hlfsync.cli import data, queue, nightly, dynamics, serve
from hlfsync.cli.app import app, err, main, out

__all__ = ["app", "data", "dynamics", "err", "main", "nightly", "out", "queue", "serve"]
