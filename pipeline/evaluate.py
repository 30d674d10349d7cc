"""Stage evaluate: compare the learnt line with the true line and with closed-form least squares."""

import math

import numpy as np
import torch

from pipeline.errors import PipelineError, run_stage
from pipeline.files import METRICS, MODEL, POINTS, TRUTH, read_json, read_points, write_json
from pipeline.model import line_of, load_model


def exact_sum(values: np.ndarray) -> float:
    """The correctly rounded sum: unlike np.sum or np.dot, the same bits whatever the CPU's vector units or BLAS."""
    return math.fsum(values)


def least_squares(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The slope and intercept that minimise the squared error, in float64 (centred for accuracy)."""
    x_mean, y_mean = exact_sum(x) / len(x), exact_sum(y) / len(y)
    x_centred = x - x_mean
    spread = exact_sum(x_centred * x_centred)
    if spread == 0:
        raise PipelineError(f"{POINTS}: every x is the same: least squares needs at least two distinct x values")
    m_ols = exact_sum(x_centred * (y - y_mean)) / spread
    return m_ols, y_mean - m_ols * x_mean


def predict(model: torch.nn.Linear, x: np.ndarray) -> np.ndarray:
    """The model's predictions for x, computed as training computes them (float32)."""
    with torch.no_grad():
        return model(torch.from_numpy(x.astype(np.float32)).unsqueeze(1)).squeeze(1).numpy().astype(np.float64)


def evaluate(x: np.ndarray, y: np.ndarray, predictions: np.ndarray, m_learnt: float, c_learnt: float,
             m_true: float, c_true: float) -> dict[str, float]:
    m_ols, c_ols = least_squares(x, y)
    mse = exact_sum((y - predictions) ** 2) / len(y)
    mse_ols = exact_sum((y - (m_ols * x + c_ols)) ** 2) / len(y)
    total = exact_sum((y - exact_sum(y) / len(y)) ** 2)
    return {
        "m_learnt": m_learnt,
        "c_learnt": c_learnt,
        "m_true": m_true,
        "c_true": c_true,
        "m_ols": m_ols,
        "c_ols": c_ols,
        # How far training is from the best line it could reach: large when lr oscillates or is too small.
        "m_gap": abs(m_learnt - m_ols),
        "c_gap": abs(c_learnt - c_ols),
        "mse": mse,
        "mse_ols": mse_ols,
        "r2": 1.0 - mse * len(y) / total if total > 0 else float(mse == 0),
    }


def main() -> None:
    x, y = read_points(POINTS)
    truth = read_json(TRUTH, ("m_true", "c_true"))
    model = load_model(MODEL)
    m_learnt, c_learnt = line_of(model)
    metrics = evaluate(x, y, predict(model, x), m_learnt, c_learnt, truth["m_true"], truth["c_true"])
    write_json(METRICS, metrics)
    print(", ".join(f"{key} = {value:.6g}" for key, value in metrics.items()))


if __name__ == "__main__":
    run_stage(main)
