"""Named runtime queries, loaded once from the `.sql` files in `db/sql/`.

Each query starts with `-- name: <name>` and a one-line why. Parameters bind as `%(name)s`;
identifiers are never interpolated. Time comes in as `coalesce(%(now)s::timestamptz, now())`:
NULL in production, a FakeClock's time in tests.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import LiteralString

_HEADER = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def parse(text: str, origin: str = "<sql>") -> dict[str, LiteralString]:
    """Split one file into its named queries."""
    found: dict[str, LiteralString] = {}
    marks = list(_HEADER.finditer(text))
    for index, mark in enumerate(marks):
        end = marks[index + 1].start() if index + 1 < len(marks) else len(text)
        body = text[mark.end() : end].strip()
        if not body:
            raise ValueError(f"{origin}: query {mark.group(1)} is empty")
        if mark.group(1) in found:
            raise ValueError(f"{origin}: query {mark.group(1)} is defined twice")
        # The files ship with the package and are never built from input: literal by origin
        # (mypy treats LiteralString as str, so the annotation documents rather than checks).
        found[mark.group(1)] = body
    return found


@cache
def all_queries() -> dict[str, LiteralString]:
    merged: dict[str, LiteralString] = {}
    folder = resources.files("hlfsync.db") / "sql"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        for name, body in parse(entry.read_text("utf-8"), entry.name).items():
            if name in merged:
                raise ValueError(f"{entry.name}: query {name} is defined in two files")
            merged[name] = body
    return merged


def q(name: str) -> LiteralString:
    """The query called `name`; a KeyError here is a typo caught by the query test."""
    return all_queries()[name]
