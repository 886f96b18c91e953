"""The named queries of expiry.sql and schedule.sql: each loads, says why, and exists once."""

from __future__ import annotations

from importlib import resources

import pytest

from hlfsync.db import queries

FILES = ("expiry.sql", "schedule.sql")


def _names(filename: str) -> list[str]:
    text = (resources.files("hlfsync.db") / "sql" / filename).read_text("utf-8")
    return list(queries.parse(text, filename))


@pytest.mark.parametrize("filename", FILES)
def test_each_query_loads_and_opens_with_a_one_line_why(filename: str) -> None:
    """Every query is reachable through q() and its body starts with a comment saying why."""
    names = _names(filename)
    assert names
    for name in names:
        first = queries.q(name).splitlines()[0]
        assert first.startswith("-- "), f"{name} has no why line"
        assert len(first) > len("-- ") + 10
