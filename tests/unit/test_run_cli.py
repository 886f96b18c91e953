"""run_cli runs a command in this process as a fresh process would, and leaves no trace behind."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import pytest
import structlog

from hlfsync.testing import run_cli


def test_output_and_exit_code_are_captured() -> None:
    """stdout, stderr and SystemExit's code come back, as from a subprocess."""

    def main() -> None:
        print("data")
        print("a log line", file=sys.stderr)
        sys.exit(3)

    result = run_cli("x", main=main)
    assert (result.returncode, result.stdout, result.stderr) == (3, "data\n", "a log line\n")
    assert result.args == ("x",)


@pytest.mark.parametrize(
    ("outcome", "code", "stderr"),
    [
        (None, 0, ""),
        (SystemExit(), 0, ""),
        (SystemExit("hlfsync: bad"), 1, "hlfsync: bad\n"),
        (RuntimeError("boom"), 1, "Traceback"),
        (KeyboardInterrupt(), -signal.SIGINT, "KeyboardInterrupt"),
    ],
)
def test_exit_codes_are_the_interpreters(
    outcome: BaseException | None, code: int, stderr: str
) -> None:
    """A return is 0, SystemExit keeps its code or prints its message, an exception is 1."""

    def main() -> None:
        if outcome is not None:
            raise outcome

    result = run_cli(main=main)
    assert result.returncode == code
    assert stderr in result.stderr


def test_arguments_environment_stdin_and_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command sees argv, a clean HLFSYNC_* environment plus `env`, stdin and the cwd."""
    monkeypatch.setenv("HLFSYNC_LEFT_OVER", "from the test process")
    seen: dict[str, object] = {}

    def main() -> None:
        seen.update(
            argv=list(sys.argv), cwd=Path.cwd(), line=sys.stdin.readline(),
            tty=(sys.stdin.isatty(), sys.stdout.isatty(), sys.stderr.isatty()),
            env={k: v for k, v in os.environ.items() if k.startswith("HLFSYNC_")},
        )  # fmt: skip

    run_cli("status", "--json", env={"HLFSYNC_X": "1"}, cwd=tmp_path, input="secret\n", main=main)
    assert seen == {
        "argv": ["hlfsync", "status", "--json"],
        "cwd": tmp_path,
        "line": "secret\n",
        "tty": (False, False, False),
        "env": {"HLFSYNC_X": "1"},
    }


def test_process_state_is_put_back(tmp_path: Path) -> None:
    """Environment, cwd, argv, streams, signal handlers and warning filters are as before."""
    import warnings

    before = (dict(os.environ), Path.cwd(), list(sys.argv), sys.stdin, sys.stdout, sys.stderr)
    handler = signal.getsignal(signal.SIGTERM)
    filters = list(warnings.filters)

    def main() -> None:
        os.environ["HLFSYNC_SET_BY_COMMAND"] = "1"
        os.environ["PATH"] = "/nowhere"
        os.chdir("/")
        sys.argv.append("more")
        signal.signal(signal.SIGTERM, lambda *_: None)
        warnings.simplefilter("ignore")

    run_cli(env={"HLFSYNC_X": "1"}, cwd=tmp_path, main=main)
    assert (dict(os.environ), Path.cwd(), list(sys.argv), sys.stdin, sys.stdout, sys.stderr) == (
        before
    )
    assert signal.getsignal(signal.SIGTERM) is handler
    assert warnings.filters == filters


def test_logging_configuration_is_put_back() -> None:
    """Handlers, levels and structlog's configuration the command set up are undone."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    config = structlog.get_config()

    def main() -> None:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, force=True)
        logging.getLogger("made.by.the.command").addHandler(logging.StreamHandler(sys.stderr))
        logging.getLogger("hlfsync").setLevel(logging.CRITICAL)
        structlog.configure(processors=[structlog.processors.JSONRenderer()])

    run_cli(main=main)
    assert (root.handlers, root.level) == (handlers, level)
    assert logging.getLogger("made.by.the.command").handlers == []
    assert logging.getLogger("hlfsync").level == logging.NOTSET
    assert structlog.get_config() == config


def test_a_logger_used_by_the_command_is_not_pinned_to_its_output() -> None:
    """A cached structlog logger would keep writing to the run's stderr forever: it is not."""
    log = structlog.get_logger("hlfsync.some_module")

    def main() -> None:
        structlog.configure(
            processors=[structlog.processors.JSONRenderer()],
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
            cache_logger_on_first_use=True,
        )
        log.info("during the command")

    result = run_cli(main=main)
    assert "during the command" in result.stderr
    with structlog.testing.capture_logs() as events:
        log.info("after the command")
    assert [e["event"] for e in events] == ["after the command"]


async def test_it_runs_under_an_event_loop_too() -> None:
    """From an async test, a command that calls asyncio.run still runs (in a thread)."""

    def main() -> None:
        print(asyncio.run(asyncio.sleep(0, result="ran")))

    result = run_cli(main=main)
    assert (result.returncode, result.stdout) == (0, "ran\n")


def test_the_real_command_line(tmp_path: Path) -> None:
    """hlfsync itself: --help prints usage; a bad setting is one line on stderr and exit 2."""
    helped = run_cli("--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "Usage" in helped.stdout
    bad = run_cli("status", env={"HLFSYNC_RETRY_MAX_RETRIES": "three"}, cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.startswith("hlfsync: invalid setting HLFSYNC_RETRY_MAX_RETRIES: ")
    assert len(bad.stderr.splitlines()) == 1
