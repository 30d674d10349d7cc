"""The one exception type for mistakes a user can fix, and the one place it becomes a message."""

import signal
import sys
from collections.abc import Callable
from pathlib import Path

# The exit code of a process that Ctrl-C ended, as shells report it (128 + SIGINT).
INTERRUPTED = 128 + signal.SIGINT

# The outputs this process has moved into place (pipeline.files.atomic_output adds each): an interrupted
# stage says which, if any.
outputs_written: list[Path] = []


class PipelineError(Exception):
    """A problem with params or input files, told to the user in one line."""


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(); a PipelineError exits 1 with one line on stderr, Ctrl-C exits 130 with one line,
    neither with a traceback."""
    if signal.getsignal(signal.SIGINT) is _exit_interrupted:
        # From here Ctrl-C raises KeyboardInterrupt, so that main()'s temporary files are removed as it unwinds.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print(f"error: {interrupted()}", file=sys.stderr)
        raise SystemExit(INTERRUPTED) from None


def first_few(items: "list[str] | tuple[str, ...]", at_most: int) -> str:
    """The first `at_most` items joined by commas, and how many more: a line stays one line however many."""
    more = f" and {len(items) - at_most:,} more" if len(items) > at_most else ""
    return ", ".join(items[:at_most]) + more


def cut(text: str, at_most: int = 40) -> str:
    """A user's text quoted for a message, cut to `at_most` characters before it is quoted: a 100,000-character
    name stays a short line, and quoting it costs nothing."""
    return repr(text if len(text) <= at_most else text[:at_most] + "...")


def interrupted() -> str:
    """What an interrupted stage tells: that it was, and what it wrote (nothing half-written, ever)."""
    if not outputs_written:
        return "interrupted (Ctrl-C): nothing written"
    written = ", ".join(str(path) for path in outputs_written)
    return f"interrupted (Ctrl-C) after writing {written}: `dvc repro` runs the stage again"


def exit_on_interrupt() -> None:
    """Ctrl-C while a stage's modules load (torch takes seconds) ends it as run_stage does: one line, exit 130."""
    signal.signal(signal.SIGINT, _exit_interrupted)


def _exit_interrupted(signum, frame) -> None:
    print(f"error: {interrupted()}", file=sys.stderr)
    raise SystemExit(INTERRUPTED)
