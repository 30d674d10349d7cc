"""Heteroskedasticity-robust (sandwich) standard errors of the least-squares coefficients, and the Wald F test
that goes with them: statsmodels' cov_type HC0, HC1, HC2 and HC3, which are R's sandwich::vcovHC types.

V = (XᵀX)⁻¹ Xᵀ diag(ω) X (XᵀX)⁻¹, with ωᵢ = eᵢ² (HC0), eᵢ²·n/(n − p) (HC1), eᵢ²/(1 − hᵢ) (HC2) or
eᵢ²/(1 − hᵢ)² (HC3), for the least-squares residual eᵢ and leverage hᵢ of training row i. In the QR's
coordinates (Z = (X − x̄)/x_scale = QR, q̃ᵢ = [row i of Q, and 1 with an intercept]) the middle is
M = Σ ωᵢ q̃ᵢq̃ᵢᵀ, summed a chunk at a time; each coefficient is a fixed combination cⱼ·q̃, so its variance is
cⱼᵀ M cⱼ. Never XᵀX, as for the classical standard errors.
"""

import math
from dataclasses import dataclass

import numpy as np

from pipeline.errors import PipelineError
from pipeline.least_squares import LEVERAGE_ONE, LeastSquares
from pipeline.qr import is_wide, one_blas_thread, times_upper
from pipeline.linear import INTERCEPT, ordered_sum
from pipeline.rows import Table

NONROBUST = "nonrobust"



@dataclass(frozen=True)
class Robust:
    """Standard errors by coefficient name (the intercept's last) and the Wald F test of every coefficient
    but the constant, under one covariance."""

    standard_errors: dict[str, float]
    f: float | None  # None for an exact fit, or where the covariance of the tested coefficients is singular


class Sandwich:
    """M = Σ ωᵢ q̃ᵢq̃ᵢᵀ over the training rows, fed a chunk and its least-squares residuals at a time (in the
    pass that scores the training rows), then the standard errors and F of one HC covariance."""

    def __init__(self, fit: LeastSquares, cov_type: str):
        self.fit = fit
        self.cov_type = cov_type
        self.width = len(fit.x_scale) + int(fit.fit_intercept)
        self.middle = np.zeros((self.width, self.width))
        self.leverage_one = 0  # training rows of leverage 1, for which HC2 and HC3 are undefined

    def add(self, chunk: Table, residuals: np.ndarray) -> None:
        fit = self.fit
        d = len(fit.x_scale)
        rows = np.empty((len(chunk), self.width), order="F")  # columns contiguous: each sum adds pairwise
        rows[:, :d] = times_upper((chunk.features - fit.x_mean) / fit.x_scale, fit.r_inverse, order="F")
        if fit.fit_intercept:
            rows[:, d] = 1.0
        weights = residuals * residuals
        if self.cov_type in ("HC2", "HC3"):
            # The leverage as LeastSquares.leverage computes it, from the same rows of Q.
            leverage = np.sum(rows[:, :d] * rows[:, :d], axis=1) + (1.0 / fit.n if fit.fit_intercept else 0.0)
            left = 1.0 - leverage
            one = left <= LEVERAGE_ONE
            self.leverage_one += int(np.count_nonzero(one))
            left[one] = 1.0  # such a row's weight is undefined: counted, and refused in result()
            weights = weights / left if self.cov_type == "HC2" else weights / (left * left)
        weighted = rows * weights[:, np.newaxis]
        if is_wide(self.width):
            with one_blas_thread():
                self.middle += weighted.T @ rows
            return
        block = np.zeros_like(self.middle)
        for j in range(self.width):
            for k in range(j, self.width):
                block[j, k] = block[k, j] = ordered_sum(weighted[:, j] * rows[:, k])
        self.middle += block

    def result(self) -> Robust:
        """The standard errors and the Wald F of the covariance; an exact fit has standard errors 0 and no F,
        as with the classical covariance."""
        fit = self.fit
        if self.leverage_one:
            raise PipelineError(
                f"evaluate.cov_type = {self.cov_type!r}: {self.leverage_one} training row"
                f"{' has' if self.leverage_one == 1 else 's have'} leverage 1 (a row that alone decides a "
                f"coefficient, such as the only row of a level), where {self.cov_type} divides 0 by 0: "
                "expected HC0 or HC1, or leave such rows out")
        names = (*fit.model.features, *([INTERCEPT] if fit.fit_intercept else []))
        if fit.exact:
            return Robust(dict.fromkeys(names, 0.0), None)
        middle = self.middle * (fit.n / fit.df_resid if self.cov_type == "HC1" else 1.0)
        combinations = _combinations(fit)
        wide = is_wide(self.width)
        variances = np.sum(_times(combinations, middle, wide) * combinations, axis=1)
        errors = {name: math.sqrt(max(float(value), 0.0)) for name, value in zip(names, variances)}
        return Robust(errors, wald_f(fit, middle[:len(fit.x_scale), :len(fit.x_scale)], wide))


def _combinations(fit: LeastSquares) -> np.ndarray:
    """C, one row per coefficient (the features', then the intercept's): coefficient j = Σᵢ (C q̃ᵢ)ⱼ yᵢ, the
    row of (XᵀX)⁻¹Xᵀ. A slope's is row j of R⁻¹ over its column's scale; the intercept's, ȳ − x̄ᵀβ, is
    [−(x̄/x_scale)ᵀR⁻¹, 1/n]."""
    d = len(fit.x_scale)
    width = d + int(fit.fit_intercept)
    combinations = np.zeros((width, width))
    combinations[:d, :d] = fit.r_inverse / fit.x_scale[:, np.newaxis]
    if fit.fit_intercept:
        combinations[d, :d] = -times_upper((fit.x_mean / fit.x_scale)[np.newaxis], fit.r_inverse)[0]
        combinations[d, d] = 1.0 / fit.n
    return combinations


def wald_f(fit: LeastSquares, covariance: np.ndarray, wide: bool) -> float | None:
    """F = c_Lᵀ (Cov c_L)⁻¹ c_L / q for c = Qᵀy, whose covariance is `covariance`, and L the q directions of
    the hypothesis "every coefficient but the constant is zero": with an intercept, every direction of Q (its
    columns are centred); without one, every direction, or those orthogonal to Qᵀ1 for an implicit constant.
    With the classical covariance s²·I it is the classical F. None where the covariance is singular."""
    target = fit.qty()
    if not fit.fit_intercept and fit.constant is not None:
        basis = _orthogonal_complement(fit.constant)
        target = np.array([ordered_sum(row * target) for row in basis])
        covariance = _times(_times(basis, covariance, wide), basis.T, wide)
    upper = _cholesky(covariance)
    if upper is None:
        return None
    # Solve Uᵀw = c by forward substitution: F = ||w||² / q.
    solved = np.zeros_like(target)
    for k in range(len(target)):
        solved[k] = (target[k] - ordered_sum(upper[:k, k] * solved[:k])) / upper[k, k]
    return ordered_sum(solved * solved) / len(target)


def _orthogonal_complement(unit: np.ndarray) -> np.ndarray:
    """d − 1 orthonormal rows orthogonal to the unit vector: the rows after the first of the Householder
    reflection H = I − 2vvᵀ/vᵀv, v = unit + sign·e₁, which maps `unit` onto the first axis."""
    v = unit.copy()
    v[0] += math.copysign(1.0, unit[0])
    reflection = np.eye(len(v)) - (2.0 / ordered_sum(v * v)) * (v[:, np.newaxis] * v[np.newaxis, :])
    return reflection[1:]


def _cholesky(matrix: np.ndarray) -> np.ndarray | None:
    """The upper-triangular U of UᵀU = matrix, a row at a time in NumPy sums (the same bits on every CPU);
    None where the matrix is not positive definite."""
    size = len(matrix)
    upper = np.zeros_like(matrix)
    for k in range(size):
        pivot = matrix[k, k] - ordered_sum(upper[:k, k] ** 2)
        if not pivot > 1e-14 * matrix[k, k]:
            return None
        upper[k, k] = math.sqrt(pivot)
        above = np.sum(upper[:k, k, np.newaxis] * upper[:k, k + 1:], axis=0)
        upper[k, k + 1:] = (matrix[k, k + 1:] - above) / upper[k, k]
    return upper


def _times(a: np.ndarray, b: np.ndarray, wide: bool) -> np.ndarray:
    """a · b: elementwise sums in index order for a narrow table (the same bits on every CPU), BLAS on one
    thread for a wide one, as times_upper."""
    if wide:
        with one_blas_thread():
            return a @ b
    return np.sum(a[:, :, np.newaxis] * b[np.newaxis, :, :], axis=1)
