"""Stage evaluate: measure the learnt model on training and held-out rows, beside least squares and,
for synthetic data, the true line. Reads the weights with safetensors and computes in float64: no torch."""

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.dataset import Split, load_split
from pipeline.errors import run_stage
from pipeline.files import METRICS, MODEL, POINTS, TRUTH, numbers, read_json, write_json
from pipeline.linear import INTERCEPT, LinearModel, least_squares, load_weights, mse, prediction_gap, r2
from pipeline.params import DataParams, TrainParams, load_params


def evaluate(split: Split, learnt: LinearModel, true_line: LinearModel | None, fit_intercept: bool,
             tolerance: float) -> dict[str, Any]:
    """metrics.json: the models by name (learnt, ols, true), how each does on the rows, and whether
    training reached least squares."""
    train = split.train
    baseline = least_squares(train.features, train.target, learnt.features, fit_intercept, split.source)
    gap = prediction_gap(learnt, baseline, train.features, train.target)
    metrics: dict[str, Any] = {"learnt": learnt.as_dict(), "ols": baseline.as_dict()}
    if true_line is not None:
        metrics["true"] = true_line.as_dict()
    # gap: the largest difference of learnt and least-squares predictions on the training rows, in
    # standard deviations of the target: one threshold fits every dataset.
    metrics["gap"] = gap
    metrics["converged"] = bool(gap < tolerance)
    for name, rows in (("train", train), ("test", split.test)):
        if rows is not None:
            metrics[name] = {
                "mse": mse(learnt, rows.features, rows.target),
                "mse_ols": mse(baseline, rows.features, rows.target),
                "r2": r2(learnt, rows.features, rows.target, fit_intercept),
                "n": len(rows.target),
            }
    return metrics


def true_line_of(data: DataParams) -> LinearModel | None:
    """The line synthesize drew from, when the model is fitted to all of its columns; None for a user's file."""
    if Path(data.source) != POINTS or data.target != "y":
        return None
    values = read_json(TRUTH)
    features = tuple(data.features)
    if set(values) != {*features, INTERCEPT}:  # another set of columns than the points were drawn with
        return None
    return LinearModel.from_dict(features, numbers(TRUTH, values, (*features, INTERCEPT)))


def main() -> None:
    data = load_params(DataParams)
    train = load_params(TrainParams)
    split = load_split(data, train.fit_intercept)
    learnt = load_weights(MODEL, tuple(data.features), train.fit_intercept)
    metrics = evaluate(split, learnt, true_line_of(data), train.fit_intercept, train.tolerance)
    write_json(METRICS, metrics)
    for name, value in metrics.items():
        print(f"{name}: {shown(value)}")


def shown(value: Any) -> str:
    """A metric as train's log shows numbers: 6 significant digits, a group of them as key = value."""
    if isinstance(value, dict):
        return ", ".join(f"{key} = {shown(item)}" for key, item in value.items())
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


if __name__ == "__main__":
    run_stage(main)
