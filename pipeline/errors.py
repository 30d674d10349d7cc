"""The one exception type for mistakes a user can fix, and the one place it becomes a message; how a stage's
process starts (keeping the memory it frees) and ends (its exit status, without Python's teardown)."""

import contextlib
import ctypes
import errno
import gc
import os
import signal
import sys
from collections.abc import Callable
from typing import NoReturn
from pathlib import Path

# The exit code of a process that Ctrl-C ended, as shells report it (128 + SIGINT).
INTERRUPTED = 128 + signal.SIGINT

# The outputs this process has moved into place (pipeline.files.atomic_output adds each): an interrupted
# stage says which, if any.
outputs_written: list[Path] = []
# Its inputs (its params' source paths, and every file it reads: pipeline.files notes each, from the root), which
# the guard on every write (pipeline.guard.guard) never lets an output be; and the outputs a param chose, by key.
inputs_named: list[Path] = []
outputs_chosen: dict[Path, str] = {}


class PipelineError(Exception):
    """A problem with params or input files, told to the user in one line."""


class Stopped(BaseException):
    """The stage was stopped by SIGTERM or SIGHUP: like KeyboardInterrupt, no `except Exception` holds it; one
    line, exit 128 + the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# What to do about an OS error, by errno: the line names the path, what happened and this.
_REMEDIES = {
    errno.ENOSPC: "free space on its disk, then run the stage again",
    errno.EDQUOT: "free space within your disk quota, then run the stage again",
    errno.EROFS: "its file system is read-only: run the stage where it can write",
    errno.EACCES: "you may not write or read there: fix its permissions (or its folder's), then run again",
    errno.EPERM: "you may not write or read there: fix its permissions (or its folder's), then run again",
    errno.EISDIR: "it is a folder: expected a file",
    errno.ENOTDIR: "a part of the path is a file, not a folder: expected folders on the way",
    errno.EEXIST: "a file stands where its folder should be: expected a folder there",
    errno.ENAMETOOLONG: "the name is too long for its file system: expected a shorter path",
    errno.EFBIG: "the file is too large for its file system: write it to another disk",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n), then run again",
}


def os_problem(path: "Path | str | None", error: OSError, doing: str = "write") -> str:
    """An OSError as one line: the path, what the system said, and what to do (pyarrow's own words are left out:
    they hold no more and run long)."""
    said = os.strerror(error.errno) if error.errno else "an input/output error"
    remedy = _REMEDIES.get(error.errno, "check the path and its disk, then run the stage again")
    where = path if path is not None else (error.filename or "a file")
    return f"{str(where)[:300]}: cannot {doing} it ({said}): {remedy}"


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(); a PipelineError exits 1 with one line on stderr, Ctrl-C exits 130 with one line,
    neither with a traceback."""
    if signal.getsignal(signal.SIGINT) is _exit_interrupted:
        # From here Ctrl-C raises KeyboardInterrupt (SIGTERM, SIGHUP: Stopped), so that main()'s temporary files
        # are removed as it unwinds.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for signum in STOPPING:
            if signal.getsignal(signum) is _exit_interrupted:
                signal.signal(signum, _stop)
    outputs_written.clear(), inputs_named.clear(), outputs_chosen.clear()  # a stage per process; tests run several
    try:
        main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print(f"error: {interrupted()}", file=sys.stderr)
        raise SystemExit(INTERRUPTED) from None
    except Stopped as stop:
        print(f"error: {interrupted(stop.signum)}", file=sys.stderr)
        raise SystemExit(128 + stop.signum) from None
    except OSError as error:  # a read or a write the stage did not expect to fail (a write names its file)
        print(f"error: {os_problem(None, error, 'read or write')}", file=sys.stderr)
        raise SystemExit(1) from None


def run_stage_process(main: Callable[[], None]) -> NoReturn:
    """`python -m pipeline.<stage>`: run_stage(main), then end the process at once with its exit status. Every
    output is written, closed and renamed by then; what is left is Python tearing down the modules it loaded,
    which for torch alone takes 0.3 s (a tenth of the tutorial's `dvc repro`). An exception run_stage does not
    handle (a bug) still ends the process as Python does, with its traceback."""
    keep_freed_memory()
    collect_only_new_objects()
    try:
        run_stage(main)
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
        if isinstance(stop.code, str):
            print(stop.code, file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader gone, or a stream closed: nothing to keep
            stream.flush()
    os._exit(code)


def collect_only_new_objects() -> None:
    """Leave what the stage's imports made (modules, classes, functions: torch's alone are about 150,000 objects)
    out of every garbage collection from now on, and collect again (start_stage_process held the collector
    during the imports). Python's collector walks every object it tracks in each full collection: in train at
    1,000 points, three of them and the smaller ones took 0.25 s of its 1.8 s."""
    gc.freeze()
    gc.enable()


# glibc's mallopt(3) parameters.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
LARGEST_MMAP_THRESHOLD = 32 << 20  # glibc's own bound on 64-bit systems


def keep_freed_memory() -> None:
    """Have glibc's malloc keep what the process frees for its next allocations, not hand it back to the system.
    A stage allocates and frees the same sizes pass after pass (a row group's columns, a window's rows), and
    memory handed back comes again through page faults, which a virtual machine makes dear (figures:
    docs/design.md, Outputs). Linux only (musl's mallopt does nothing); elsewhere nothing is done."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None) if sys.platform.startswith("linux") else None
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, LARGEST_MMAP_THRESHOLD)  # below 32 MiB from the heap, which it keeps …
        mallopt(M_TRIM_THRESHOLD, 2**31 - 1)  # … as it never gives its top back


def first_few(items: "list[str] | tuple[str, ...]", at_most: int) -> str:
    """The first `at_most` items joined by commas, and how many more: a line stays one line however many."""
    more = f" and {len(items) - at_most:,} more" if len(items) > at_most else ""
    return ", ".join(items[:at_most]) + more


def cut(text: str, at_most: int = 40) -> str:
    """A user's text quoted for a message, cut to `at_most` characters before it is quoted: a 100,000-character
    name stays a short line, and quoting it costs nothing."""
    return repr(text if len(text) <= at_most else text[:at_most] + "...")


def interrupted(signum: int = signal.SIGINT) -> str:
    """What an interrupted stage tells: that it was, and what it wrote (nothing half-written, ever)."""
    how = "interrupted (Ctrl-C)" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
    if not outputs_written:
        return f"{how}: nothing written"
    written = ", ".join(str(path) for path in outputs_written)
    return f"{how} after writing {written}: `dvc repro` runs the stage again"


# Signals that end a stage with one line, as Ctrl-C does (torch's launcher, under train.processes > 1, passes
# these on to its processes).
STOPPING = (signal.SIGTERM, signal.SIGHUP)


def start_stage_process() -> None:
    """What a stage's process does before its modules load (pipeline/__init__.py): Ctrl-C ends it with one line
    from then on, and the garbage collector waits until the imports are done, which make hundreds of thousands
    of objects that live as long as the process (run_stage_process then leaves them out of every collection)."""
    exit_on_interrupt()
    gc.disable()


def exit_on_interrupt() -> None:
    """Ctrl-C (or SIGTERM, SIGHUP) while a stage's modules load (torch takes seconds) ends it as run_stage does:
    one line, exit 128 + the signal."""
    for signum in (signal.SIGINT, *STOPPING):
        if signum != signal.SIGHUP or signal.getsignal(signum) is not signal.SIG_IGN:  # `nohup`'s SIGHUP stays ignored
            signal.signal(signum, _exit_interrupted)


def _exit_interrupted(signum, frame) -> None:
    print(f"error: {interrupted(signum)}", file=sys.stderr)
    raise SystemExit(128 + signum)


def _stop(signum, frame) -> None:
    raise Stopped(signum)
