"""How a model does on rows beside a baseline (least squares): mse, r2 and the largest difference of their
predictions, in one pass over the rows (scores), or over a split's two parts from one read (scores_of_parts)."""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.linear import LinearModel, ordered_sum
from pipeline.parts import chunks_of_parts
from pipeline.rows import Rows, Table
from pipeline.workers import workers

SCORED_AHEAD = 4  # chunks read ahead of the one whose sums are added (a narrow table's row group holds 4)


@dataclass(frozen=True)
class Scores:
    """How a model does on some rows, beside a baseline model (least squares)."""

    n: int
    mse: float
    mse_baseline: float
    r2: float  # 1 − SSE/SST, as r2() defines it
    gap: float  # as prediction_gap() defines it


def scores(model: LinearModel, baseline: LinearModel, rows: Rows, fit_intercept: bool,
           each_chunk: Callable[[Table, np.ndarray], None] | None = None) -> Scores:
    """mse, r2 and the gap of `model` and the mse of `baseline` on the rows, in one pass over them; in the
    same pass, each_chunk(chunk, baseline's residuals), in chunk order, if given."""
    return scores_of_parts(model, baseline, [rows], fit_intercept, each_chunk)[0]


def scores_of_parts(model: LinearModel, baseline: LinearModel, parts: Sequence[Rows], fit_intercept: bool,
                    each_chunk: Callable[[Table, np.ndarray], None] | None = None) -> list[Scores]:
    """scores() on each part (each_chunk on the first's chunks), the same bits, in one read of a table too
    large to keep whose parts they are: a split's training and held-out rows (parts.chunks_of_parts).

    One thread finds each chunk's sums (ChunkSums.of, under the caller's numpy error settings) while this one
    reads the next chunks, up to SCORED_AHEAD ahead (a row group's), and adds them up in chunk order: the same
    bits. At 5·10^7 points evaluate's pass took 1.27-1.45 s against 2.08 s; two such threads, or two chunks
    ahead, took 1.5-1.8 s."""
    return [found.scores(fit_intercept) for found in _sums_of_parts(model, baseline, parts, each_chunk)]


def _sums_of_parts(model: LinearModel, baseline: LinearModel, parts: Sequence[Rows],
                   each_chunk: Callable[[Table, np.ndarray], None] | None = None,
                   gap_only: bool = False) -> list["ScoreSums"]:
    """The sums scores_of_parts adds up, a ScoreSums for each part; with gap_only, the gap's alone."""
    sums = [ScoreSums(model, baseline, each_chunk if index == 0 else None) for index in range(len(parts))]
    settings = np.geterr()  # numpy's are each thread's own

    def found(item: tuple[int, Table]) -> tuple[int, Table, ChunkSums]:
        index, chunk = item
        with np.errstate(**settings):
            return index, chunk, ChunkSums.of(model, baseline, chunk, sums[index].each_chunk is not None, gap_only)

    with workers(1, ahead=SCORED_AHEAD) as pool:
        for index, chunk, chunk_sums in pool.in_order(found, chunks_of_parts(parts)):
            sums[index].add(chunk, chunk_sums)
    return sums


@dataclass(frozen=True)
class ChunkSums:
    """What a chunk adds to ScoreSums, found from the chunk alone (by any thread)."""

    size: int
    errors: float
    baseline_errors: float
    squares: float
    mean: float
    about_mean: float  # Σ (y − the chunk's mean)²
    largest: float
    baseline_residuals: np.ndarray | None  # for each_chunk, where there is one

    @classmethod
    def of(cls, model: LinearModel, baseline: LinearModel, chunk: Table, keep_residuals: bool,
           gap_only: bool = False) -> "ChunkSums":
        """With gap_only, only what the gap needs (the errors and squares left 0)."""
        predictions, baseline_predictions = model.predict(chunk.features), baseline.predict(chunk.features)
        mean = ordered_sum(chunk.target) / len(chunk)
        about_mean = ordered_sum((chunk.target - mean) ** 2)
        largest = float(np.max(np.abs(predictions - baseline_predictions)))
        if gap_only:
            return cls(len(chunk), 0.0, 0.0, 0.0, mean, about_mean, largest, None)
        residuals = chunk.target - predictions
        baseline_residuals = chunk.target - baseline_predictions
        return cls(len(chunk), ordered_sum(residuals * residuals), ordered_sum(baseline_residuals * baseline_residuals),
                   ordered_sum(chunk.target * chunk.target), mean, about_mean, largest,
                   baseline_residuals if keep_residuals else None)


class ScoreSums:
    """What scores() adds up, chunk by chunk in the rows' order."""

    def __init__(self, model: LinearModel, baseline: LinearModel,
                 each_chunk: Callable[[Table, np.ndarray], None] | None = None) -> None:
        self.model, self.baseline, self.each_chunk = model, baseline, each_chunk
        self.n_rows = 0
        # Of the rows so far: Σ (y − mean)² merged chunk by chunk (Chan's update).
        self.target_mean = self.about_mean = 0.0
        self.errors = self.baseline_errors = self.squares = 0.0
        self.largest = 0.0

    def add(self, chunk: Table, found: ChunkSums) -> None:
        """The chunk's sums, `found`, added to those of the chunks before it."""
        self.errors += found.errors
        self.baseline_errors += found.baseline_errors
        if self.each_chunk is not None:
            self.each_chunk(chunk, found.baseline_residuals)
        self.squares += found.squares
        size, n_rows = found.size, self.n_rows
        difference = found.mean - self.target_mean
        self.about_mean += found.about_mean + difference ** 2 * n_rows * size / (n_rows + size)
        self.target_mean += difference * size / (n_rows + size)
        self.n_rows += size
        self.largest = max(self.largest, found.largest)

    def scores(self, fit_intercept: bool) -> Scores:
        n_rows = self.n_rows
        error = self.errors / n_rows * n_rows  # n × mse, to the bit, as r2 always computed it
        # SST about the mean, or about zero for a model without an intercept, as statistics packages measure a
        # model without a constant.
        about_centre = self.about_mean if fit_intercept else self.squares
        r2_value = 1.0 - error / about_centre if about_centre > 0 else float(error == 0)
        return Scores(n_rows, self.errors / n_rows, self.baseline_errors / n_rows, r2_value, self.gap())

    def gap(self) -> float:
        """The largest difference of prediction, divided by the target's standard deviation."""
        return self.largest / (math.sqrt(self.about_mean / self.n_rows) or 1.0)


def mse(model: LinearModel, rows: Rows) -> float:
    return scores(model, model, rows, True).mse


def r2(model: LinearModel, rows: Rows, fit_intercept: bool) -> float:
    """1 − SSE/SST; SST about the mean, or about zero for a model without an intercept, as statistics
    packages measure a model without a constant."""
    return scores(model, model, rows, fit_intercept).r2


def prediction_gap(learnt: LinearModel, baseline: LinearModel, rows: Rows) -> float:
    """How far apart two models are, in one unit for every dataset: their largest difference of
    prediction on these rows, divided by the target's standard deviation. scores()'s gap, to the bit, from a
    pass that sums only what it needs: train's, at 5·10^7 points, took 0.63-0.71 s against 0.85-0.93 s."""
    return _sums_of_parts(learnt, baseline, [rows], gap_only=True)[0].gap()
