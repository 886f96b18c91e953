"""Where the tests put their throwaway PostgreSQL clusters: in memory (tmpfs) when the machine
has room there, else in the usual temporary directory.

Cloning a test database is mostly creating files, some 450 for the migrated schema; on this
project's ext4 disk that cost 0.4 s of kernel time per clone and made PostgreSQL the largest
consumer of CPU in the suite. On tmpfs the same clone takes about 15 ms. The clusters are
throwaway (fsync is off in them already), so memory is all they need.

Not under pytest's basetemp: pytest prunes old basetemps, which would delete the data directory
of a server that another concurrent session, or a subprocess, still uses.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

TMPFS = Path("/dev/shm")  # noqa: S108 - only ever a parent for mkdtemp
# A cluster with its WAL takes about 100 MB; leave a small /dev/shm (64 MB in a default Docker
# container) alone.
TMPFS_NEEDED_BYTES = 1 << 30


def _tmpfs() -> Path | None:
    try:
        if not os.access(TMPFS, os.W_OK | os.X_OK):
            return None
        free = shutil.disk_usage(TMPFS).free
    except OSError:
        return None
    return TMPFS if free >= TMPFS_NEEDED_BYTES else None


def cluster_dir(prefix: str) -> Path:
    """A new, empty directory for a throwaway PostgreSQL cluster; the caller removes it."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=_tmpfs()))
