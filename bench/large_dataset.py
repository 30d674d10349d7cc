"""Each stage on n_points synthetic points (10^7 by default; 10^8 and 10^9 for data larger than memory):
wall time and peak memory, one process per stage. Every stage streams the table, so memory should not
grow with n: the target is at most 1.5 GB a stage at 10^9 points. Each time is also given in reads of the
table (pyarrow reads x and y a row group at a time, and NumPy sums them once), measured in the same run: at
5·10^7 points the targets are evaluate and visualize within 4 reads, train with one epoch within 8.

With --factor-levels L, the points gain a text column `group` of L levels (each adds its own shift to y), and
the model is `data.features: [x, group]`: L - 1 indicator columns, coded chunk by chunk from the levels'
codes (pipeline/terms.py).

Run from the repository root: `python -m bench.large_dataset [--points N] [--epochs E] [--factor-levels L]`
(or `make bench`).
"""

import argparse
import shutil
import subprocess
import sys
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


def add_factor(path: Path, levels: int) -> None:
    """Rewrite the points with a text column `group` of `levels` levels, row group by row group (the memory of
    one): row i is of level i·7919 mod levels, and y gains 0.1·level."""
    temporary = path.with_suffix(".with_group.parquet")
    with pyarrow.parquet.ParquetFile(path) as file:
        writer = None
        start = 0
        for index in range(file.num_row_groups):
            table = file.read_row_group(index)
            codes = (np.arange(start, start + table.num_rows, dtype=np.int64) * 7919) % levels
            start += table.num_rows
            names = pyarrow.array([f"level {code:02d}" for code in range(levels)])
            group = pyarrow.DictionaryArray.from_arrays(pyarrow.array(codes.astype(np.int32)), names)
            y = table.column("y").to_numpy() + 0.1 * codes
            table = table.set_column(table.schema.get_field_index("y"), "y", pyarrow.array(y))
            table = table.append_column("group", group.cast(pyarrow.string()))
            if writer is None:
                writer = pyarrow.parquet.ParquetWriter(temporary, table.schema)
            writer.write_table(table)
        writer.close()
    temporary.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--epochs", type=int, help="train.epochs (default: params.yaml's)")
    parser.add_argument("--factor-levels", type=int, default=0, help="add a text column of this many levels")
    arguments = parser.parse_args()
    points = arguments.points
    project = clone_head()
    params = set_points(project, points)
    if arguments.epochs is not None:
        params = set_params(project, {"train.epochs": arguments.epochs})
    levels = arguments.factor_levels
    if levels:
        params = set_params(project, {"data.features": ["x", "group"]})
    train, data = params["train"], params["data"]

    load_before = load_average()
    factor = f", a factor of {levels} levels" if levels else ""
    settings = (f"n_points = {points:,}{factor}, data.test_fraction = {data['test_fraction']}, train: {train['optimizer']}, "
                f"epochs = {train['epochs']}, batch_size = {train['batch_size']}, dtype = {train['dtype']}")
    print(f"machine: {machine()}")
    print(f"load average before: {load_before}")
    print(settings)
    stages = {}
    for name in STAGES:
        stages[name] = run_stage(project, name)
        if name == "synthesize" and levels:  # in its own process, so that this one stays small
            subprocess.run([sys.executable, "-c", f"from pathlib import Path; from bench.large_dataset import "
                            f"add_factor; add_factor(Path('data/points.parquet'), {levels})"], cwd=project, check=True)
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
    record(f"large_dataset-{points}" + (f"-factor-{levels}" if levels else ""), f"{points:,} synthetic points{factor}",
           f"Each stage as its own process: wall time and peak memory. {settings}; "
           f"data/points.parquet is {size / 1024**3:.2f} GiB. Target: at most 1.5 GB a stage.",
           rows, [f"Load average {load_before} before, {load_after} after."])
    shutil.rmtree(project.parent)


if __name__ == "__main__":
    main()
