"""Each stage on n_points = 10,000,000: wall time and peak memory, one process per stage.

Run from the repository root: `python -m bench.large_dataset [--points N]` (or `make bench`).
"""

import argparse
import os
import shutil
import subprocess
import sys
import time

from bench.common import STAGES, clone_head, machine, set_points
from tools.commands import environment

LIMIT_BYTES = 2 * 1024**3


def run_stage(project, name: str) -> tuple[float, int]:
    """Wall seconds and peak resident bytes of `python -m pipeline.<name>` (this process alone)."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", f"pipeline.{name}"], cwd=project, env=environment(),
                               stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)  # the rusage of this one child, not of all children so far
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"pipeline.{name} exited {process.returncode}")
    return time.perf_counter() - start, usage.ru_maxrss * 1024  # Linux reports ru_maxrss in KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000_000)
    points = parser.parse_args().points
    project = clone_head()
    params = set_points(project, points)

    print(f"machine: {machine()}")
    print(f"n_points = {points:,}, epochs = {params['train']['epochs']}")
    total = 0.0
    for name in STAGES:
        elapsed, peak = run_stage(project, name)
        total += elapsed
        verdict = "under 2 GB" if peak < LIMIT_BYTES else "OVER 2 GB"
        print(f"  {name:<11} {elapsed:7.1f} s   peak {peak / 1024**2:7.0f} MiB   {verdict}")
    print(f"  {'all four':<11} {total:7.1f} s")
    shutil.rmtree(project.parent)


if __name__ == "__main__":
    main()
