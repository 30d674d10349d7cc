"""A user's CSV of 10,000,000 rows (3 features and a target) through every stage, and reading it against Parquet.

The table is like examples/houses.csv (area_m2 to one decimal, rooms, age_years, price_eur), written into a
clone of the project as data.source. Each stage runs as its own process, with train.epochs = 20 (the
figures are about the size of the table, not the length of training); its wall time and peak memory are
recorded (target: every stage under 3 GB). Then pipeline.dataset.read_table reads the CSV (pyarrow's
multi-threaded reader) and the same rows as Parquet.

Run from the repository root: `python -m bench.user_csv [--rows N]` (or `make bench`).
"""

import argparse
import multiprocessing
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet

from bench.common import STAGES, clone_head, load_average, machine, record, run_stage, set_params
from pipeline.dataset import read_table

LIMIT_BYTES = 3 * 1024**3
EPOCHS = 20
FEATURES = ["area_m2", "rooms", "age_years"]
TARGET = "price_eur"
READS = 3


def houses(n_rows: int, seed: int = 0) -> pa.Table:
    """Rows like examples/houses.csv: a price roughly linear in area, rooms and age, rounded as a user's are."""
    generator = np.random.default_rng(seed)
    area = np.round(generator.uniform(30.0, 250.0, n_rows), 1)
    rooms = np.clip(np.round(area / 35.0 + generator.normal(0.0, 0.7, n_rows)), 1, 9).astype(np.int64)
    age = generator.integers(0, 101, n_rows)
    price = np.round((2500.0 * area + 8000.0 * rooms - 1200.0 * age + generator.normal(0.0, 20000.0, n_rows)) / 100)
    return pa.table({"area_m2": area, "rooms": rooms, "age_years": age, TARGET: (100 * price).astype(np.int64)})


def write_tables(csv: Path, parquet: Path, n_rows: int) -> None:
    """The same rows as CSV and as Parquet."""
    table = houses(n_rows)
    pyarrow.csv.write_csv(table, csv)
    pyarrow.parquet.write_table(table, parquet)


def least_read_seconds(path: Path) -> float:
    """The least wall seconds of pipeline.dataset.read_table on the file, of READS reads."""
    times = []
    for _ in range(READS):
        start = time.perf_counter()
        read_table(path, FEATURES, TARGET)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    n_rows = parser.parse_args().rows
    load_before = load_average()
    project = clone_head()
    csv, parquet = project / "data" / "houses.csv", project / "data" / "houses.parquet"
    # In a process of its own: a stage's peak as Linux reports it is at least that of the process that
    # started it (subprocess uses vfork), so this one must stay small until the stages have run.
    writer = multiprocessing.get_context("spawn").Process(target=write_tables, args=(csv, parquet, n_rows))
    writer.start()
    writer.join()
    if writer.exitcode != 0:
        raise SystemExit(f"writing the tables exited {writer.exitcode}")
    set_params(project, {"data.source": "data/houses.csv", "data.features": FEATURES, "data.target": TARGET,
                         "train.epochs": EPOCHS, "predict.source": "data/houses.csv"})

    own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    stages = {name: run_stage(project, name) for name in STAGES}
    load_stages = load_average()
    reads = {path: least_read_seconds(path) for path in (csv, parquet)}

    print(f"machine: {machine()}; pyarrow {pa.__version__} with {pa.cpu_count()} threads")
    print(f"load average: {load_before} before, {load_stages} after the stages, {load_average()} after the reads")
    print(f"{n_rows:,} rows, columns {', '.join(FEATURES)} -> {TARGET}; data.source = data/houses.csv, "
          f"train.epochs = {EPOCHS}, the rest as params.yaml (synthesize draws its own points, unused)")
    for name, (elapsed, peak) in stages.items():
        verdict = "under 3 GB" if peak < LIMIT_BYTES else "OVER 3 GB"
        print(f"  {name:<11} {elapsed:7.1f} s   peak {peak / 1024**2:7.0f} MiB   {verdict}")
    print(f"  {'every stage':<11} {sum(elapsed for elapsed, _ in stages.values()):7.1f} s")
    print(f"  (each peak is at least the bench process's own, {own_peak / 1024**2:.0f} MiB: vfork, see run_stage)")
    print(f"pipeline.dataset.read_table, least of {READS}:")
    for path, seconds in reads.items():
        size = path.stat().st_size
        print(f"  {path.name:<15} {size / 1024**2:7.1f} MiB   {seconds:6.2f} s   {n_rows / seconds:10.3g} rows/s")
    print(f"  CSV / Parquet   {reads[csv] / reads[parquet]:6.1f} ×")
    rows = [["stage", "time", "peak memory"],
            *([name, f"{elapsed:.1f} s", f"{peak / 1024**2:,.0f} MiB"] for name, (elapsed, peak) in stages.items()),
            ["every stage", f"{sum(elapsed for elapsed, _ in stages.values()):.1f} s", ""]]
    reading = [f"Reading the table (pipeline.dataset.read_table, least of {READS}): "
               + "; ".join(f"{path.name} ({path.stat().st_size / 1024**2:.1f} MiB) in {seconds:.2f} s"
                           for path, seconds in reads.items())
               + f": CSV is {reads[csv] / reads[parquet]:.1f}× slower than Parquet."]
    record("user_csv", "Your own CSV at scale",
           f"{n_rows:,} rows like examples/houses.csv ({', '.join(FEATURES)} -> {TARGET}) as data.source, "
           f"train.epochs = {EPOCHS}; each stage as its own process. Target: every stage under 3 GB.",
           rows, [*reading, f"Each peak is at least the bench process's own, {own_peak / 1024**2:.0f} MiB.",
                  f"Load average {load_before} before, {load_stages} after the stages."],
           machine_line=f"{machine()}; pyarrow {pa.__version__} with {pa.cpu_count()} threads")
    shutil.rmtree(project.parent)


if __name__ == "__main__":
    main()
