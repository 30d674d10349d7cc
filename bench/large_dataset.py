"""Each stage on n_points synthetic points (10^7 by default; 10^8 and 10^9 for data larger than memory):
wall time and peak memory, one process per stage. Every stage streams the table, so memory should not
grow with n: the target is at most 1.5 GB a stage at 10^9 points. Each time is also given in reads of the
table (pyarrow reads x and y a row group at a time, and NumPy sums them once), measured in the same run: at
5·10^7 points the targets are evaluate and visualize within 4 reads, train with one epoch within 8.

Run from the repository root: `python -m bench.large_dataset [--points N] [--epochs E]` (or `make bench`).
"""

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet

from bench.common import STAGES, clone_head, load_average, machine, record, run_stage, set_points
from tools.project import set_params

LIMIT_BYTES = 1.5e9


READS = 3


def one_read_seconds(path: Path) -> float:
    """The least wall seconds, of READS, to read x and y from the Parquet file a row group at a time and sum
    them with NumPy: what any stage must do at least once."""
    times = []
    for _ in range(READS):
        start = time.perf_counter()
        with pyarrow.parquet.ParquetFile(path) as file:
            for group in range(file.num_row_groups):
                table = file.read_row_group(group, columns=["x", "y"])
                float(np.sum(table.column("x").to_numpy()) + np.sum(table.column("y").to_numpy()))
        times.append(time.perf_counter() - start)
    return min(times)


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
    stages = {name: run_stage(project, name) for name in STAGES}
    read = one_read_seconds(project / "data" / "points.parquet")  # after the stages: this process stays small
    print(f"  one read of the table (least of {READS}) {read:7.2f} s")
    total = 0.0
    rows = [["stage", "time", "reads of the table", "peak memory"]]
    for name, (elapsed, peak) in stages.items():
        total += elapsed
        verdict = "within 1.5 GB" if peak <= LIMIT_BYTES else "OVER 1.5 GB"
        print(f"  {name:<11} {elapsed:7.1f} s  {elapsed / read:6.1f} reads   peak {peak / 1024**2:7.0f} MiB   {verdict}")
        rows.append([name, f"{elapsed:.1f} s", f"{elapsed / read:.1f}", f"{peak / 1024**2:,.0f} MiB ({verdict})"])
    print(f"  {'every stage':<11} {total:7.1f} s")
    rows.append(["every stage", f"{total:.1f} s", "", ""])
    rows.append(["one read of the table (floor)", f"{read:.2f} s", "1", ""])
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
