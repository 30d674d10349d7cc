"""A stage's process ends as soon as its main() has: its lines all printed, its exit status kept, and none of
Python's teardown (torch's alone takes 0.3 s); a bug still ends it with Python's traceback."""

import subprocess
import sys

import pytest

from workspace import ROOT

SCRIPT = """
import atexit, sys
from pipeline.errors import PipelineError, run_stage_process
atexit.register(lambda: print("Python's teardown ran", file=sys.stderr))
def main():
    for line in range(3000):  # more than a pipe's buffer: flushed before the process ends
        print(f"line {line}")
    if sys.argv[1] == "error":
        raise PipelineError("data/points.parquet: not found: expected the output of an earlier stage")
    if sys.argv[1] == "bug":
        raise ZeroDivisionError("a bug")
run_stage_process(main)
"""


def run(how: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT, how], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize(("how", "code", "stderr"), [
    ("done", 0, ""),
    ("error", 1, "error: data/points.parquet: not found: expected the output of an earlier stage\n"),
])
def test_a_stage_ends_with_its_status_and_every_line_printed_without_pythons_teardown(how, code, stderr):
    done = run(how)
    assert (done.returncode, done.stderr) == (code, stderr)
    assert done.stdout.splitlines() == [f"line {line}" for line in range(3000)]


def test_a_bug_still_ends_the_process_with_pythons_traceback():
    done = run("bug")
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "ZeroDivisionError: a bug" in done.stderr
    assert "Python's teardown ran" in done.stderr
