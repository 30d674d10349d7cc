"""Training that goes wrong: a loss that blows up stops at once and loudly; one that only oscillates
finishes, and the metrics show how far it is from least squares."""

import json
import re

import numpy as np
import pytest

from pipeline import files, train
from pipeline.errors import PipelineError
from pipeline.params import TrainParams
from workspace import dvc, error_line, files_in, isolate, ran, set_param, stage

DIVERGED = re.compile(
    r"training diverged: loss = (?P<loss>inf|nan) at epoch (?P<epoch>\d+) with train\.lr = (?P<lr>\S+); lower train\.lr"
)
# With the default data, SGD is stable below lr = 1/mean(x²) ≈ 0.1148: just below, m swings from one
# side of the least-squares slope to the other, shrinking by only 0.3% an epoch.
OSCILLATING_LR = 0.1145


def test_a_diverging_loss_stops_train_with_one_line_naming_epoch_loss_and_lr_and_writes_no_model(
        reproduced_template, tmp_path):
    folder = isolate(reproduced_template, tmp_path, "train")
    set_param(folder, "train.lr", 10.0)
    inputs = files_in(folder)
    line = error_line(stage(folder, "train"))
    assert DIVERGED.fullmatch(line.removeprefix("error: ")), line
    assert DIVERGED.search(line)["lr"] == "10.0"
    assert files_in(folder) == inputs  # neither models/model.pt nor metrics/history.csv


@pytest.mark.parametrize("loss, lr, poison", [("inf", 10.0, None), ("nan", 0.05, 17)])
def test_training_stops_at_the_first_epoch_whose_loss_is_not_finite(reproduced_template, loss, lr, poison):
    x, y = files.read_points(reproduced_template / files.POINTS)
    if poison is not None:  # a NaN the reader would refuse, to reach a NaN loss
        y = y.copy()
        y[poison] = np.nan

    def fit(model, epochs: int) -> dict[str, np.ndarray]:
        return train.fit(model, x, y, TrainParams(lr=lr, epochs=epochs, seed=0))

    long_run = train.init_model(0)
    with pytest.raises(PipelineError) as diverged:
        fit(long_run, epochs=1000)
    found = DIVERGED.fullmatch(str(diverged.value))
    assert found and found["loss"] == loss
    epoch = int(found["epoch"])
    if epoch > 0:  # every earlier epoch had a finite loss
        assert np.isfinite(fit(train.init_model(0), epochs=epoch - 1)["loss"]).all()
    # It stopped right there: the model holds what a run of exactly that many epochs holds, not what
    # steps taken after the loss blew up would make of it.
    short_run = train.init_model(0)
    with pytest.raises(PipelineError, match=f"at epoch {epoch} "):
        fit(short_run, epochs=max(epoch, 1))
    assert train.line_of(long_run) == train.line_of(short_run)


def test_an_oscillating_lr_finishes_and_the_metrics_show_the_gap_to_least_squares(reproduced):
    converged = json.loads((reproduced / "metrics/metrics.json").read_text())
    set_param(reproduced, "train.lr", OSCILLATING_LR)
    assert ran(dvc(reproduced, "repro").stdout) == {"train", "evaluate", "visualize"}
    metrics = json.loads(dvc(reproduced, "metrics", "show", "--json").stdout)
    metrics = metrics[""]["data"]["metrics/metrics.json"]["data"]
    assert metrics["m_gap"] == abs(metrics["m_learnt"] - metrics["m_ols"]) > 0.1
    assert metrics["m_gap"] > 1000 * converged["m_gap"]
    history = np.loadtxt(reproduced / "metrics/history.csv", delimiter=",", skiprows=1)
    assert np.isfinite(history).all()
    side = np.sign(history[-50:, 2] - metrics["m_ols"])  # column m, on either side of the best slope
    assert (side[1:] == -side[:-1]).all() and (side != 0).all()
