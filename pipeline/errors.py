"""The one exception type for mistakes a user can fix, and the one place it becomes a message."""

import sys
from collections.abc import Callable


class PipelineError(Exception):
    """A problem with params or input files, told to the user in one line."""


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(); a PipelineError exits 1 with one line on stderr, no traceback."""
    try:
        main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
