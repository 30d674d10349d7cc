"""evaluate measures the learnt model on training and held-out rows beside least squares and the truth."""

import numpy as np
import pytest

from pipeline.dataset import Table
from pipeline.split import Split
from pipeline.evaluate import evaluate, summary
from pipeline.linear import LinearModel
from pipeline.convergence import Tolerances

FEATURES = np.linspace(-1, 1, 20)[:, None]
TARGET = 2.0 * FEATURES[:, 0] + 1.0
SPLIT = Split("t.csv", Table(FEATURES[:15], TARGET[:15]), Table(FEATURES[15:], TARGET[15:]))
TRUE = LinearModel(("x",), (2.0,), 1.0)
TOLERANCES = Tolerances("float64", 1e-4, 0.01)


def test_the_metrics_of_a_perfect_model():
    metrics, _ = evaluate(SPLIT, LinearModel(("x",), (2.0,), 1.0), TRUE, True, TOLERANCES, 0.95)
    assert list(metrics) == ["learnt", "ols", "true", "gap", "coefficient_gap", "converged", "train", "test",
                             "residual_sd", "df_resid", "r2_adj", "f", "f_p", "condition_number", "r2",
                             "log_likelihood", "aic", "bic", "n_coefficients", "df_model", "cov_type", "inference"]
    assert metrics["learnt"] == metrics["true"] == {"x": 2.0, "intercept": 1.0}
    assert metrics["ols"]["x"] == pytest.approx(2.0, rel=1e-12) and metrics["ols"]["intercept"] == pytest.approx(1.0)
    assert metrics["gap"] < 1e-12 and metrics["converged"] is True
    assert metrics["train"] == {"mse": 0.0, "mse_ols": pytest.approx(0.0, abs=1e-24), "r2": 1.0, "n": 15}
    assert metrics["test"]["n"] == 5 and metrics["test"]["r2"] == 1.0
    # An exact fit: no noise to estimate, so se 0 and no t, p or F (JSON has no infinity).
    assert metrics["residual_sd"] == 0.0 and metrics["f"] is None and metrics["f_p"] is None
    assert metrics["inference"]["x"]["se"] == 0.0 and metrics["inference"]["x"]["t"] is None
    assert metrics["inference"]["intercept"]["p"] is None


def test_the_gap_and_converged_show_how_far_training_is_from_least_squares():
    learnt = LinearModel(("x",), (1.5,), 1.0)
    metrics, _ = evaluate(SPLIT, learnt, TRUE, True, TOLERANCES, 0.95)
    train_rows = SPLIT.train
    worst = np.max(np.abs(learnt.predict(train_rows.features) - (2.0 * train_rows.features[:, 0] + 1.0)))
    assert metrics["gap"] == pytest.approx(worst / train_rows.target.std())
    assert metrics["converged"] is False
    assert metrics["train"]["mse"] > metrics["train"]["mse_ols"] and metrics["train"]["r2"] < 1.0
    # An exact fit's coefficient gap is in the prediction gap's unit: Δcoefficient × sd(x) / sd(y).
    x = train_rows.features[:, 0]
    assert metrics["coefficient_gap"] == pytest.approx(0.5 * x.std() / train_rows.target.std())


def test_a_users_table_has_no_true_line_and_no_split_has_no_test_metrics():
    metrics, _ = evaluate(Split("t.csv", Table(FEATURES, TARGET), None), LinearModel(("x",), (2.0,), 1.0), None,
                          True, TOLERANCES, 0.95)
    assert "true" not in metrics and "test" not in metrics and metrics["train"]["n"] == 20


def test_the_summary_fits_80_columns_and_with_many_features_shows_the_largest_t():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 30))
    coefficients = np.arange(30) / 10.0  # |t| grows with the column number
    target = features @ coefficients + rng.normal(size=200)
    names = tuple(f"a_rather_long_feature_name_{k}" for k in range(30))
    metrics, _ = evaluate(Split("t.csv", Table(features, target), None), LinearModel(names, tuple(coefficients), 0.0),
                          None, True, TOLERANCES, 0.95)
    text = summary(metrics, "y", 0.95, rows=5)
    assert all(len(line) <= 80 for line in text.splitlines()), text
    shown = [line.split()[0] for line in text.splitlines()[2:7]]
    largest = sorted(names, key=lambda name: -abs(metrics["inference"][name]["t"]))[:5]
    assert [name[-7:] for name in shown] == [name[-7:] for name in names if name in largest]
    assert set(largest) <= {names[k] for k in range(20, 30)}  # the large coefficients
    assert "… 26 more coefficients of smaller |t|: see metrics/metrics.json" in text
    few = summary(evaluate(SPLIT, LinearModel(("x",), (1.5,), 1.0), None, True, TOLERANCES, 0.9)[0], "y", 0.9)
    assert "[0.05" in few and "0.95]" in few and all(len(line) <= 80 for line in few.splitlines())
