"""Where the throwaway test clusters go (tests/scratch.py): tmpfs when it has room, else the
usual temporary directory."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests import scratch


def test_a_cluster_goes_to_tmpfs_when_it_has_room(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(scratch, "TMPFS", tmp_path)
    monkeypatch.setattr(scratch, "TMPFS_NEEDED_BYTES", 1)
    made = scratch.cluster_dir("hlfsync-test-x-")
    assert made.parent == tmp_path
    assert made.name.startswith("hlfsync-test-x-")
    assert made.is_dir()
    assert list(made.iterdir()) == []


@pytest.mark.parametrize("why", ["too small", "missing"])
def test_without_room_in_tmpfs_it_is_the_usual_temporary_directory(
    why: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if why == "too small":
        monkeypatch.setattr(scratch, "TMPFS", tmp_path)
        monkeypatch.setattr(scratch, "TMPFS_NEEDED_BYTES", 1 << 62)
    else:
        monkeypatch.setattr(scratch, "TMPFS", tmp_path / "absent")
    made = scratch.cluster_dir("hlfsync-test-x-")
    try:
        assert made.parent == Path(tempfile.gettempdir())
        assert made.is_dir()
    finally:
        made.rmdir()
