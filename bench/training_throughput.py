"""Training throughput at 10,000,000 points: pipeline.training.fit's epoch against the all-core memory floor.

The floor is the time to read x and y once (the sum of the (d, n) feature tensor and of the (n, 1) target,
hot, in the epoch's dtype) on all the threads torch is given (every core by default), measured in the same
run. An epoch is fit's own, on all those threads and, for comparison, on one: the time of fit with k2 epochs
less that with k1, over k2 - k1, so that reading, scaling and converting the rows count once and drop out.
The naive epoch (the whole (n, d) tensor through nn.Linear, MSELoss, backward, an SGD step) is timed
alongside, and so is the weight's gradient alone (slopeᵀ · x on each chunk, on every thread): MKL computes it
one fused multiply-add after another, in the order its bits come from, so its time bounds the epoch's.
Targets: a full-batch float32 epoch within 6 × the floor, a 65,536-row mini-batch epoch within 40 ×.

Run from the repository root: `python -m bench.training_throughput [--points N]` (or `make bench`).
"""

import argparse
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from bench.common import ROOT, load_average, machine, record
from pipeline.dataset import Table
from pipeline.rows import CHUNK_ROWS
from pipeline.split import Split
from pipeline.params import TrainParams, load_params
from pipeline.training import DTYPES, fit

BATCH_SIZES = (None, 65536)
TARGETS = {None: 6.0, 65536: 40.0}  # float32 epochs within TARGETS × the all-core floor
# fit's epochs for the difference: a full-batch epoch is quick, a shuffled mini-batch epoch is not.
EPOCHS = {None: (2, 12), 65536: (1, 6)}


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


def gradient_chain_seconds(n_points: int, dtype: torch.dtype, threads: int, repeats: int) -> float:
    """The weight's gradient alone, as fit computes it: slopeᵀ · x on each CHUNK_ROWS chunk of one feature,
    the chunks shared by `threads` threads of one torch thread each. Where MKL's sgemv for this shape adds one
    product at a time (chain_is_sequential), a chunk costs a multiply-add's latency a row."""
    generator = torch.Generator().manual_seed(0)
    slope = torch.randn(n_points, 1, generator=generator, dtype=dtype)
    inputs = torch.randn(n_points, 1, generator=generator, dtype=dtype)
    starts = range(0, n_points, CHUNK_ROWS)
    torch.set_num_threads(1)  # for this thread and the pool's, as training.chunk_threads does

    def chains(share: int) -> None:
        for start in starts[share::threads]:
            slope[start:start + CHUNK_ROWS].t().mm(inputs[start:start + CHUNK_ROWS])

    with ThreadPoolExecutor(threads) as pool:
        return fastest(lambda: list(pool.map(chains, range(threads))), repeats)


def rounded_to_float32(value: Fraction) -> Fraction:
    """`value` rounded to the nearest float32, ties to even, exactly (no double rounding through float64)."""
    guess = np.float32(float(value))
    neighbours = [np.nextafter(guess, np.float32(-np.inf)), guess, np.nextafter(guess, np.float32(np.inf))]
    return min((Fraction(float(candidate)) for candidate in neighbours),
               key=lambda candidate: (abs(candidate - value), int(np.float32(candidate).view(np.uint32)) & 1))


def chain_is_sequential(rows: int = 4096) -> bool:
    """Whether slopeᵀ · x in float32 (as fit computes the weight's gradient) equals, bit for bit, one fused
    multiply-add a row in order, computed exactly with fractions: the order that makes it a chain of latencies."""
    generator = torch.Generator().manual_seed(1)
    slope, inputs = torch.randn(rows, 1, generator=generator), torch.randn(rows, 1, generator=generator)
    total = Fraction(0)
    for a, b in zip(slope[:, 0].tolist(), inputs[:, 0].tolist()):
        total = rounded_to_float32(Fraction(a) * Fraction(b) + total)
    torch.set_num_threads(1)
    return Fraction(slope.t().mm(inputs).item()) == total


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
    """fit's time per epoch, on the threads torch has now: (least time with k2 epochs − least time with k1) /
    (k2 − k1), interleaved."""
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
    base = load_params(TrainParams, ROOT / "params.yaml").model_copy(update={"stop_when_converged": False})
    load_before = load_average()
    cores = torch.get_num_threads()  # every core, or OMP_NUM_THREADS
    threads_named = {cores: f"{cores} thread{'s' * (cores > 1)}", 1: "1 thread"}

    split = synthetic_split(n_points)
    fit(split, ("x",), base.model_copy(update={"epochs": 1}))  # warm up torch's first-call costs
    floors: dict[str, float] = {}
    rows: list[tuple[str, str, float]] = []  # setting, dtype, seconds per epoch
    epochs: dict[tuple[str, int | None], float] = {}  # (dtype, batch_size) on every thread: seconds
    chains: dict[str, float] = {}  # dtype: seconds of the weight's gradient alone, on every thread
    for dtype in DTYPES:
        for batch_size in BATCH_SIZES:
            batch = "full batch" if batch_size is None else f"batch_size {batch_size}"
            for threads in dict.fromkeys((cores, 1)):
                torch.set_num_threads(threads)  # fit works on chunks with as many threads
                seconds = fit_epoch_seconds(split, base, dtype, batch_size, repeats)
                rows.append((f"fit, {dtype}, {batch} ({threads_named[threads]})", dtype, seconds))
                if threads == cores:
                    epochs[dtype, batch_size] = seconds
        for threads in dict.fromkeys((cores, 1)):
            rows.append((f"naive, {dtype}, full batch ({threads_named[threads]})", dtype,
                         naive_epoch_seconds(n_points, DTYPES[dtype], threads, repeats)))
        chains[dtype] = gradient_chain_seconds(n_points, DTYPES[dtype], cores, 5 * repeats)
        rows.append((f"the weight's gradient alone, {dtype} ({threads_named[cores]})", dtype, chains[dtype]))
        floors[dtype] = floor_seconds(n_points, DTYPES[dtype], cores, 5 * repeats)
    torch.set_num_threads(cores)

    machine_line = machine(f"{cores} (all cores) unless labelled 1")
    load_after = load_average()
    print(f"machine: {machine_line}")
    print(f"load average: {load_before} before, {load_after} after")
    print(f"n_points = {n_points:,}, d = 1, every row for training (no test split); params.yaml's train section "
          f"({base.optimizer}, lr = {base.lr}, standardize = {base.standardize}) with epochs, batch_size, dtype varied")
    print(f"fit's epoch = (t(k2 epochs) - t(k1 epochs)) / (k2 - k1), least of {repeats} runs each; "
          f"k1, k2 = {EPOCHS[None]} full batch, {EPOCHS[65536]} mini-batch")
    floor_lines = [f"All-core floor, {dtype} (read x and y once on {threads_named[cores]}, least of {5 * repeats}): "
                   f"{floors[dtype] * 1e3:.2f} ms" for dtype in DTYPES]
    print("\n".join(floor_lines))
    print(f"  {'setting':<44} {'ms/epoch':>9} {'points×epochs/s':>16} {'× all-core floor':>17}")
    for setting, dtype, seconds in rows:
        print(f"  {setting:<44} {seconds * 1e3:9.1f} {n_points / seconds:16.3g} {seconds / floors[dtype]:17.1f}")
    print("  (× floor: against the floor of the row's own dtype)")
    sequential = chain_is_sequential()
    verdicts = [f"the weight's gradient (slopeᵀ · x, MKL's sgemv) {'is' if sequential else 'is NOT'} one fused "
                f"multiply-add a row in order, bit for bit (4,096 float32 rows against exact fractions); alone, on "
                f"{threads_named[cores]}, it takes {chains['float32'] / floors['float32']:.1f} × the float32 floor: "
                f"{'a chain of latencies that fixes the bits of every epoch' if sequential else 'not a chain'}"]
    print(verdicts[-1])
    for batch_size, target in TARGETS.items():
        ratio = epochs["float32", batch_size] / floors["float32"]
        batch = "full-batch" if batch_size is None else f"{batch_size:,}-row mini-batch"
        verdicts.append(f"{batch} float32 epoch on {threads_named[cores]} = {ratio:.1f} × the all-core floor: "
                        f"{'within' if ratio <= target else 'NOT within'} {target:g} × (target)")
        print(verdicts[-1])
    record("training_throughput", "Training throughput",
           f"pipeline.training.fit on {n_points:,} points, one feature, every row for training; an epoch is "
           f"(t(k2 epochs) − t(k1 epochs)) / (k2 − k1), least of {repeats} runs each, so that reading and scaling "
           f"drop out. The floor is reading x and y once on every core; the naive epoch is nn.Linear on all rows, "
           f"MSELoss, backward; the weight's gradient alone is slopeᵀ · x on each of fit's chunks, as fit "
           f"computes it, the chunks shared by every thread.",
           [["epoch", "ms", "points × epochs / s", "× all-core floor"],
            *([setting, f"{seconds * 1e3:.1f}", f"{n_points / seconds:.2g}", f"{seconds / floors[dtype]:.1f}"]
              for setting, dtype, seconds in rows)],
           [*(line + "." for line in floor_lines), *(line[0].upper() + line[1:] + "." for line in verdicts),
            f"Load average {load_before} before, {load_after} after."], machine_line=machine_line)


if __name__ == "__main__":
    main()
