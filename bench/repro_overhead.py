"""How much DVC and one process per stage cost: `dvc repro -f` against the four stages in one process.

Run from the repository root: `python -m bench.repro_overhead [--repeats N]` (or `make bench`).
"""

import argparse
import shutil
import statistics
import sys
from pathlib import Path

from bench.common import STAGES, clone_head, load_average, machine, record, seconds, set_points
from tools.commands import DVC

ONE_PROCESS = (
    "from pipeline import synthesize, train, evaluate, visualize\n"
    "for stage in (synthesize, train, evaluate, visualize):\n"
    "    stage.main()\n"
)


FULL, ONE_PROCESS_RUN, NOTHING = "dvc repro -f (4 processes)", "one process, 4 stages", "dvc repro, nothing to do"


def remove_outputs(project: Path) -> None:
    for folder in ("data", "models", "metrics", "plots"):
        for path in (project / folder).iterdir():
            if path.name != ".gitignore":
                path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--points", type=int, help="synthesize.n_points (default: params.yaml's)")
    arguments = parser.parse_args()
    load_before = load_average()
    project = clone_head()
    if arguments.points:
        set_points(project, arguments.points)
    dvc = list(DVC)
    seconds([*dvc, "repro", "--quiet"], project)

    timings: dict[str, list[float]] = {FULL: [], ONE_PROCESS_RUN: [], NOTHING: []}
    for _ in range(arguments.repeats):  # interleaved, so that a slow moment of the machine hits all alike
        timings[FULL].append(seconds([*dvc, "repro", "--force", "--quiet"], project))
        remove_outputs(project)
        timings[ONE_PROCESS_RUN].append(seconds([sys.executable, "-c", ONE_PROCESS], project))
        timings[NOTHING].append(seconds([*dvc, "repro", "--quiet"], project))
    per_stage = {
        name: statistics.median(seconds([sys.executable, "-m", f"pipeline.{name}"], project)
                                for _ in range(arguments.repeats))
        for name in STAGES
    }

    points = f" with n_points = {arguments.points:,}" if arguments.points else ""
    load_after = load_average()
    print(f"machine: {machine()}")
    print(f"load average: {load_before} before, {load_after} after")
    print(f"median of {arguments.repeats} runs, params.yaml of HEAD{points}")
    for name, values in timings.items():
        print(f"  {name:<32} {statistics.median(values):6.2f} s   (min {min(values):.2f}, max {max(values):.2f})")
    ratio = statistics.median(timings[FULL]) / statistics.median(timings[ONE_PROCESS_RUN])
    print(f"  full repro / one process         {ratio:6.2f} x   (target: at most 1.4 x)")
    for name, value in per_stage.items():
        print(f"  python -m pipeline.{name:<12} {value:6.2f} s")
    medians = {name: statistics.median(values) for name, values in timings.items()}
    record(f"repro_overhead{'-' + str(arguments.points) if arguments.points else ''}",
           "Stage overhead",
           f"`dvc repro -f` of the four stages, one process each, against the same stages in one Python process; "
           f"median of {arguments.repeats} runs, params.yaml of HEAD{points}.",
           [["", "time"],
            ["`dvc repro -f`: the four stages, one process each", f"{medians[FULL]:.2f} s"],
            ["the same four stages in one Python process", f"{medians[ONE_PROCESS_RUN]:.2f} s"],
            ["ratio", f"{ratio:.2f}× (target: at most 1.4×)"],
            ["`dvc repro` with nothing to do", f"{medians[NOTHING]:.2f} s"],
            *([f"`python -m pipeline.{name}` alone", f"{value:.2f} s"] for name, value in per_stage.items())],
           [f"Load average {load_before} before, {load_after} after."])
    shutil.rmtree(project.parent)


if __name__ == "__main__":
    main()
