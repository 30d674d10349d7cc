"""Training throughput at 10,000,000 points: pipeline.train.fit's epoch against a memory floor.

The floor is the time to read x and y once (the sum of the (d, n) feature tensor and of the (n, 1) target,
hot, in the epoch's dtype), measured in the same run at 1 and 2 torch threads; fit forces one thread.
An epoch is fit's own: the time of fit with k2 epochs less that with k1, over k2 - k1, so that reading,
scaling and converting the rows count once and drop out. The naive epoch (the whole (n, d) tensor through
nn.Linear, MSELoss, backward, an SGD step) is timed alongside for comparison. Target: a full-batch float32
epoch within 10 × the floor.

Run from the repository root: `python -m bench.training_throughput [--points N]` (or `make bench`).
"""

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bench.common import ROOT, load_average, machine, record
from pipeline.dataset import Split, Table
from pipeline.params import TrainParams, load_params
from pipeline.train import DTYPES, fit

BATCH_SIZES = (None, 65536)
THREADS = (1, 2)
TARGET = 10.0  # a full-batch float32 epoch within TARGET × the floor
# fit's epochs for the difference: a full-batch epoch is quick, a shuffled mini-batch epoch is not.
EPOCHS = {None: (2, 12), 65536: (1, 3)}


def fastest(action: Callable[[], object], repeats: int) -> float:
    """The least wall seconds of `repeats` calls, after one to warm up: the run least disturbed."""
    action()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def synthetic_split(n_points: int, seed: int = 0) -> Split:
    """y = 2.5·x − 1 + noise, x uniform in [−5, 5], as synthesize draws it; every row for training."""
    generator = np.random.default_rng(seed)
    features = generator.uniform(-5.0, 5.0, size=(n_points, 1))
    target = 2.5 * features[:, 0] - 1.0 + generator.normal(0.0, 1.0, size=n_points)
    return Split(Path("synthetic"), Table(features, target), None)


def floor_seconds(n_points: int, dtype: torch.dtype, threads: int, repeats: int) -> float:
    """Reading the (d, n) features and the (n, 1) target once, hot, at `threads` torch threads."""
    generator = torch.Generator().manual_seed(0)
    columns = torch.randn(1, n_points, generator=generator, dtype=dtype)
    target = torch.randn(n_points, 1, generator=generator, dtype=dtype)
    torch.set_num_threads(threads)
    return fastest(lambda: (columns.sum().item(), target.sum().item()), repeats)


def naive_epoch_seconds(n_points: int, dtype: torch.dtype, threads: int, repeats: int) -> float:
    """The textbook full-batch epoch: nn.Linear on the whole (n, 1) tensor, MSELoss, backward, SGD step."""
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(n_points, 1, generator=generator, dtype=dtype)
    target = torch.randn(n_points, 1, generator=generator, dtype=dtype)
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1, dtype=dtype)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    loss_function = torch.nn.MSELoss()

    def epoch() -> None:
        optimizer.zero_grad()
        loss = loss_function(model(features), target)
        loss.backward()
        optimizer.step()

    torch.set_num_threads(threads)
    return fastest(epoch, repeats)


def fit_epoch_seconds(split: Split, base: TrainParams, dtype: str, batch_size: int | None, repeats: int) -> float:
    """fit's time per epoch: (least time with k2 epochs − least time with k1) / (k2 − k1), interleaved."""
    few, many = EPOCHS[batch_size]
    settings = {epochs: base.model_copy(update={"epochs": epochs, "batch_size": batch_size, "dtype": dtype})
                for epochs in (few, many)}
    times: dict[int, list[float]] = {few: [], many: []}
    for _ in range(repeats):  # interleaved, so that a slow moment of the machine hits both alike
        for epochs, params in settings.items():
            start = time.perf_counter()
            fit(split, ("x",), params)
            times[epochs].append(time.perf_counter() - start)
    return (min(times[many]) - min(times[few])) / (many - few)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3, help="fit runs per epoch count (floors: 5 × as many)")
    arguments = parser.parse_args()
    n_points, repeats = arguments.points, arguments.repeats
    # params.yaml's train section (optimizer, lr, standardize...), with the epochs, batch and dtype varied.
    base = load_params(TrainParams, ROOT / "params.yaml")
    load_before = load_average()
    default_threads = torch.get_num_threads()

    split = synthetic_split(n_points)
    fit(split, ("x",), base.model_copy(update={"epochs": 1}))  # warm up torch's first-call costs
    floors: dict[tuple[str, int], float] = {}
    rows: list[tuple[str, str, float]] = []  # setting, dtype, seconds per epoch
    for dtype in DTYPES:
        for batch_size in BATCH_SIZES:
            seconds = fit_epoch_seconds(split, base, dtype, batch_size, repeats)
            batch = "full batch" if batch_size is None else f"batch_size {batch_size}"
            rows.append((f"fit, {dtype}, {batch} (1 thread, forced)", dtype, seconds))
        for threads in THREADS:
            rows.append((f"naive, {dtype}, full batch ({threads} thread{'s' * (threads > 1)})", dtype,
                         naive_epoch_seconds(n_points, DTYPES[dtype], threads, repeats)))
            floors[dtype, threads] = floor_seconds(n_points, DTYPES[dtype], threads, 5 * repeats)
    torch.set_num_threads(default_threads)

    machine_line = machine(f"1 in fit (forced), 1 or 2 as labelled elsewhere; default {default_threads}")
    load_after = load_average()
    print(f"machine: {machine_line}")
    print(f"load average: {load_before} before, {load_after} after")
    print(f"n_points = {n_points:,}, d = 1, every row for training (no test split); params.yaml's train section "
          f"({base.optimizer}, lr = {base.lr}, standardize = {base.standardize}) with epochs, batch_size, dtype varied")
    print(f"fit's epoch = (t(k2 epochs) - t(k1 epochs)) / (k2 - k1), least of {repeats} runs each; "
          f"k1, k2 = {EPOCHS[None]} full batch, {EPOCHS[65536]} mini-batch")
    for dtype in DTYPES:
        print(f"floor, {dtype} (read x and y once, least of {5 * repeats}): "
              + ", ".join(f"{floors[dtype, threads] * 1e3:.2f} ms at {threads} thread{'s' * (threads > 1)}"
                          for threads in THREADS))
    header = f"  {'setting':<52} {'ms/epoch':>9} {'points×epochs/s':>16} {'× floor (1 thread)':>19} {'× floor (2 threads)':>20}"
    print(header)
    for setting, dtype, seconds in rows:
        ratios = "".join(f" {seconds / floors[dtype, threads]:>{width}.1f}" for threads, width in zip(THREADS, (19, 20)))
        print(f"  {setting:<52} {seconds * 1e3:9.1f} {n_points / seconds:16.3g}{ratios}")
    print("  (× floor: against the floor of the row's own dtype)")
    full_float32 = rows[0][2]
    verdicts = []
    for threads in THREADS:
        ratio = full_float32 / floors["float32", threads]
        verdict = "within" if ratio <= TARGET else "NOT within"
        verdicts.append(f"full-batch float32 epoch = {ratio:.1f} × the {threads}-thread floor: {verdict} "
                        f"{TARGET:g} × (target)")
        print(verdicts[-1])
    floor_lines = [f"Floor, {dtype} (read x and y once, least of {5 * repeats}): "
                   + ", ".join(f"{floors[dtype, threads] * 1e3:.2f} ms at {threads} thread{'s' * (threads > 1)}"
                               for threads in THREADS) + "." for dtype in DTYPES]
    record("training_throughput", "Training throughput",
           f"pipeline.train.fit on {n_points:,} points, one feature, every row for training; an epoch is "
           f"(t(k2 epochs) − t(k1 epochs)) / (k2 − k1), least of {repeats} runs each, so that reading and scaling "
           f"drop out. The floor is reading x and y once; the naive epoch is nn.Linear on all rows, MSELoss, backward.",
           [["epoch", "ms", "points × epochs / s", "× floor, 1 thread", "× floor, 2 threads"],
            *([setting, f"{seconds * 1e3:.1f}", f"{n_points / seconds:.2g}",
               *(f"{seconds / floors[dtype, threads]:.1f}" for threads in THREADS)] for setting, dtype, seconds in rows)],
           [*floor_lines, *(line.capitalize() + "." for line in verdicts),
            f"Load average {load_before} before, {load_after} after."], machine_line=machine_line)


if __name__ == "__main__":
    main()
