"""Training throughput (points × epochs per second) of the train stage at 10^8 points: 1 and 2 processes on
CPU, and 1 on CUDA where there is a GPU.

Each setting runs train twice, with 1 and with 1 + --epochs (10) epochs, so that the passes every run makes
(checking the file, scaling, least squares, the gap) cancel out: throughput = training rows × extra
epochs / extra seconds. Run from the repository root: `python -m bench.training_scaling` (or `make bench`).
"""

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import ROOT, clone_head, load_average, machine, record, run_stage, set_points
from pipeline.holdout import held_out_count
from tools.commands import environment
from tools.project import set_params


def train_seconds(project: Path) -> float:
    """Wall seconds of `python -m pipeline.train`, its processes included."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline.train"], cwd=project, env=environment(), check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000_000)
    parser.add_argument("--epochs", type=int, default=10, help="epochs beyond the first, timed")
    parser.add_argument("--settings", default="cpu:1,cpu:2,cuda:1", help="device:processes, comma-separated")
    parser.add_argument("--copy", action="store_true", help="a copy of this working tree instead of a clone of HEAD")
    arguments = parser.parse_args()
    if arguments.copy:  # for a machine where the project arrives without its git history (a lent GPU)
        project = Path(shutil.copytree(ROOT, Path("/tmp") / "bench-copy" / "project", dirs_exist_ok=True,
                                       ignore=shutil.ignore_patterns(".venv", ".git", ".whl", "data", "models")))
    else:
        project = clone_head()
    params = set_points(project, arguments.points)
    import torch  # only to tell whether a GPU is here

    machine_line = machine()
    if torch.cuda.is_available():
        machine_line += f"; GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}"
    load_before = load_average()
    print(f"machine: {machine_line}")
    print(f"load average before: {load_before}")
    rows = [["setting", "an epoch", "points × epochs / s"]]
    elapsed, peak = run_stage(project, "synthesize")
    print(f"synthesize {arguments.points:,} points: {elapsed:.1f} s, peak {peak / 1024**2:.0f} MiB")
    n_train = arguments.points - held_out_count(arguments.points, params["data"]["test_fraction"])
    print(f"train: full batch, float32, sgd; {arguments.epochs} timed epochs over {n_train:,} training rows")
    for setting in arguments.settings.split(","):
        device, processes = setting.split(":")
        if device == "cuda" and not torch.cuda.is_available():
            print(f"  {setting:<8} skipped: no CUDA device here")
            rows.append([f"{device}, {processes} process(es)", "not run: no CUDA device here", ""])
            continue
        seconds = []
        for epochs in (1, 1 + arguments.epochs):
            set_params(project, {"train.device": device, "train.processes": int(processes), "train.epochs": epochs,
                                 "train.batch_size": None, "train.dtype": "float32"})
            seconds.append(train_seconds(project))
        extra = seconds[1] - seconds[0]
        print(f"  {device} × {processes} process(es): {seconds[0]:6.1f} s with 1 epoch, {seconds[1]:6.1f} s with "
              f"{1 + arguments.epochs}: {extra / arguments.epochs:6.2f} s an epoch, "
              f"{n_train * arguments.epochs / extra:,.0f} points × epochs per second")
        rows.append([f"{device}, {processes} process(es)", f"{extra / arguments.epochs:.2f} s",
                     f"{n_train * arguments.epochs / extra:.2g}"])
    load_after = load_average()
    print(f"load average after: {load_after}")
    record(f"training_scaling-{arguments.points}", "Processes and devices",
           f"train on {arguments.points:,} synthetic points ({n_train:,} training rows), full batch, float32, sgd; "
           f"an epoch is the difference between runs of 1 and {1 + arguments.epochs} epochs, over "
           f"{arguments.epochs}, so that the passes every run makes cancel out.",
           rows, [f"Load average {load_before} before, {load_after} after."], machine_line=machine_line)
    shutil.rmtree(project.parent)


if __name__ == "__main__":
    main()
