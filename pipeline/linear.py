"""A fitted linear model y = X·coefficients + intercept, its least-squares baseline, and its weights file.

No torch here: evaluate and visualize read the weights with safetensors.numpy and compute in float64.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as load_safetensors, save as save_safetensors

from pipeline.errors import PipelineError
from pipeline.files import atomic_output, read_bytes

INTERCEPT = "intercept"


@dataclass(frozen=True)
class LinearModel:
    """Coefficients by feature name and an intercept (0 for a model fitted through the origin)."""

    features: tuple[str, ...]
    coefficients: tuple[float, ...]
    intercept: float

    def predict(self, features: np.ndarray) -> np.ndarray:
        """float64 predictions for the rows of `features`, (n, d); elementwise, so the same bits on every CPU."""
        predictions = np.full(len(features), self.intercept, dtype=np.float64)
        for column, coefficient in enumerate(self.coefficients):
            predictions += coefficient * features[:, column]
        return predictions

    def as_dict(self) -> dict[str, float]:
        """{feature: coefficient, …, "intercept": intercept}: the schema of truth.json and of the metrics."""
        return {**dict(zip(self.features, self.coefficients)), INTERCEPT: self.intercept}

    @classmethod
    def from_dict(cls, features: tuple[str, ...], values: dict[str, float]) -> "LinearModel":
        return cls(features, tuple(values[name] for name in features), values[INTERCEPT])


def mean(values: np.ndarray) -> float:
    # np.sum adds pairwise in a fixed order (no BLAS), so the bits do not depend on the CPU's kernels.
    return float(np.sum(values)) / len(values)


def least_squares(features: np.ndarray, target: np.ndarray, names: tuple[str, ...], fit_intercept: bool,
                  source: Path) -> LinearModel:
    """The float64 least-squares fit, by modified Gram-Schmidt QR of [X | y] (orthogonal, never the
    normal equations, so it stays accurate on ill-conditioned, strongly correlated columns).

    Columns are centred (with an intercept) and scaled to unit norm first; dot products are plain NumPy
    sums rather than BLAS, so the result is the same bits on every CPU.
    """
    columns = [features[:, column].astype(np.float64) for column in range(features.shape[1])]
    y = target.astype(np.float64)
    x_means = [mean(column) for column in columns] if fit_intercept else [0.0] * len(columns)
    y_mean = mean(y) if fit_intercept else 0.0
    columns = [column - column_mean for column, column_mean in zip(columns, x_means)]
    y = y - y_mean
    scales = [math.sqrt(float(np.sum(column * column))) for column in columns]
    basis: list[np.ndarray] = []
    r = np.zeros((len(columns), len(columns)))
    qty = np.zeros(len(columns))
    for k, (column, scale) in enumerate(zip(columns, scales)):
        if scale == 0:
            raise PipelineError(f"{source}: feature {names[k]!r} is constant: expected at least two distinct values")
        vector = column / scale
        for j, q in enumerate(basis):  # remove what earlier columns explain (modified Gram-Schmidt)
            r[j, k] = float(np.sum(q * vector))
            vector = vector - r[j, k] * q
        r[k, k] = math.sqrt(float(np.sum(vector * vector)))
        if r[k, k] < 1e-10:
            others = ", ".join(repr(name) for name in names[:k])
            raise PipelineError(
                f"{source}: feature {names[k]!r} is a linear combination of {others}"
                f"{' and the intercept' if fit_intercept else ''}: expected linearly independent features"
            )
        basis.append(vector / r[k, k])
    for k, q in enumerate(basis):  # Q^T y, projecting y as the columns were projected
        qty[k] = float(np.sum(q * y))
        y = y - qty[k] * q
    scaled = np.zeros(len(columns))
    for k in reversed(range(len(columns))):  # back substitution, R · scaled = Q^T y
        scaled[k] = (qty[k] - sum(r[k, j] * scaled[j] for j in range(k + 1, len(columns)))) / r[k, k]
    coefficients = tuple(float(value / scale) for value, scale in zip(scaled, scales))
    intercept = y_mean - math.fsum(c * m for c, m in zip(coefficients, x_means)) if fit_intercept else 0.0
    return LinearModel(names, coefficients, intercept)


def mse(model: LinearModel, features: np.ndarray, target: np.ndarray) -> float:
    residuals = target - model.predict(features)
    return mean(residuals * residuals)


def r2(model: LinearModel, features: np.ndarray, target: np.ndarray, fit_intercept: bool) -> float:
    """1 − SSE/SST; SST about the mean, or about zero for a model without an intercept, as statistics
    packages measure a model without a constant."""
    centre = mean(target) if fit_intercept else 0.0
    total = float(np.sum((target - centre) ** 2))
    error = mse(model, features, target) * len(target)
    return 1.0 - error / total if total > 0 else float(error == 0)


def prediction_gap(learnt: LinearModel, baseline: LinearModel, features: np.ndarray, target: np.ndarray) -> float:
    """How far apart two models are, in one unit for every dataset: their largest difference of
    prediction on these rows, divided by the target's standard deviation."""
    spread = math.sqrt(mean((target - mean(target)) ** 2)) or 1.0
    return float(np.max(np.abs(learnt.predict(features) - baseline.predict(features)))) / spread


# Weights: the state_dict of torch.nn.Linear(d, 1), as safetensors, a format that cannot carry code.

def save_weights(path: Path, model: LinearModel, dtype: str, fit_intercept: bool) -> None:
    state = {"weight": np.array([model.coefficients], dtype=dtype)}
    if fit_intercept:
        state["bias"] = np.array([model.intercept], dtype=dtype)
    with atomic_output(path) as temporary:
        temporary.write_bytes(save_safetensors(state))


def load_weights(path: Path, features: tuple[str, ...], fit_intercept: bool) -> LinearModel:
    """Read the weights of a Linear(len(features), 1) model; anything else gets one line."""
    content = read_bytes(path)
    if content[:2] in (b"PK", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"):
        raise PipelineError(f"{path}: is a pickle (a torch.save file?), which can run code when loaded: "
                            "expected safetensors weights (run `dvc repro`)")
    try:
        state = load_safetensors(content)
    except (SafetensorError, ValueError, OverflowError) as error:
        raise PipelineError(f"{path}: not a readable safetensors file ({str(error).splitlines()[0][:150]})") from None
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
    return LinearModel(features, tuple(float(value) for value in state["weight"][0]), intercept)
