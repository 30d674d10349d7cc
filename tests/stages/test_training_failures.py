"""Training that goes wrong: a loss that blows up stops at once and loudly; one that only oscillates
finishes, and the metrics show how far it is from least squares."""

import contextlib
import json
import re

import numpy as np
import pytest

from pipeline import files, training
from pipeline.dataset import Table, gather, read_table
from pipeline.split import Split, load_split
from pipeline.errors import PipelineError
from pipeline.factoring import fit_least_squares
from pipeline.params import DataParams, TrainParams, load_params
from workspace import ROOT, dvc, error_line, files_in, isolate, ran, set_param, set_params, stage

DIVERGED = re.compile(
    r"training diverged: train loss = (?P<loss>inf|nan) at epoch (?P<epoch>\d+) "
    r"with train\.optimizer = (?P<optimizer>\w+), train\.lr = (?P<lr>\S+): try (?P<remedies>.+)"
)
DEFAULTS = load_params(TrainParams, ROOT / "params.yaml")  # the committed train section


def test_a_diverging_loss_stops_train_with_one_line_naming_epoch_loss_and_lr_and_writes_no_model(
        reproduced_template, tmp_path):
    folder = isolate(reproduced_template, tmp_path, "train")
    set_param(folder, "train.lr", 10.0)
    inputs = files_in(folder)
    line = error_line(stage(folder, "train"))
    found = DIVERGED.fullmatch(line.removeprefix("error: "))
    assert found, line
    assert (found["loss"], found["optimizer"], found["lr"]) == ("inf", "sgd", "10.0")
    # The data is already standardised, so the remedy is the lr that is safe there.
    assert found["remedies"] == "train.lr: 0.1, which is safe with train.standardize: true"
    assert files_in(folder) == inputs  # neither the model nor the history


def test_without_standardize_the_remedy_is_standardize_alone(reproduced_template, tmp_path):
    """Not a smaller lr, lbfgs or adam: on raw features each may diverge too (1e-10 does on x near 1e8)."""
    folder = isolate(reproduced_template, tmp_path, "train")
    set_params(folder, {"train.standardize": False, "train.lr": 1.0})
    found = DIVERGED.fullmatch(error_line(stage(folder, "train")).removeprefix("error: "))
    assert found and found["remedies"] == "train.standardize: true with train.lr: 0.1"


def remedy(line: str) -> dict:
    """The params a divergence's line says to set: train.key: value (and train.key: value)."""
    changes = dict(re.findall(r"train\.(\w+): ([\w.]+)", DIVERGED.fullmatch(line)["remedies"]))
    return {key: {"true": True, "false": False}.get(value) if value in ("true", "false") else
            value if key == "optimizer" else float(value) for key, value in changes.items()}


@pytest.mark.parametrize("table, changes", [
    ("points", {"standardize": False, "lr": 0.5}),
    ("x near 1e8", {"standardize": False, "lr": 1e-10}),  # raw SGD diverges at any lr a user would try
    ("points", {"lr": 10.0}),
    ("points", {"lr": 3.0, "momentum": 0.9}),
])
def test_the_remedy_a_divergence_names_works_on_the_case_that_gave_it(reproduced_template, table, changes):
    if table == "points":
        rows = read_table(reproduced_template / files.POINTS, ["x"], "y")
    else:
        rng = np.random.default_rng(0)
        x = rng.uniform(1e7, 1e8, (200, 1))
        rows = Table(x, 3 * x[:, 0] + 5 + rng.normal(size=200))
    split = Split(files.POINTS, rows, None)
    params = DEFAULTS.model_copy(update=changes)
    with pytest.raises(PipelineError) as diverged:
        training.fit(split, ("x",), params)
    learnt, history = training.fit(split, ("x",), params.model_copy(update=remedy(str(diverged.value))))
    assert np.isfinite(history["train_loss"]).all()
    ols = fit_least_squares(split.train, ("x",), True, "t.csv").model
    assert abs(learnt.coefficients[0] - ols.coefficients[0]) < 1e-3 * abs(ols.coefficients[0])


@pytest.mark.parametrize("loss, lr, poison", [("inf", 10.0, None), ("nan", 0.05, 17)])
def test_training_stops_at_the_first_epoch_whose_loss_is_not_finite(reproduced_template, loss, lr, poison):
    points = read_table(reproduced_template / files.POINTS, ["x"], "y")
    target = points.target.copy()
    if poison is not None:  # a NaN the reader would refuse, to reach a NaN loss
        target[poison] = np.nan
    split = Split(files.POINTS, Table(points.features, target), None)

    def fit(epochs: int) -> dict[str, np.ndarray]:
        return training.fit(split, ("x",), DEFAULTS.model_copy(update={"lr": lr, "epochs": epochs}))[1]

    with pytest.raises(PipelineError) as diverged:
        fit(epochs=1000)
    found = DIVERGED.fullmatch(str(diverged.value))
    assert found and found["loss"] == loss
    epoch = int(found["epoch"])
    if epoch > 0:  # every earlier epoch had a finite loss: a run that ends just before finishes
        assert np.isfinite(fit(epochs=epoch - 1)["train_loss"]).all()
    # It stopped right there, whatever the number of epochs asked for.
    with pytest.raises(PipelineError, match=f"at epoch {epoch} "):
        fit(epochs=max(epoch, 1))


def stability_limit(project) -> float:
    """The largest lr at which the tutorial's raw full-batch SGD does not diverge on the training rows:
    1 / the largest eigenvalue of [[mean x², mean x], [mean x, 1]], half the MSE's Hessian."""
    data = load_params(DataParams, project / "params.yaml")
    with contextlib.chdir(project):
        x = gather(load_split(data, fit_intercept=True).train).features[:, 0]
    return 1 / float(np.linalg.eigvalsh([[np.mean(x * x), np.mean(x)], [np.mean(x), 1.0]]).max())


def test_an_oscillating_lr_finishes_and_the_metrics_show_the_gap_to_least_squares(reproduced):
    converged = json.loads((reproduced / "metrics/metrics.json").read_text())
    # The tutorial's raw SGD just below its stability limit (about 0.115 here): the slope swings from one
    # side of the least-squares slope to the other, shrinking by only 0.4% an epoch, to a third in 300 epochs.
    lr = 0.998 * stability_limit(reproduced)
    set_params(reproduced, {"train.standardize": False, "train.lr": lr, "train.epochs": 300})
    assert ran(dvc(reproduced, "repro").stdout) == {"train", "evaluate", "visualize", "predict"}
    metrics = json.loads(dvc(reproduced, "metrics", "show", "--json").stdout)
    metrics = metrics[""]["data"]["metrics/metrics.json"]["data"]
    assert metrics["converged"] is False
    assert metrics["gap"] > 0.1 and metrics["gap"] > 1000 * converged["gap"]
    assert abs(metrics["learnt"]["x"] - metrics["ols"]["x"]) > 0.01
    history = files.read_history(reproduced / files.HISTORY, ("train_loss", "test_loss", "x", "intercept"))
    assert all(np.isfinite(column).all() for column in history.values())
    side = np.sign(history["x"][-50:] - metrics["ols"]["x"])  # on either side of the best slope
    assert (side[1:] == -side[:-1]).all() and (side != 0).all()
