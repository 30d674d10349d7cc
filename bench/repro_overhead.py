"""How much DVC and one process per stage cost: `dvc repro -f` against the four stages in one process.

Run from the repository root: `python bench/repro_overhead.py [--repeats N]` (or `make bench`).
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import time

from common import STAGES, clone_head, environment, machine, set_points

ONE_PROCESS = (
    "from pipeline import synthesize, train, evaluate, visualize\n"
    "for stage in (synthesize, train, evaluate, visualize):\n"
    "    stage.main()\n"
)


def seconds(command: list[str], cwd) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=environment(), check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--points", type=int, help="synthesize.n_points (default: params.yaml's)")
    arguments = parser.parse_args()
    repeats = arguments.repeats
    project = clone_head()
    if arguments.points:
        set_points(project, arguments.points)
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "repro", "--quiet"], cwd=project, env=environment(), check=True, capture_output=True)

    timings: dict[str, list[float]] = {"dvc repro -f (4 processes)": [], "one process, 4 stages": [], "dvc repro, nothing to do": []}
    for _ in range(repeats):  # interleaved, so that a slow moment of the machine hits every command alike
        timings["dvc repro -f (4 processes)"].append(seconds([*dvc, "repro", "--force", "--quiet"], project))
        for folder in ("data", "models", "metrics", "plots"):
            for path in (project / folder).iterdir():
                if path.name != ".gitignore":
                    path.unlink()
        timings["one process, 4 stages"].append(seconds([sys.executable, "-c", ONE_PROCESS], project))
        timings["dvc repro, nothing to do"].append(seconds([*dvc, "repro", "--quiet"], project))
    per_stage = {name: statistics.median(seconds([sys.executable, "-m", f"pipeline.{name}"], project) for _ in range(repeats)) for name in STAGES}

    print(f"machine: {machine()}")
    print(f"median of {repeats} runs, params.yaml of HEAD" + (f" with n_points = {arguments.points:,}" if arguments.points else ""))
    for name, values in timings.items():
        print(f"  {name:<32} {statistics.median(values):6.2f} s   (min {min(values):.2f}, max {max(values):.2f})")
    ratio = statistics.median(timings["dvc repro -f (4 processes)"]) / statistics.median(timings["one process, 4 stages"])
    print(f"  full repro / one process         {ratio:6.2f} x   (target: at most 1.5 x)")
    for name, value in per_stage.items():
        print(f"  python -m pipeline.{name:<12} {value:6.2f} s")
    shutil.rmtree(project.parent)


if __name__ == "__main__":
    main()
