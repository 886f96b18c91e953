"""Fixtures for the pure unit tier: a fake clock, a seeded rng, and the drawn state machines."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from hlfsync import testing

STATE_MACHINE_DOC = Path(__file__).parents[2] / "docs" / "state-machine.md"

_MERMAID_BLOCK = re.compile(r"```mermaid\n(.*?)```", re.DOTALL)
_EDGE = re.compile(r"^\s*(\w+)\s*-->\s*(\w+)\s*:\s*(\w+)\s*$")


@pytest.fixture
def clock() -> testing.FakeClock:
    return testing.FakeClock()


@pytest.fixture
def rng() -> random.Random:
    return random.Random(20250106)


@pytest.fixture(scope="session")
def mermaid_edges() -> set[tuple[str, str, str]]:
    """Every labelled `a --> b: label` edge between named states in the doc's mermaid blocks."""
    text = STATE_MACHINE_DOC.read_text(encoding="utf-8")
    blocks = _MERMAID_BLOCK.findall(text)
    assert blocks, f"no mermaid block in {STATE_MACHINE_DOC}"
    return {
        (match[1], match[2], match[3])
        for block in blocks
        for line in block.splitlines()
        if (match := _EDGE.match(line))
    }
