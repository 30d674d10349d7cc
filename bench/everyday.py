"""The everyday run against what a user would write instead: `dvc repro -f` of the default params (1,000 points,
every stage) against the tutorial as one plain script (bench/plain_tutorial.py: points, nn.Linear, SGD for 1,000
epochs, four PNGs), interleaved, in this interpreter's environment. Then each stage as a process: its fixed cost
(from the process's start to the end of its module's imports, where its main() begins to work) and its whole time.

Run from the repository root: `python -m bench.everyday [--repeats N]` (or `make bench`).
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, STAGES, clone_head, load_average, machine, record, seconds
from tools.commands import DVC, environment

TARGET = 1.5  # `dvc repro -f` within this many times the plain script
PLAIN = ROOT / "bench" / "plain_tutorial.py"
# The child prints when its imports are done (perf_counter is the system's monotonic clock, the parent's too),
# then runs the stage as `python -m pipeline.<stage>` does: its process started before the stage's imports (as
# pipeline/__init__.py starts it under -m) and ended as the stage ends it.
STAGE_RUN = ("import sys, time\nfrom pipeline.errors import run_stage_process, start_stage_process\n"
             "start_stage_process()\nimport pipeline.{stage} as stage\n"
             "print(time.perf_counter(), file=sys.stderr, flush=True)\nrun_stage_process(stage.main)\n")


def stage_seconds(project: Path, stage: str) -> tuple[float, float]:
    """(fixed cost, whole time) of one stage as a process."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", STAGE_RUN.format(stage=stage)], cwd=project, env=environment(),
                          check=True, capture_output=True, text=True)
    whole = time.perf_counter() - start
    return float(done.stderr.splitlines()[0]) - start, whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    load_before = load_average()
    project = clone_head()
    pictures = Path(tempfile.mkdtemp(prefix="plain-"))
    dvc = list(DVC)
    seconds([*dvc, "repro", "--quiet"], project)
    plain = [sys.executable, str(PLAIN), str(pictures)]
    seconds(plain, project)  # warm the file cache for both alike

    repro, script, nothing = [], [], []
    repro_cpu, script_cpu = [], []
    stages: dict[str, list[tuple[float, float]]] = {stage: [] for stage in STAGES}
    for _ in range(arguments.repeats):  # interleaved, so that a slow moment of the machine hits both alike
        repro.append(seconds([*dvc, "repro", "--force", "--quiet"], project, repro_cpu))
        script.append(seconds(plain, project, script_cpu))
        nothing.append(seconds([*dvc, "repro", "--quiet"], project))
        for stage in STAGES:
            stages[stage].append(stage_seconds(project, stage))
    repro_s, script_s, nothing_s = map(statistics.median, (repro, script, nothing))
    ratio = repro_s / script_s
    repro_c, script_c = statistics.median(repro_cpu), statistics.median(script_cpu)
    verdict = (f"`dvc repro -f` = {ratio:.2f} × the plain script: {'within' if ratio <= TARGET else 'NOT within'} "
               f"{TARGET:g} × (target)")
    load_after = load_average()
    print(f"machine: {machine()}")
    print(f"load average: {load_before} before, {load_after} after; medians of {arguments.repeats} interleaved runs")
    print(f"  dvc repro -f {repro_s:6.2f} s   plain script {script_s:6.2f} s   dvc repro, nothing to do {nothing_s:6.2f} s")
    print(f"  CPU time: dvc repro -f {repro_c:6.2f} s   plain script {script_c:6.2f} s   ratio {repro_c / script_c:.2f}")
    rows = []
    for stage, runs in stages.items():
        fixed, whole = (statistics.median(run[k] for run in runs) for k in (0, 1))
        rows.append([f"`python -m pipeline.{stage}`", f"{fixed:.2f} s", f"{whole:.2f} s", ""])
        print(f"  {stage:<12} fixed {fixed:6.2f} s   whole {whole:6.2f} s")
    print(verdict)
    record("everyday", "The everyday run",
           f"`dvc repro -f` of the default params (1,000 points, every stage) against the tutorial as one plain "
           f"script (bench/plain_tutorial.py: the points, `nn.Linear`, `torch.optim.SGD` for 1,000 epochs, four PNGs), "
           f"in the same environment, interleaved; medians of {arguments.repeats} runs. Then each stage as a process: "
           f"its fixed cost (from its start to the end of its imports, where its work begins) and its whole time. "
           f"CPU time: of every process the run started, which a busy machine stretches less than the wall time.",
           [["", "fixed cost", "time", "CPU time"],
            ["`dvc repro -f`, every stage", "", f"{repro_s:.2f} s", f"{repro_c:.2f} s"],
            ["the plain script", "", f"{script_s:.2f} s", f"{script_c:.2f} s"],
            ["ratio", "", f"{ratio:.2f}× (target: at most {TARGET:g}×)", f"{repro_c / script_c:.2f}×"],
            ["`dvc repro` with nothing to do", "", f"{nothing_s:.2f} s", ""],
            *rows],
           [verdict[0].upper() + verdict[1:] + ".", f"Load average {load_before} before, {load_after} after."])
    shutil.rmtree(project.parent)
    shutil.rmtree(pictures)


if __name__ == "__main__":
    main()
