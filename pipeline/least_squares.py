"""The least-squares fit (a QR factorisation of the centred, scaled columns) and what is derived from its R:
standard errors, leverage, intervals, and whether training has converged to it. NumPy only, no torch.

Up to WIDE columns (31 features and the target), dot products are plain NumPy sums (ordered_sum) rather than
BLAS, so the results are the same bits on every CPU; wider tables use LAPACK and BLAS on one thread, the same
bits on a given machine (pipeline/qr.py).
"""

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as load_safetensors, save as save_safetensors

from pipeline.errors import PipelineError, cut, first_few
from pipeline.files import atomic_output, read_bytes
from pipeline.linear import (
    INTERCEPT, MAX_BUILT_NAME_CHARS, MAX_DEGREE, RESTORE, LinearModel, ordered_sum, safe_open_metadata, shown_json,
    unique_json,
)
from pipeline.params import MAX_FEATURES
from pipeline.qr import inverse_upper, one_blas_thread, times_upper


@functools.cache  # predict asks once a chunk, and the inversion takes milliseconds at 10^7 degrees of freedom
def two_sided_t_quantile(df: float, level: float) -> float:
    """t(1 − (1 − level)/2, df): the quantile of a two-sided interval at `level`."""
    from scipy.special import stdtrit  # here, not above: train uses least squares without distributions

    return float(stdtrit(df, 1 - (1 - level) / 2))


@dataclass(frozen=True)
class LeastSquares:
    """The least-squares fit to the training rows, and what inference needs from its QR factorisation.

    The design is factorised with its columns centred (when there is an intercept) and scaled to unit
    norm: Z = (X − x_mean) / x_scale = QR. Everything below is derived from R, never from XᵀX.
    """

    model: LinearModel
    n: int
    fit_intercept: bool
    x_mean: np.ndarray  # (d,) the columns' means, zeros without an intercept
    x_scale: np.ndarray  # (d,) each centred column's norm, sqrt(Σ(x − x_mean)²)
    y_mean: float  # 0 without an intercept
    y_scale: float  # sqrt(Σ(y − y_mean)²)
    r_inverse: np.ndarray  # (d, d) upper triangular: R⁻¹ of the centred, scaled design
    rss: float  # the residual sum of squares
    x_spread: np.ndarray  # (d,) max |x − x_mean| of each column: bounds a prediction gap from coefficients
    y_sd: float  # the target's sd about its mean, with or without an intercept: the prediction gap's unit
    # Without an intercept, Qᵀ1/√n (unit norm) where the columns span the ones vector, an implicit constant such as
    # a full-rank factor's; None otherwise.
    constant: np.ndarray | None = None

    @property
    def p(self) -> int:
        """The number of coefficients, the intercept included."""
        return len(self.model.features) + int(self.fit_intercept)

    @property
    def df_resid(self) -> int:
        return self.n - self.p

    @property
    def exact(self) -> bool:
        """Residuals at the rounding level of the target: no noise is left to estimate."""
        return math.sqrt(self.rss) <= EXACT_FIT * self.y_scale

    @property
    def residual_sd(self) -> float:
        """s = sqrt(RSS / (n − p)); 0 for an exact fit."""
        return 0.0 if self.exact else math.sqrt(self.rss / self.df_resid)

    def standard_errors(self) -> dict[str, float]:
        """s·sqrt(diag((XᵀX)⁻¹)) by coefficient name, the intercept's last, from R⁻¹ alone:
        (XᵀX)⁻¹ of the coefficients is R⁻¹R⁻ᵀ scaled back; the intercept's is 1/n + x̄ᵀ(XcᵀXc)⁻¹x̄."""
        return dict(self._standard_errors)

    def gap_bound(self, learnt: LinearModel) -> float:
        """An upper bound of prediction_gap(learnt, self.model, training rows) from the coefficients alone, so
        that train can stop on it without a pass over the rows and never where evaluate's exact gap would
        not say converged. |Δŷ − Δŷ at x_mean| is at most both Σ |Δcoefficient|·max |x − x_mean| (tight for
        one feature) and the norm of the differences over all rows, ||R·(x_scale ⊙ Δcoefficient)|| (tight
        for collinear columns, such as powers, whose large coefficients cancel)."""
        # NumPy floats: a model that diverged gives inf or nan (never converged), not an OverflowError.
        with np.errstate(over="ignore", invalid="ignore"):
            differences = np.array(learnt.coefficients) - np.array(self.model.coefficients)
            at_mean = (learnt.intercept - self.model.intercept) + np.sum(differences * self.x_mean)
            by_column = np.sum(np.abs(differences) * self.x_spread)
            rows = self._r_times_scaled(differences)
            over_rows = np.sqrt(np.sum(rows * rows))
            # × (1 + 1e-9): R comes back from R⁻¹ to a few digits fewer than float64 holds
            return float((abs(at_mean) + min(by_column, over_rows * (1 + 1e-9))) / (self.y_sd or 1.0))

    @functools.cached_property
    def _r(self) -> np.ndarray:
        return inverse_upper(self.r_inverse)

    @functools.cached_property
    def _standard_errors(self) -> dict[str, float]:
        s = self.residual_sd
        rows = self.r_inverse * self.r_inverse
        diagonal = np.array([ordered_sum(rows[k]) for k in range(len(self.x_scale))])
        errors = {name: float(s * math.sqrt(value) / scale)
                  for name, value, scale in zip(self.model.features, diagonal, self.x_scale)}
        if self.fit_intercept:
            # The intercept is the prediction at x = 0.
            errors[INTERCEPT] = s * math.sqrt(float(self.leverage(np.zeros((1, len(self.x_scale))))[0]))
        return errors

    def condition_number(self) -> float:
        """The 2-norm condition number of the standardised design (centred without an intercept only when
        fitted, each column of unit norm), from R's singular values; rounded to 6 significant digits, since
        LAPACK's last bits differ between CPUs and metrics.json must not."""
        with one_blas_thread():  # faster too: 0.05 s for 500 columns, against 0.18 s on two threads
            singular = np.linalg.svd(self.r_inverse, compute_uv=False)
        return float(f"{singular.max() / singular.min():.6g}")

    def leverage(self, features: np.ndarray) -> np.ndarray:
        """x0ᵀ(XᵀX)⁻¹x0 for each row of `features` (n, d), the intercept's 1/n included: the hat values of
        training rows."""
        with np.errstate(over="ignore", invalid="ignore"):  # beyond float64: the callers refuse it in one line
            projected = times_upper((np.asarray(features, dtype=np.float64) - self.x_mean) / self.x_scale,
                                    self.r_inverse)
            hat = np.sum(projected * projected, axis=1)
        return hat + 1.0 / self.n if self.fit_intercept else hat

    def half_width_at(self, leverage: np.ndarray, level: float, new_observation: bool) -> np.ndarray:
        """t(1 − (1 − level)/2, n − p) · s · sqrt([1 +] leverage): the half width of the interval for a
        new observation (prediction interval) or for the mean at rows of this leverage (confidence interval)."""
        with np.errstate(over="ignore", invalid="ignore"):
            return self.t_quantile(level) * self.residual_sd * np.sqrt(float(new_observation) + leverage)

    @property
    def has_constant(self) -> bool:
        """An intercept, or an implicit one (statsmodels' k_constant): R², adjusted R² and F are then centred."""
        return self.fit_intercept or self.constant is not None

    @property
    def df_model(self) -> int:
        """The coefficients but the constant: the F test's numerator degrees of freedom."""
        return self.p - int(self.has_constant)

    def total_squares(self) -> float:
        """Σ(y − ȳ)² where the model has a constant, Σy² otherwise: R²'s denominator."""
        if self.fit_intercept or self.constant is None:
            return self.y_scale ** 2
        return self.n * self.y_sd ** 2

    def r2(self) -> float:
        """Least squares' own R² on the training rows, statsmodels' rsquared."""
        total = self.total_squares()
        return 1.0 - self.rss / total if total > 0 else 1.0

    def log_likelihood(self) -> float | None:
        """The Gaussian log-likelihood at the fit with σ² = RSS/n, statsmodels' llf; None for an exact fit
        (where it is +∞)."""
        if self.exact:
            return None
        return -self.n / 2 * (math.log(2 * math.pi * self.rss / self.n) + 1)

    def information_criteria(self) -> tuple[float, float] | None:
        """(AIC, BIC) = −2·log-likelihood + (2, log n) × the number of coefficients, the intercept included."""
        likelihood = self.log_likelihood()
        if likelihood is None:
            return None
        return -2 * likelihood + 2 * self.p, -2 * likelihood + math.log(self.n) * self.p

    def qty(self) -> np.ndarray:
        """Qᵀy: the least-squares coefficients in the orthonormal basis Q of the (centred) scaled columns,
        R·(x_scale ⊙ coefficients)."""
        return self._r_times_scaled(np.array(self.model.coefficients))

    def _r_times_scaled(self, coefficients: np.ndarray) -> np.ndarray:
        """R·(x_scale ⊙ coefficients): coefficients of the data's columns in the orthonormal basis Q."""
        scaled = coefficients * self.x_scale
        return np.array([ordered_sum(self._r[k, k:] * scaled[k:]) for k in range(len(scaled))])

    def t_quantile(self, level: float) -> float:
        """t(1 − (1 − level)/2, n − p): the quantile of a two-sided interval at `level`."""
        return two_sided_t_quantile(self.df_resid, level)

    def save(self, path: Path) -> None:
        state = {"coefficients": np.array(self.model.coefficients), "intercept": np.array([self.model.intercept]),
                 "x_mean": self.x_mean, "x_scale": self.x_scale, "r_inverse": self.r_inverse,
                 "x_spread": self.x_spread, "scalars": np.array([self.y_mean, self.y_scale, self.rss, self.y_sd])}
        # One key: safetensors writes several in hash order, which differs from one process to the next.
        if self.constant is not None:  # only then: the file of a fit without one stays as it was
            state["constant"] = self.constant
        metadata = {"least_squares": json.dumps({"features": list(self.model.features), "n": self.n,
                                                 "fit_intercept": self.fit_intercept}, sort_keys=True)}
        with atomic_output(path) as temporary:
            temporary.write_bytes(save_safetensors({name: np.ascontiguousarray(value, dtype=np.float64)
                                                    for name, value in state.items()}, metadata))

    @classmethod
    def load(cls, path: Path) -> "LeastSquares":
        """The fit evaluate saved; a file that is not one, or whose values no fit has, gets one line."""
        content = read_bytes(path)
        try:
            state = load_safetensors(content)
            metadata = unique_json(safe_open_metadata(content).get("least_squares", ""))
        except (SafetensorError, ValueError, OverflowError, RecursionError) as error:
            raise PipelineError(f"{path}: not the least-squares file evaluate writes ({type(error).__name__}: "
                                f"{str(error)[:100]}): {RESTORE}") from None
        problem = least_squares_problem(state, metadata)
        if problem:
            raise PipelineError(f"{path}: {problem} (not the least-squares fit evaluate writes: {RESTORE})")
        features = tuple(metadata["features"])
        scalars = [float(value) for value in state["scalars"]]
        return cls(LinearModel(features, tuple(float(v) for v in state["coefficients"]), float(state["intercept"][0])),
                   metadata["n"], metadata["fit_intercept"], state["x_mean"], state["x_scale"], scalars[0],
                   scalars[1], state["r_inverse"], scalars[2], state["x_spread"], scalars[3], state.get("constant"))


# The tensors of models/ols.safetensors, beside the number of features d; scalars are y_mean, y_scale, rss, y_sd.
OLS_SHAPES = {"coefficients": lambda d: (d,), "intercept": lambda d: (1,), "x_mean": lambda d: (d,),
              "x_scale": lambda d: (d,), "r_inverse": lambda d: (d, d), "x_spread": lambda d: (d,),
              "scalars": lambda d: (4,)}
# Only in the file of a fit without an intercept whose columns span the ones vector (an implicit constant).
OLS_OPTIONAL_SHAPES = {"constant": lambda d: (d,)}
OLS_METADATA = ("features", "n", "fit_intercept")


def least_squares_problem(state: dict[str, np.ndarray], metadata: object) -> str | None:
    """What is wrong with the tensors and metadata of a least-squares file, in words, or None: the metadata's
    fields of their types, features distinct and of bounded length; every tensor float64 of its shape and
    finite; n > p; sums of squares and scales ≥ 0 (x_scale > 0); R⁻¹ upper triangular with a positive
    diagonal; zero means without an intercept. O(p²) like reading R⁻¹ itself."""
    if not isinstance(metadata, dict) or set(metadata) != set(OLS_METADATA):
        return f"its 'least_squares' metadata is not a JSON object of {', '.join(OLS_METADATA)}: expected each once"
    features, n, fit_intercept = metadata["features"], metadata["n"], metadata["fit_intercept"]
    if not isinstance(features, list) or not all(isinstance(name, str) for name in features):
        return f"its features are {shown_json(features)}: expected a list of names"
    if not 1 <= len(features) <= MAX_FEATURES * MAX_DEGREE:
        return f"it names {len(features):,} features: expected 1 to {MAX_FEATURES * MAX_DEGREE:,}"
    longest = max(features, key=len)
    if not longest or len(longest) > MAX_BUILT_NAME_CHARS:
        return f"it names a feature of {len(longest):,} characters ({cut(longest)}): expected 1 to {MAX_BUILT_NAME_CHARS}"
    if len(set(features)) < len(features):
        return f"it names feature {cut(next(name for name in features if features.count(name) > 1))} twice: expected each once"
    if not isinstance(fit_intercept, bool):
        return f"its fit_intercept is {shown_json(fit_intercept)}: expected true or false"
    p = len(features) + fit_intercept
    if type(n) is not int or not p < n <= MAX_ROWS:
        return f"its n is {shown_json(n)}: expected an integer above the {p} coefficients (n > p)"
    shapes = OLS_SHAPES | {name: shape for name, shape in OLS_OPTIONAL_SHAPES.items() if name in state}
    if set(state) != set(shapes):
        return f"it holds tensors [{first_few([cut(name) for name in sorted(state)], 10)}]: expected {', '.join(OLS_SHAPES)}"
    if "constant" in state and fit_intercept:
        return "it holds an implicit constant beside an intercept: expected one or the other"
    for name, shape in shapes.items():
        tensor = state[name]
        if tensor.dtype != np.float64 or tensor.shape != shape(len(features)):
            return f"{name} is {cut(str(tensor.shape))[1:-1]} {tensor.dtype}: expected float64 of shape {shape(len(features))}"
        if not np.isfinite(tensor).all():
            return f"{name} holds {tensor.ravel()[np.argmin(np.isfinite(tensor.ravel()))]}: expected finite numbers"
    y_mean, y_scale, rss, y_sd = state["scalars"]
    if min(y_scale, rss, y_sd) < 0 or (state["x_spread"] < 0).any() or not (state["x_scale"] > 0).all():
        return "a sum of squares, a scale or a spread is negative, or x_scale is 0: expected them >= 0, x_scale > 0"
    r_inverse = state["r_inverse"]
    below_diagonal = any(r_inverse[k, :k].any() for k in range(1, len(r_inverse)))  # no copy of a large R⁻¹
    if not (np.diagonal(r_inverse) > 0).all() or below_diagonal:
        return "r_inverse is not upper triangular with a positive diagonal: expected R⁻¹ of a QR factorisation"
    if not fit_intercept and (y_mean != 0 or state["x_mean"].any() or state["intercept"][0] != 0):
        return "it has no intercept, but a mean or an intercept that is not 0: expected zeros"
    return None


MAX_ROWS = 2**62  # n: any count of rows, and √n is a float

# Residuals whose norm is below this fraction of the target's spread are rounding, not noise: an exact fit.
EXACT_FIT = 1e-12

# A leverage within this of 1 is 1: the row alone decides a coefficient and is fitted exactly, whatever its
# target (its residual is 0: HC2 and HC3 divide 0 by 0, rstudent and Cook's distance are left empty).
LEVERAGE_ONE = 1e-12
