"""The pipeline against what a user would run instead at scale: `dvc repro -f` of every stage at 10^7 points
against a statsmodels script (bench/statsmodels_script.py: pandas read, OLS, summary, every row predicted with
its 95% interval into Parquet, one plot) and scikit-learn's LinearRegression fit and predict
(bench/sklearn_script.py), interleaved on the same table. `dvc repro -f` runs with each DVC cache.type: copy
(the project's, .dvc/config), reflink,copy (DVC's default) and hardlink; each stage is also timed alone, so that
what DVC itself adds (hashing and caching every output) shows.

The alternatives run on their own interpreter (bench/requirements.txt): ALTERNATIVE_PYTHON, or --python.
Run from the repository root: `python -m bench.alternatives [--points N] [--repeats N]` (or `make bench`).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import (ROOT, STAGES, clone_head, load_average, machine, md5_seconds, record, run_stage, seconds,
                          set_points)
from tools.commands import DVC
from tools.project import declared

TARGET = 1.0  # `dvc repro -f` within this many times the statsmodels script


# The project's cache.type, DVC's default and links: label, cache.type.
CACHE_TYPES = {"copy": "cache.type copy, the project's", "reflink,copy": "cache.type reflink,copy, DVC's default",
               "hardlink": "cache.type hardlink"}


def set_cache_type(project: Path, cache_type: str) -> None:
    """DVC's cache.type for this clone only (.dvc/config.local), its workspace relinked to match."""
    dvc = list(DVC)
    seconds([*dvc, "config", "--local", "cache.type", cache_type], project)
    seconds([*dvc, "checkout", "--relink", "--quiet"], project)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--python", default=os.environ.get("ALTERNATIVE_PYTHON", sys.executable),
                        help="the interpreter with bench/requirements.txt (default: ALTERNATIVE_PYTHON, else this one)")
    arguments = parser.parse_args()
    if subprocess.run([arguments.python, "-c", "import statsmodels, sklearn, pandas, matplotlib, pyarrow"],
                      capture_output=True).returncode != 0:
        raise SystemExit(f"error: {arguments.python} lacks bench/requirements.txt: expected ALTERNATIVE_PYTHON (or "
                         "--python) naming an interpreter with them, e.g. a venv of its own (bench/requirements.txt)")
    load_before = load_average()
    project = clone_head()
    set_points(project, arguments.points)
    dvc = list(DVC)
    seconds([*dvc, "repro", "--quiet"], project)
    table = project / "data" / "points.parquet"
    out = Path(tempfile.mkdtemp(prefix="alternatives-"))
    runs = {
        "statsmodels": [arguments.python, str(ROOT / "bench" / "statsmodels_script.py"), str(table), str(out)],
        "scikit-learn": [arguments.python, str(ROOT / "bench" / "sklearn_script.py"), str(table)],
    }
    times: dict[str, list[float]] = {**{cache_type: [] for cache_type in CACHE_TYPES}, **{name: [] for name in runs}}
    for _ in range(arguments.repeats):  # interleaved, so that a slow moment of the machine hits all alike
        for cache_type in CACHE_TYPES:
            set_cache_type(project, cache_type)
            times[cache_type].append(seconds([*dvc, "repro", "--force", "--quiet"], project))
        for name, command in runs.items():
            times[name].append(seconds(command, project))
    set_cache_type(project, "copy")
    outputs = {name: [project / out for out in declared(name, project)["outs"]] for name in STAGES}
    hashing = min(md5_seconds([path for name in STAGES for path in outputs[name]]) for _ in range(3))
    stages = {}
    for name in STAGES:  # each alone, no DVC, its outputs removed first as `dvc repro -f` does
        for path in outputs[name]:
            path.unlink(missing_ok=True)
        stages[name] = run_stage(project, name)[0]
    medians = {name: statistics.median(values) for name, values in times.items()}
    load_after = load_average()

    repro = medians["copy"]
    verdict = (f"`dvc repro -f` = {repro / medians['statsmodels']:.2f} × the statsmodels script: "
               f"{'within' if repro <= TARGET * medians['statsmodels'] else 'NOT within'} {TARGET:g} × (target)")
    rows = [["", "time", "× statsmodels", "× scikit-learn"]]

    def row(label: str, value: float) -> None:
        rows.append([label, f"{value:.2f} s", f"{value / medians['statsmodels']:.2f}", f"{value / medians['scikit-learn']:.2f}"])
        print(f"  {label:<64} {value:7.2f} s")

    print(f"machine: {machine()}")
    print(f"load average: {load_before} before, {load_after} after; medians of {arguments.repeats} interleaved runs")
    for cache_type, label in CACHE_TYPES.items():
        row(f"`dvc repro -f`, every stage ({label})", medians[cache_type])
    row("statsmodels script (bench/statsmodels_script.py)", medians["statsmodels"])
    row("scikit-learn fit and predict (bench/sklearn_script.py)", medians["scikit-learn"])
    for name, value in stages.items():
        row(f"`python -m pipeline.{name}` alone", value)
    row("every stage alone, added up", sum(stages.values()))
    row("DVC's own share of `dvc repro -f` (copy): the rest", repro - sum(stages.values()))
    row("… of which hashing every output once (md5, least of 3)", hashing)
    print(verdict)
    record(f"alternatives-{arguments.points}", f"Against statsmodels and scikit-learn, {arguments.points:,} points",
           f"`dvc repro -f` of every stage at n_points = {arguments.points:,} (predict.influence off, its default) "
           f"against a statsmodels script (pandas read, OLS, summary, every row predicted with its 95% prediction "
           f"interval into Parquet, one plot of 2,000 rows and the line) and scikit-learn's LinearRegression fit and "
           f"predict (no intervals, no file), on the same table, interleaved; medians of {arguments.repeats} runs. "
           f"Then each stage alone, once, its outputs removed first (as `dvc repro -f` does), and the md5 of "
           f"every output, which DVC computes after each stage.",
           rows, [verdict[0].upper() + verdict[1:] + ".", f"Load average {load_before} before, {load_after} after."])
    shutil.rmtree(project.parent)
    shutil.rmtree(out)


if __name__ == "__main__":
    main()
