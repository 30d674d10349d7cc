"""Each stage on n_points = 10,000,000: wall time and peak memory, one process per stage.

Run from the repository root: `python -m bench.large_dataset [--points N]` (or `make bench`).
"""

import argparse
import shutil

from bench.common import STAGES, clone_head, load_average, machine, run_stage, set_points

LIMIT_BYTES = 2 * 1024**3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000_000)
    points = parser.parse_args().points
    project = clone_head()
    params = set_points(project, points)
    train, data = params["train"], params["data"]

    print(f"machine: {machine()}")
    print(f"load average before: {load_average()}")
    print(f"n_points = {points:,}, data.test_fraction = {data['test_fraction']}, train: {train['optimizer']}, "
          f"epochs = {train['epochs']}, batch_size = {train['batch_size']}, dtype = {train['dtype']}")
    total = 0.0
    for name in STAGES:
        elapsed, peak = run_stage(project, name)
        total += elapsed
        verdict = "under 2 GB" if peak < LIMIT_BYTES else "OVER 2 GB"
        print(f"  {name:<11} {elapsed:7.1f} s   peak {peak / 1024**2:7.0f} MiB   {verdict}")
    print(f"  {'all four':<11} {total:7.1f} s")
    size = (project / "models" / "model.safetensors").stat().st_size
    print(f"models/model.safetensors: {size} bytes; load average after: {load_average()}")
    shutil.rmtree(project.parent)


if __name__ == "__main__":
    main()
