"""Stage evaluate: measure the learnt model on training and held-out rows, beside least squares and,
for synthetic data, the true line. Reads the weights with safetensors and computes in float64: no torch."""

from pathlib import Path
from typing import Any

from pipeline.dataset import Split, load_split
from pipeline.errors import run_stage
from pipeline.files import METRICS, MODEL, POINTS, TRUTH, numbers, read_json, write_json
from pipeline.linear import INTERCEPT, LinearModel, Scores, least_squares, load_weights, scores
from pipeline.params import DataParams, TrainParams, load_params


def evaluate(split: Split, learnt: LinearModel, true_line: LinearModel | None, fit_intercept: bool,
             tolerance: float) -> dict[str, Any]:
    """metrics.json: the models by name (learnt, ols, true), how each does on the rows, and whether
    training reached least squares. Streams the rows: three passes over the training rows for least
    squares, then two over each part for the scores."""
    train = split.train
    baseline = least_squares(train, learnt.features, fit_intercept, split.source)
    on_train = scores(learnt, baseline, train, fit_intercept)
    metrics: dict[str, Any] = {"learnt": learnt.as_dict(), "ols": baseline.as_dict()}
    if true_line is not None:
        metrics["true"] = true_line.as_dict()
    # gap: the largest difference of learnt and least-squares predictions on the training rows, in
    # standard deviations of the target: one threshold fits every dataset.
    metrics["gap"] = on_train.gap
    metrics["converged"] = bool(on_train.gap < tolerance)
    metrics["train"] = as_metrics(on_train)
    if split.test is not None:
        metrics["test"] = as_metrics(scores(learnt, baseline, split.test, fit_intercept))
    return metrics


def as_metrics(found: Scores) -> dict[str, Any]:
    return {"mse": found.mse, "mse_ols": found.mse_baseline, "r2": found.r2, "n": found.n}


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
    # Where the model was trained: the same answer to the last few bits, but a run's record says which.
    metrics |= {"device": train.device, "processes": train.processes}
    metrics["rows_dropped"] = split.rows_dropped  # by data.missing: drop
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
