"""Whether training reached least squares: the tolerances (train.tolerance, train.coefficient_tolerance), the
gaps of the learnt model's predictions and coefficients, and the verdict train and evaluate print."""

import math
from dataclasses import dataclass

import numpy as np

from pipeline.linear import INTERCEPT, LinearModel
from pipeline.least_squares import LeastSquares


@dataclass(frozen=True)
class Tolerances:
    """What converged means (train.tolerance, train.coefficient_tolerance), in the dtype of training."""

    dtype: str
    gap: float  # of predictions, in sd of the target
    coefficients: float  # of each coefficient, in its standard errors


@dataclass(frozen=True)
class Convergence:
    """Whether training reached least squares: in predictions (gap, in sd of the target) and in every
    coefficient (coefficient_gap, in its standard errors)."""

    gap: float
    coefficient_gap: float
    float32_resolution: float | None  # a float32 step of the coarsest coefficient, in standard errors
    converged: bool
    exact: bool

    def verdict(self, target: str, tolerances: Tolerances) -> str:
        tolerance, coefficient_tolerance = tolerances.gap, tolerances.coefficients
        # An exact fit has no standard errors: its coefficient gap is in the prediction gap's unit.
        unit = f"× sd({target}) (an exact fit: se is 0)" if self.exact else "standard errors"
        lines = [f"largest prediction gap to least squares: {self.gap:.3g} × sd({target}) (tolerance {tolerance:g})",
                 f"largest coefficient gap to least squares: {self.coefficient_gap:.3g} {unit} "
                 f"(tolerance {coefficient_tolerance:g})"]
        if self.converged:
            lines.append("converged")
        elif self.float32_resolution is not None and self.float32_resolution >= coefficient_tolerance:
            lines.append(f"NOT converged: the standard errors are below what float32 resolves (one float32 step "
                         f"is {self.float32_resolution:.3g} standard errors): set train.dtype: float64")
        else:
            lines.append("NOT converged: raise train.epochs, change train.lr, or try train.optimizer: lbfgs")
        return "\n".join(lines)


def coefficient_gap(learnt: LinearModel, fit: LeastSquares) -> float:
    """The largest |learnt − least squares| / se over the coefficients and the intercept. For an exact fit,
    where se is 0, the prediction gap's unit instead: the coefficient's difference times its column's
    sd, over the target's sd (the intercept's difference over the target's sd)."""
    errors = fit.standard_errors()
    spread = fit.y_scale or 1.0
    units = dict(zip(fit.model.features, fit.x_scale / spread)) | {INTERCEPT: math.sqrt(fit.n) / spread}
    largest = 0.0
    learnt_values = learnt.as_dict()
    for name, ols in fit.model.as_dict().items():
        if name == INTERCEPT and not fit.fit_intercept:
            continue
        difference = abs(learnt_values[name] - ols)
        largest = max(largest, difference / errors[name] if errors[name] > 0 else difference * units[name])
    return float(largest)


def convergence(learnt: LinearModel, fit: LeastSquares, gap: float, tolerances: Tolerances) -> Convergence:
    """Converged: gap < tolerance and coefficient_gap < coefficient_tolerance, and, in float32, the
    coefficients' float32 steps are finer than coefficient_tolerance standard errors (with very many rows
    the standard errors shrink below what float32 can tell apart)."""
    coefficients = coefficient_gap(learnt, fit)
    resolution = None
    if tolerances.dtype == "float32" and not fit.exact:
        errors = fit.standard_errors()
        resolution = max(float(np.spacing(np.float32(abs(value)))) / errors[name]
                         for name, value in fit.model.as_dict().items()
                         if name != INTERCEPT or fit.fit_intercept)
    resolvable = resolution is None or resolution < tolerances.coefficients
    converged = gap < tolerances.gap and coefficients < tolerances.coefficients and resolvable
    return Convergence(gap, coefficients, resolution, bool(converged), fit.exact)

