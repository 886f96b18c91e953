"""The README's tour, command by command, in its written order, on a fresh data directory.

The commands are read from README.md itself, so the tour cannot drift from what works. Long-
running ones (demo, sandbox, worker) start in the background and are stopped with Ctrl-C where
the tour says so; the rest must exit 0 (`status` may exit 1: degraded is a verdict, not a
failure). The one change for speed: `seed --mentors 100000` seeds 2,000 here.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
LONG_RUNNING = {"demo": "dashboard:", "sandbox": "contacts:", "worker": "worker_started"}
READY_WITHIN_S = 120

pytestmark = pytest.mark.slow


def tour_commands() -> list[str]:
    """The `uv run hlfsync` command lines of the tour, continuation lines joined."""
    text = README.read_text(encoding="utf-8")
    tour = text[text.index("## A tour") : text.index("## How it is built")]
    commands: list[str] = []
    for line in tour.splitlines():
        if line.startswith("    uv run hlfsync"):
            commands.append(line.strip())
        elif line.startswith("        ") and commands:  # a command's continuation
            commands[-1] += " " + line.strip()
    return [re.sub(r"\s+#.*$", "", c) for c in commands]


def test_the_tour_is_found() -> None:
    """The parser finds the tour's commands, demo first (or this test would prove nothing)."""
    commands = tour_commands()
    assert commands[0] == "uv run hlfsync demo"
    assert len(commands) >= 12


def _shell(command: str) -> str:
    return command.replace("uv run hlfsync", f"{sys.executable} -m hlfsync")


@pytest.mark.timeout(900)
def test_the_readme_tour_works_in_its_written_order(tmp_path: Path) -> None:
    """Every tour command, in order, on a fresh data directory: each exits 0 (status 0 or 1)."""
    # Not under pytest's basetemp, which another pytest session may prune (chmod, rm) while
    # the embedded server runs in it.
    data = Path(tempfile.mkdtemp(prefix="hlfsync-tour-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HLFSYNC_")}
    env |= {"HLFSYNC_DATA_DIR": str(data), "HLFSYNC_API_PORT": "0"}
    running: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    try:
        for command in tour_commands():
            name = command.split()[3]
            line = _shell(command.replace("--mentors 100000", "--mentors 2000"))
            if name in LONG_RUNNING:
                if name == "sandbox":  # the tour stops the demo before the parts on their own
                    _interrupt(running.pop("demo"))
                running[name] = _background(line, env, tmp_path, LONG_RUNNING[name])
                continue
            done = subprocess.run(
                ["bash", "-c", line], env=env, cwd=tmp_path, capture_output=True, text=True,
                timeout=300, check=False,
            )  # fmt: skip
            allowed = (0, 1) if name == "status" else (0,)
            assert done.returncode in allowed, (command, done.stdout, done.stderr)
            assert "Traceback" not in done.stderr, (command, done.stderr)
        for name in list(running):
            _interrupt(running.pop(name))
    finally:
        for process, _ in running.values():
            process.kill()
            process.wait(timeout=60)
        subprocess.run(
            [sys.executable, "-m", "hlfsync", "db", "stop"], env=env, cwd=tmp_path,
            capture_output=True, check=False,
        )  # fmt: skip
        shutil.rmtree(data, ignore_errors=True)


def _background(
    line: str, env: dict[str, str], cwd: Path, marker: str
) -> tuple[subprocess.Popen[bytes], Path]:
    log = cwd / f"bg-{time.monotonic_ns()}.out"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            line.split(), env=env | {"HLFSYNC_LOG_FORMAT": "json"}, cwd=cwd, stdout=sink,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + READY_WITHIN_S
    while marker not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait(timeout=60)
            pytest.fail(f"{line!r} never said {marker!r}:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    return process, log


def _interrupt(started: tuple[subprocess.Popen[bytes], Path]) -> None:
    process, log = started
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=60)
    output = log.read_text(errors="replace")
    assert code in (0, 130), output
    assert "Traceback" not in output, output
