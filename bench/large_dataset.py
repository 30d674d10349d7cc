"""Each stage on n_points synthetic points (10^7 by default; 10^8 and 10^9 for data larger than memory):
wall time and peak memory, one process per stage. Every stage streams the table, so memory should not
grow with n: the target is at most 1.5 GB a stage at 10^9 points.

Run from the repository root: `python -m bench.large_dataset [--points N] [--epochs E]` (or `make bench`).
"""

import argparse
import shutil

from bench.common import STAGES, clone_head, load_average, machine, record, run_stage, set_points
from tools.project import set_params

LIMIT_BYTES = 1.5e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--epochs", type=int, help="train.epochs (default: params.yaml's)")
    arguments = parser.parse_args()
    points = arguments.points
    project = clone_head()
    params = set_points(project, points)
    if arguments.epochs is not None:
        params = set_params(project, {"train.epochs": arguments.epochs})
    train, data = params["train"], params["data"]

    load_before = load_average()
    settings = (f"n_points = {points:,}, data.test_fraction = {data['test_fraction']}, train: {train['optimizer']}, "
                f"epochs = {train['epochs']}, batch_size = {train['batch_size']}, dtype = {train['dtype']}")
    print(f"machine: {machine()}")
    print(f"load average before: {load_before}")
    print(settings)
    total = 0.0
    rows = [["stage", "time", "peak memory"]]
    for name in STAGES:
        elapsed, peak = run_stage(project, name)
        total += elapsed
        verdict = "within 1.5 GB" if peak <= LIMIT_BYTES else "OVER 1.5 GB"
        print(f"  {name:<11} {elapsed:7.1f} s   peak {peak / 1024**2:7.0f} MiB   {verdict}")
        rows.append([name, f"{elapsed:.1f} s", f"{peak / 1024**2:,.0f} MiB ({verdict})"])
    print(f"  {'all four':<11} {total:7.1f} s")
    rows.append(["all four", f"{total:.1f} s", ""])
    size = (project / "data" / "points.parquet").stat().st_size
    load_after = load_average()
    print(f"data/points.parquet: {size / 1024**3:.2f} GiB; load average after: {load_after}")
    record(f"large_dataset-{points}", f"{points:,} synthetic points",
           f"Each stage as its own process: wall time and peak memory. {settings}; "
           f"data/points.parquet is {size / 1024**3:.2f} GiB. Target: at most 1.5 GB a stage.",
           rows, [f"Load average {load_before} before, {load_after} after."])
    shutil.rmtree(project.parent)


if __name__ == "__main__":
    main()
