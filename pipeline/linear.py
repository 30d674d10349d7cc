"""A fitted linear model y = X·coefficients + intercept, its least-squares baseline, and its weights file.

No torch here: evaluate, visualize and predict read the weights with safetensors.numpy and compute in float64,
and so can a notebook: `LinearModel.load("models/model.safetensors").predict(table)`.
"""

import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from safetensors import SafetensorError
from safetensors.numpy import load as load_safetensors, save as save_safetensors

from pipeline.errors import PipelineError
from pipeline.files import atomic_output, read_bytes
from pipeline.rows import Rows, Table, chunks, powers

INTERCEPT = "intercept"


@dataclass(frozen=True)
class LinearModel:
    """Coefficients by column name and an intercept (0 for a model fitted through the origin).

    The columns are the raw features, then their powers up to `degree` (data.columns): with degree 1 they
    are taken as given, so a model of power columns built elsewhere predicts from all of them.
    """

    features: tuple[str, ...]
    coefficients: tuple[float, ...]
    intercept: float
    degree: int = 1

    @property
    def raw_features(self) -> tuple[str, ...]:
        """The columns a table must hold: the features whose powers make the others."""
        return self.features[:len(self.features) // self.degree]

    def predict(self, features: "np.ndarray | pa.Table") -> np.ndarray:
        """float64 predictions for rows of every column (n, p), of the raw features (n, d) whose powers it
        builds, or of a pyarrow Table holding the raw features by name; elementwise, so the same bits on every
        CPU."""
        features = self.columns_of(features)
        predictions = np.full(len(features), self.intercept, dtype=np.float64)
        for column, coefficient in enumerate(self.coefficients):
            predictions += coefficient * features[:, column]
        return predictions

    def columns_of(self, features: "np.ndarray | pa.Table") -> np.ndarray:
        """Every column of the model, (n, p) float64, from what `predict` accepts."""
        if isinstance(features, (pa.Table, pa.RecordBatch)):
            missing = [name for name in self.raw_features if name not in features.column_names]
            if missing:
                raise ValueError(f"the table has no column {missing[0]!r}: expected {list(self.raw_features)}")
            features = np.column_stack([features.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
                                        for name in self.raw_features])
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] not in (len(self.features), len(self.raw_features)):
            raise ValueError(f"features of shape {features.shape}: expected (n, {len(self.raw_features)}) for "
                             f"{list(self.raw_features)}" + (f" or (n, {len(self.features)})" if self.degree > 1 else ""))
        if features.shape[1] == len(self.features):
            return features
        return powers(features.astype(np.float64), self.degree)

    @classmethod
    def load(cls, path: "Path | str") -> "LinearModel":
        """The model a weights file holds, its columns and degree read from the file itself: no params.yaml,
        no torch."""
        path = Path(path)
        state, metadata = _read_weights(path)
        described = Description.of(path, metadata)
        model = _model_of(path, state, described.features, described.fit_intercept)
        return cls(model.features, model.coefficients, model.intercept, described.degree)

    def as_dict(self) -> dict[str, float]:
        """{feature: coefficient, …, "intercept": intercept}: the schema of truth.json and of the metrics."""
        return {**dict(zip(self.features, self.coefficients)), INTERCEPT: self.intercept}

    @classmethod
    def from_dict(cls, features: tuple[str, ...], values: dict[str, float]) -> "LinearModel":
        return cls(features, tuple(values[name] for name in features), values[INTERCEPT])


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
            scaled = differences * self.x_scale
            rows = np.array([np.sum(self._r[k, k:] * scaled[k:]) for k in range(len(scaled))])
            over_rows = np.sqrt(np.sum(rows * rows))
            # × (1 + 1e-9): R comes back from R⁻¹ to a few digits fewer than float64 holds
            return float((abs(at_mean) + min(by_column, over_rows * (1 + 1e-9))) / (self.y_sd or 1.0))

    @functools.cached_property
    def _r(self) -> np.ndarray:
        return _inverse_upper(self.r_inverse)

    @functools.cached_property
    def _standard_errors(self) -> dict[str, float]:
        s = self.residual_sd
        rows = self.r_inverse * self.r_inverse
        diagonal = np.array([_sum(rows[k]) for k in range(len(self.x_scale))])
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
        singular = np.linalg.svd(self.r_inverse, compute_uv=False)
        return float(f"{singular.max() / singular.min():.6g}")

    def leverage(self, features: np.ndarray) -> np.ndarray:
        """x0ᵀ(XᵀX)⁻¹x0 for each row of `features` (n, d), the intercept's 1/n included: the hat values of
        training rows. Elementwise sums, not BLAS, so the same bits on every CPU."""
        scaled = (np.asarray(features, dtype=np.float64) - self.x_mean) / self.x_scale
        projected = np.zeros_like(scaled)  # scaled · R⁻¹, column by column
        for k in range(scaled.shape[1]):
            projected[:, k:] += scaled[:, k:k + 1] * self.r_inverse[k, k:]
        hat = np.sum(projected * projected, axis=1)
        return hat + 1.0 / self.n if self.fit_intercept else hat

    def interval_half_width(self, features: np.ndarray, level: float, new_observation: bool) -> np.ndarray:
        """t(1 − (1 − level)/2, n − p) · s · sqrt([1 +] leverage): the half width of the interval for a
        new observation (prediction interval) or for the mean at these rows (confidence interval)."""
        from scipy.special import stdtrit  # here, not above: train uses this class without distributions

        quantile = float(stdtrit(self.df_resid, 1 - (1 - level) / 2))
        return quantile * self.residual_sd * np.sqrt(float(new_observation) + self.leverage(features))

    def save(self, path: Path) -> None:
        state = {"coefficients": np.array(self.model.coefficients), "intercept": np.array([self.model.intercept]),
                 "x_mean": self.x_mean, "x_scale": self.x_scale, "r_inverse": self.r_inverse,
                 "x_spread": self.x_spread, "scalars": np.array([self.y_mean, self.y_scale, self.rss, self.y_sd])}
        # One key: safetensors writes several in hash order, which differs from one process to the next.
        metadata = {"least_squares": json.dumps({"features": list(self.model.features), "n": self.n,
                                                 "fit_intercept": self.fit_intercept}, sort_keys=True)}
        with atomic_output(path) as temporary:
            temporary.write_bytes(save_safetensors({name: np.ascontiguousarray(value, dtype=np.float64)
                                                    for name, value in state.items()}, metadata))

    @classmethod
    def load(cls, path: Path) -> "LeastSquares":
        content = read_bytes(path)
        try:
            state = load_safetensors(content)
            metadata = json.loads(safe_open_metadata(content)["least_squares"])
            features = tuple(metadata["features"])
            d = len(features)
            fit = cls(LinearModel(features, tuple(float(v) for v in state["coefficients"]),
                                  float(state["intercept"][0])),
                      int(metadata["n"]), bool(metadata["fit_intercept"]), state["x_mean"],
                      state["x_scale"], float(state["scalars"][0]), float(state["scalars"][1]),
                      state["r_inverse"].reshape(d, d), float(state["scalars"][2]), state["x_spread"],
                      float(state["scalars"][3]))
        except (SafetensorError, ValueError, KeyError, TypeError, OverflowError) as error:
            raise PipelineError(f"{path}: not the least-squares file evaluate writes ({type(error).__name__}: "
                                f"{str(error)[:100]}): run `dvc repro`") from None
        return fit


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
    for name, ols in fit.model.as_dict().items():
        if name == INTERCEPT and not fit.fit_intercept:
            continue
        difference = abs(learnt.as_dict()[name] - ols)
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


# Residuals whose norm is below this fraction of the target's spread are rounding, not noise: an exact fit.
EXACT_FIT = 1e-12


def safe_open_metadata(content: bytes) -> dict[str, str]:
    """The string metadata of a safetensors file's header (its first 8 bytes give the header's length)."""
    length = int.from_bytes(content[:8], "little")
    return json.loads(content[8:8 + length]).get("__metadata__") or {}


def least_squares(rows: Rows, names: tuple[str, ...], fit_intercept: bool, source: Path) -> LinearModel:
    """The float64 least-squares model: fit_least_squares(...).model."""
    return fit_least_squares(rows, names, fit_intercept, source).model


def fit_least_squares(rows: Rows, names: tuple[str, ...], fit_intercept: bool, source: Path) -> LeastSquares:
    """The float64 least-squares fit, by a QR factorisation of [X | y] (orthogonal, never the normal
    equations, so it stays accurate on ill-conditioned, strongly correlated columns).

    Three passes over the rows, with memory for one chunk whatever their number: the means, then each
    column's norm about its mean, then the QR of the centred columns scaled to unit norm, chunk by chunk.
    Dot products are plain NumPy sums rather than BLAS, so the result is the same bits on every CPU.
    """
    n_rows, n_features = len(rows), len(names)
    x_sums, y_sum = [0.0] * n_features, 0.0
    for chunk in chunks(rows):
        for k in range(n_features):
            x_sums[k] += _sum(chunk.features[:, k].astype(np.float64)) if fit_intercept else 0.0
        y_sum += _sum(chunk.target)
    x_means = [total / n_rows for total in x_sums]  # zeros without an intercept: nothing is centred
    target_mean = y_sum / n_rows
    y_mean = target_mean if fit_intercept else 0.0
    squares, spreads = [0.0] * n_features, [0.0] * n_features
    y_squares = about_mean = 0.0
    for chunk in chunks(rows):
        for k, column in enumerate(_centred(chunk, x_means)):
            squares[k] += _sum(column * column)
            spreads[k] = max(spreads[k], float(np.max(np.abs(column))))
        y_squares += _sum((chunk.target - y_mean) ** 2)
        about_mean += _sum((chunk.target - target_mean) ** 2)
    scales = [math.sqrt(total) for total in squares]
    r = np.zeros((n_features + 1, n_features + 1))
    for number, chunk in enumerate(chunks(rows)):
        # A constant column is left out of the basis (zeros): the checks below name it.
        columns = [column / scale if scale else np.zeros_like(column)
                   for column, scale in zip(_centred(chunk, x_means), scales)]
        columns.append(chunk.target.astype(np.float64) - y_mean)
        if number > 0:  # [X | y] of every earlier chunk has the same R as the rows of r: factorise r over this chunk
            columns = [np.concatenate([r[:, k], column]) for k, column in enumerate(columns)]
        r = _factorise(columns)
    for k in range(n_features):  # only the whole R says whether the features are independent
        if scales[k] == 0:
            raise PipelineError(f"{source}: feature {names[k]!r} is constant: expected at least two distinct values")
        if r[k, k] < 1e-10:
            others = ", ".join(repr(name) for name in names[:k])
            raise PipelineError(
                f"{source}: feature {names[k]!r} is a linear combination of {others}"
                f"{' and the intercept' if fit_intercept else ''}: expected linearly independent features"
            )
    qty = r[:, n_features]  # Q^T y
    scaled = np.zeros(n_features)
    for k in reversed(range(n_features)):  # back substitution, R · scaled = Q^T y
        scaled[k] = (qty[k] - sum(r[k, j] * scaled[j] for j in range(k + 1, n_features))) / r[k, k]
    coefficients = tuple(float(value / scale) for value, scale in zip(scaled, scales))
    intercept = y_mean - math.fsum(c * m for c, m in zip(coefficients, x_means)) if fit_intercept else 0.0
    return LeastSquares(LinearModel(names, coefficients, intercept), n_rows, fit_intercept, np.array(x_means),
                        np.array(scales), y_mean, math.sqrt(y_squares), _inverse_upper(r[:n_features, :n_features]),
                        float(r[n_features, n_features]) ** 2, np.array(spreads), math.sqrt(about_mean / n_rows))


def _inverse_upper(r: np.ndarray) -> np.ndarray:
    """R⁻¹ of an upper-triangular R by back substitution, one row at a time, with plain NumPy sums."""
    size = len(r)
    inverse = np.zeros_like(r)
    for k in reversed(range(size)):
        inverse[k, k] = 1.0 / r[k, k]
        for j in range(k + 1, size):
            inverse[k, j] = -_sum(r[k, k + 1:j + 1] * inverse[k + 1:j + 1, j]) / r[k, k]
    return inverse


def _factorise(columns: list[np.ndarray]) -> np.ndarray:
    """R of the columns [x1 … xd | y] by modified Gram-Schmidt: the x columns become an orthonormal basis,
    y is projected on it (r[:d, d] is Q^T y) and r[d, d] is the norm of what is left of y."""
    r = np.zeros((len(columns), len(columns)))
    basis: list[np.ndarray] = []
    for k, vector in enumerate(columns):
        for j, q in enumerate(basis):  # remove what earlier columns explain (modified Gram-Schmidt)
            r[j, k] = _sum(q * vector)
            vector = vector - r[j, k] * q
        r[k, k] = math.sqrt(_sum(vector * vector))
        if k < len(columns) - 1:
            # Within one chunk a column may depend on the others: the basis vector is then zeros, and
            # least_squares judges the features on the R of every row.
            basis.append(vector / r[k, k] if r[k, k] else np.zeros_like(vector))
    return r


def _centred(chunk: Table, means: list[float]) -> list[np.ndarray]:
    return [chunk.features[:, k].astype(np.float64) - mean for k, mean in enumerate(means)]


def _sum(values: np.ndarray) -> float:
    # np.sum adds pairwise in a fixed order (no BLAS), so the bits do not depend on the CPU's kernels.
    return float(np.sum(values))


def _total(rows: Rows, term: Callable[[Table], np.ndarray]) -> float:
    """The sum of term(chunk) over the rows: a sum per chunk, added in the chunks' order, so that the bits
    depend on the rows alone, not on how they are grouped or read."""
    total = 0.0
    for chunk in chunks(rows):
        total += _sum(term(chunk))
    return total


@dataclass(frozen=True)
class Scores:
    """How a model does on some rows, beside a baseline model (least squares)."""

    n: int
    mse: float
    mse_baseline: float
    r2: float  # 1 − SSE/SST, as r2() defines it
    gap: float  # as prediction_gap() defines it


def scores(model: LinearModel, baseline: LinearModel, rows: Rows, fit_intercept: bool) -> Scores:
    """mse, r2 and the gap of `model` and the mse of `baseline` on the rows, in two passes over them."""
    n_rows = len(rows)
    target_mean = _total(rows, lambda chunk: chunk.target) / n_rows
    centre = target_mean if fit_intercept else 0.0
    errors = baseline_errors = about_centre = about_mean = 0.0
    largest = 0.0
    for chunk in chunks(rows):
        predictions, baseline_predictions = model.predict(chunk.features), baseline.predict(chunk.features)
        residuals = chunk.target - predictions
        baseline_residuals = chunk.target - baseline_predictions
        errors += _sum(residuals * residuals)
        baseline_errors += _sum(baseline_residuals * baseline_residuals)
        about_centre += _sum((chunk.target - centre) ** 2)
        about_mean += _sum((chunk.target - target_mean) ** 2)
        largest = max(largest, float(np.max(np.abs(predictions - baseline_predictions))))
    error = errors / n_rows * n_rows  # n × mse, to the bit, as r2 always computed it
    # SST about the mean, or about zero for a model without an intercept, as statistics packages measure a
    # model without a constant.
    r2_value = 1.0 - error / about_centre if about_centre > 0 else float(error == 0)
    # The gap: the largest difference of prediction, divided by the target's standard deviation.
    spread = math.sqrt(about_mean / n_rows) or 1.0
    return Scores(n_rows, errors / n_rows, baseline_errors / n_rows, r2_value, largest / spread)


def mse(model: LinearModel, rows: Rows) -> float:
    return scores(model, model, rows, True).mse


def r2(model: LinearModel, rows: Rows, fit_intercept: bool) -> float:
    """1 − SSE/SST; SST about the mean, or about zero for a model without an intercept, as statistics
    packages measure a model without a constant."""
    return scores(model, model, rows, fit_intercept).r2


def prediction_gap(learnt: LinearModel, baseline: LinearModel, rows: Rows) -> float:
    """How far apart two models are, in one unit for every dataset: their largest difference of
    prediction on these rows, divided by the target's standard deviation."""
    return scores(learnt, baseline, rows, True).gap


# Weights: the state_dict of torch.nn.Linear(d, 1), as safetensors, a format that cannot carry code. Its
# metadata (strings, as safetensors allows) says what the weights mean, so that the file explains itself.

@dataclass(frozen=True)
class Description:
    """What a weights file's metadata says: the model's columns, the features they are made of, the degree,
    the target, whether there is an intercept, and the dtype of the weights."""

    features: tuple[str, ...]  # the model's columns, powers included: x, x^2, …
    raw_features: tuple[str, ...]
    degree: int
    target: str | None
    fit_intercept: bool
    dtype: str

    @classmethod
    def load(cls, path: "Path | str") -> "Description":
        """What the weights file at `path` says of itself."""
        return cls.of(Path(path), _read_weights(Path(path))[1])

    @classmethod
    def of(cls, path: Path, metadata: dict[str, str]) -> "Description":
        """What a weights file's metadata says; anything else gets one line."""
        if METADATA_KEY not in metadata:
            raise PipelineError(f"{path}: holds no {METADATA_KEY!r} metadata: expected weights written by train, "
                                "which say what they mean (run `dvc repro`)")
        try:
            values = json.loads(metadata[METADATA_KEY])
            found = cls(tuple(values["features"]), tuple(values["raw_features"]), values["degree"],
                        values["target"], values["fit_intercept"], values["dtype"])
            valid = (all(isinstance(name, str) for name in (*found.features, *found.raw_features))
                     and type(found.degree) is int and found.degree >= 1
                     and isinstance(found.target, (str, type(None))) and isinstance(found.fit_intercept, bool)
                     and found.dtype in ("float32", "float64")
                     and found.features[:len(found.raw_features)] == found.raw_features
                     and len(found.features) == len(found.raw_features) * found.degree)
        except (KeyError, ValueError, TypeError):
            valid = False
        if not valid:
            raise PipelineError(f"{path}: metadata {metadata[METADATA_KEY][:150]!r}: expected a JSON object of "
                                f"{', '.join(FIELDS)} as train writes it (run `dvc repro`)")
        return found

    def as_metadata(self) -> dict[str, str]:
        # One key: safetensors writes the keys of its metadata in no fixed order, and the same params must
        # give the same bytes.
        values = {name: getattr(self, name) for name in FIELDS}
        return {METADATA_KEY: json.dumps(values | {"features": list(self.features),
                                                   "raw_features": list(self.raw_features)})}


# safetensors.safe_open(path, "numpy").metadata()["linear_model"] is a JSON object of the FIELDS.
METADATA_KEY = "linear_model"
FIELDS = ("features", "raw_features", "degree", "target", "fit_intercept", "dtype")


def save_weights(path: Path, model: LinearModel, dtype: str, fit_intercept: bool, target: str | None = None,
                 degree: int = 1) -> None:
    """The weights as safetensors, with metadata that says what they mean (Description)."""
    state = {"weight": np.array([model.coefficients], dtype=dtype)}
    if fit_intercept:
        state["bias"] = np.array([model.intercept], dtype=dtype)
    raw_features = model.features[:len(model.features) // degree]
    metadata = Description(model.features, raw_features, degree, target, fit_intercept, dtype).as_metadata()
    with atomic_output(path) as temporary:
        temporary.write_bytes(save_safetensors(state, metadata=metadata))


def load_weights(path: Path, features: tuple[str, ...], fit_intercept: bool) -> LinearModel:
    """Read the weights of a Linear(len(features), 1) model, the columns that params.yaml names; anything
    else, or metadata that names other columns, gets one line."""
    state, metadata = _read_weights(path)
    if METADATA_KEY in metadata:  # weights written before they described themselves are read as they were
        described = Description.of(path, metadata)
        if described.features != tuple(features):
            raise PipelineError(f"{path}: holds the weights of columns {list(described.features)}: expected "
                                f"{list(features)}, as data.features and data.degree say (run `dvc repro`)")
    return _model_of(path, state, features, fit_intercept)


def _read_weights(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and the metadata of a safetensors file; a file that is none gets one line."""
    content = read_bytes(path)
    if content[:2] in (b"PK", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"):
        raise PipelineError(f"{path}: is a pickle (a torch.save file?), which can run code when loaded: "
                            "expected safetensors weights (run `dvc repro`)")
    try:
        state = load_safetensors(content)
        metadata = safe_open_metadata(content)
    except (SafetensorError, ValueError, OverflowError) as error:
        raise PipelineError(f"{path}: not a readable safetensors file ({str(error).splitlines()[0][:150]})") from None
    return state, metadata


def _model_of(path: Path, state: dict[str, np.ndarray], features: tuple[str, ...], fit_intercept: bool) -> LinearModel:
    expected_shapes = {"weight": (1, len(features))} | ({"bias": (1,)} if fit_intercept else {})
    if set(state) != set(expected_shapes):
        raise PipelineError(f"{path}: holds {sorted(state)}: expected {sorted(expected_shapes)} "
                            f"(train.fit_intercept = {'true' if fit_intercept else 'false'})")
    for name, shape in expected_shapes.items():
        tensor = state[name]
        if tensor.shape != shape or tensor.dtype not in (np.float32, np.float64):
            raise PipelineError(f"{path}: {name} is {tensor.shape} {tensor.dtype}: "
                                f"expected float32 or float64 of shape {shape} for features {list(features)}")
        if not np.isfinite(tensor).all():
            raise PipelineError(f"{path}: {name} is {tensor.tolist()}: expected finite numbers")
    intercept = float(state["bias"][0]) if fit_intercept else 0.0
    return LinearModel(tuple(features), tuple(float(value) for value in state["weight"][0]), intercept)
