"""Least squares from rows: one pass over them, a QR factorisation of the centred columns a chunk at a time
(Factoring), gives the fit that pipeline/least_squares.py holds and draws its inference from. EarlyFit factors
a split's training rows as the check reads them, where the table is too large to keep.
"""

import math
from pathlib import Path

import numpy as np

from pipeline.dataset import rows_in_footer
from pipeline.errors import PipelineError, cut
from pipeline.files import row_blocks
from pipeline.holdout import held_out
from pipeline.least_squares import LeastSquares
from pipeline.linear import LinearModel, ordered_sum
from pipeline.params import DataParams
from pipeline.qr import gram_schmidt, householder, inverse_upper, is_wide, stacked
from pipeline.rows import ChunksAsRead, Rows, Table, chunks, powers
from pipeline.split import Split


def least_squares(rows: Rows, names: tuple[str, ...], fit_intercept: bool, source: Path) -> LinearModel:
    """The float64 least-squares model: fit_least_squares(...).model."""
    return fit_least_squares(rows, names, fit_intercept, source).model


def fit_least_squares(rows: Rows, names: tuple[str, ...], fit_intercept: bool, source: Path) -> LeastSquares:
    """The float64 least-squares fit, by a QR factorisation of [X | y] (orthogonal, never the normal
    equations, so it stays accurate on ill-conditioned, strongly correlated columns): one pass over the rows
    (Factoring), with memory for one chunk whatever their number."""
    factoring = Factoring(len(names), fit_intercept)
    for chunk in chunks(rows):
        factoring.add(chunk)
    return factoring.fit(names, source)


def fit_training_rows(split: Split, names: tuple[str, ...], fit_intercept: bool,
                      early: "EarlyFit | None" = None) -> LeastSquares:
    """fit_least_squares of the split's training rows: from what `early` factored as they were checked, where
    its plan held, else in a pass of its own."""
    fitted = early.fit(split, names) if early is not None else None
    return fitted if fitted is not None else fit_least_squares(split.train, names, fit_intercept, split.source)


class EarlyFit(ChunksAsRead):
    """fit_least_squares of the training rows, factored from each row group of a Parquet file as the check reads
    it (load_split's `seen`): for a table too large to keep, the pass over the training rows after the check
    read every group again (2.0-2.2 s of train's 9-11 s at 5·10^7 points, evaluate's too); for one kept, its QR
    overlaps the check instead of following it (evaluate at 10^7 points: 0.87 s against 0.95 s). The plan
    assumes that every row the footer counts is split, none left out (drawing.EarlySample's plan); its chunks
    are those a pass over the training rows cuts, so the fit has the same bits. fit() gives None where the split
    is not the one planned (rows left out by data.missing, unlabeled rows, terms) or the plan failed
    (ChunksAsRead): the stage then makes its pass, as before. The groups are factored on a thread apart, while
    the check reads on."""

    apart = True

    def __init__(self, n_rows: int, test_fraction: float, split_seed: int, degree: int, n_features: int,
                 fit_intercept: bool) -> None:
        super().__init__(n_rows)
        self.test_fraction, self.split_seed, self.degree = test_fraction, split_seed, degree
        self.factoring = Factoring(n_features, fit_intercept)

    @classmethod
    def planned(cls, data: DataParams, fit_intercept: bool) -> "EarlyFit | None":
        """The plan for data.source, a Parquet file (its footer counts the rows; a CSV file has none)."""
        n_rows = rows_in_footer(Path(data.source))
        if not n_rows:
            return None
        return cls(n_rows, data.test_fraction, data.split_seed, data.degree, len(data.columns), fit_intercept)

    def rows_of(self, span: tuple[int, int], rows: Table) -> Table:
        if self.degree > 1:
            rows = Table(powers(rows.features, self.degree), rows.target)
        if self.test_fraction > 0:
            rows = rows.select(~held_out(self.n_rows, self.test_fraction, self.split_seed, *span))
        return rows

    def take(self, chunk: Table) -> None:
        self.factoring.add(chunk)

    def fit(self, split: Split, names: tuple[str, ...]) -> LeastSquares | None:
        n_split = len(split.train) + (len(split.test) if split.test is not None else 0)
        if n_split != self.n_rows or split.rows_dropped or split.rows_unlabeled or split.design is not None:
            self.drop()
            return None
        return self.factoring.fit(names, split.source) if self.finished() else None


class Factoring:
    """fit_least_squares's pass, a chunk at a time. With an intercept the columns are centred: each chunk about
    its own means, and the factor so far is merged with it through the row that carries the difference of their
    means (the QR form of Chan's update of a variance), so R is that of the columns centred about the means of
    every row. The columns' scales are the norms of R's columns."""

    def __init__(self, n_features: int, fit_intercept: bool) -> None:
        self.n_features, self.fit_intercept = n_features, fit_intercept
        width = n_features + 1
        self.factorise = householder if is_wide(n_features) else gram_schmidt
        self.r = np.zeros((0, width))
        self.n = 0
        self.means = np.zeros(width)
        self.lows, self.highs = np.full(width, np.inf), np.full(width, -np.inf)
        self.target_squares = 0.0  # Σ (y − mean y)², whether or not the fit centres: the prediction gap's unit

    def add(self, chunk: Table) -> None:
        n_features, width, n = self.n_features, self.n_features + 1, self.n
        size = len(chunk)
        block = np.empty((size, width), order="F")  # columns contiguous: each sum adds pairwise
        for span in row_blocks(size, width):  # a whole chunk at once read every row's lines once per column
            block[span, :n_features] = chunk.features[span]
        block[:, n_features] = chunk.target
        self.lows, self.highs = np.minimum(self.lows, block.min(axis=0)), np.maximum(self.highs, block.max(axis=0))
        chunk_means = np.array([ordered_sum(block[:, k]) for k in range(width)]) / size
        shift = (chunk_means - self.means) * math.sqrt(n * size / (n + size))  # zeros for the first chunk
        self.target_squares += ordered_sum((block[:, n_features] - chunk_means[n_features]) ** 2) + shift[-1] ** 2
        if self.fit_intercept:
            block -= chunk_means
            self.r = self.factorise(stacked([self.r, block, shift[np.newaxis]]))
        else:
            self.r = self.factorise(stacked([self.r, block]))
        self.means += (chunk_means - self.means) * (size / (n + size))
        self.n += size

    def fit(self, names: tuple[str, ...], source: Path) -> LeastSquares:
        """The fit of the rows added, their columns named `names`; refused (one line naming `source`) where a
        feature is constant or a combination of the others."""
        n_features, width, fit_intercept = self.n_features, self.n_features + 1, self.fit_intercept
        r, n, means, lows, highs = self.r, self.n, self.means, self.lows, self.highs
        target_squares = self.target_squares
        r = r[:width]
        scales = np.array([math.sqrt(ordered_sum(r[:k + 1, k] ** 2)) for k in range(n_features)])
        for k in range(n_features):  # only the whole R says whether the features are independent
            if lows[k] == highs[k]:
                raise PipelineError(f"{source}: feature {names[k]!r} is constant: expected at least two distinct values")
            if highs[k] - lows[k] < SMALLEST_SPREAD:  # its squares, and so its R, would be lost below float64's range
                raise PipelineError(f"{source}: feature {cut(names[k])} spans only {highs[k] - lows[k]:.3g}: expected a "
                                    f"spread of at least {SMALLEST_SPREAD:g}, whose squares float64 holds (rescale it)")
            if r[k, k] < 1e-10 * scales[k]:
                others = ", ".join(repr(name) for name in names[:k])
                raise PipelineError(
                    f"{source}: feature {names[k]!r} is a linear combination of {others}"
                    f"{' and the intercept' if fit_intercept else ''}: expected linearly independent features"
                )
        r_scaled = r[:n_features, :n_features] / scales  # the R of the columns scaled to unit norm
        qty = r[:n_features, n_features]  # Q^T y
        scaled = np.zeros(n_features)
        for k in reversed(range(n_features)):  # back substitution, R · scaled = Q^T y
            scaled[k] = (qty[k] - ordered_sum(r_scaled[k, k + 1:] * scaled[k + 1:])) / r_scaled[k, k]
        coefficients = tuple(float(value / scale) for value, scale in zip(scaled, scales))
        x_means = means[:n_features] if fit_intercept else np.zeros(n_features)
        y_mean = float(means[n_features]) if fit_intercept else 0.0
        intercept = y_mean - math.fsum(c * m for c, m in zip(coefficients, x_means)) if fit_intercept else 0.0
        spreads = np.maximum(highs - np.append(x_means, y_mean), np.append(x_means, y_mean) - lows)[:n_features]
        r_inverse = inverse_upper(r_scaled)
        constant = None if fit_intercept else implicit_constant(r_inverse, n * means[:n_features] / scales, n)
        return LeastSquares(LinearModel(names, coefficients, intercept), n, fit_intercept, x_means, scales, y_mean,
                            math.sqrt(ordered_sum(r[:, n_features] ** 2)), r_inverse,
                            float(r[n_features, n_features]) ** 2, spreads, math.sqrt(target_squares / n), constant)


# The ones vector counts as in the columns' span when what is left of it, projected on them, is below this
# fraction of its squared norm n: the projection is found as n − ||Qᵀ1||², which cancels to about the
# condition number × 1e-16 when it is in the span, and is far above this for any design that is not built so.
IMPLICIT_CONSTANT = 1e-8


def implicit_constant(r_inverse: np.ndarray, column_sums: np.ndarray, n: int) -> np.ndarray | None:
    """Qᵀ1/√n where the columns (scaled, not centred: Zᵀ1 = column_sums) span the ones vector, as
    statsmodels' test of rank([1, X]) = rank(X); None otherwise. Qᵀ1 = R⁻ᵀZᵀ1, from the streamed R alone."""
    projected = np.sum(r_inverse * column_sums[:, np.newaxis], axis=0)
    squares = ordered_sum(projected * projected)
    if n - squares > IMPLICIT_CONSTANT * n:
        return None
    return projected / math.sqrt(squares)


# A feature whose values span less than this has squares near float64's smallest normal number (2.2e-308).
SMALLEST_SPREAD = 1e-100
