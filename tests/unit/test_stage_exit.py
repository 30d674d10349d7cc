"""A stage's process ends as soon as its main() has: its lines all printed, its exit status kept, and none of
Python's teardown (torch's alone takes 0.3 s); a bug still ends it with Python's traceback. Meanwhile it keeps
the memory it frees for its next allocations."""

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


FREED = """
import resource, sys
import numpy as np
from pipeline.errors import run_stage_process

def main():
    faults = []
    for _ in range(6):  # two 16 MB arrays, then neither: 32 MB at the top of the heap, which glibc trims
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        first, second = np.ones(2_000_000), np.ones(2_000_000)
        del first, second
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(*faults)

main() if sys.argv[1] == "as a script" else run_stage_process(main)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_a_stage_keeps_the_memory_it_frees_so_that_allocating_it_again_takes_no_page_faults():
    def faults(how: str) -> list[int]:
        done = subprocess.run([sys.executable, "-c", FREED, how], cwd=ROOT, capture_output=True, text=True, check=True)
        return [int(count) for count in done.stdout.split()]

    kept, handed_back = faults("as a stage"), faults("as a script")
    assert kept[0] > 100 and kept[1:] == [0] * 5, kept  # memory is touched once, the first time
    assert min(handed_back[1:]) > 100, handed_back  # what a process does by default: again and again
