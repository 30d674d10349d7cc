"""evaluate compares the learnt line with the truth and with closed-form least squares."""

import numpy as np
import pytest
import torch

from pipeline.errors import PipelineError
from pipeline.evaluate import evaluate, least_squares, predict
from pipeline.model import make_model


def test_least_squares_recovers_a_noiseless_line_exactly():
    x = np.linspace(1e3, 1e3 + 1.0, 101)  # far from 0: the centred formula keeps its precision
    m_ols, c_ols = least_squares(x, 0.25 * x - 7.0)
    assert m_ols == pytest.approx(0.25, rel=1e-9) and c_ols == pytest.approx(-7.0, rel=1e-6)


def test_least_squares_matches_numpy_polyfit_on_noisy_data():
    rng = np.random.default_rng(0)
    x = rng.uniform(-5, 5, 1000)
    y = 2.0 * x + 1.0 + rng.normal(0, 1, 1000)
    assert least_squares(x, y) == pytest.approx(tuple(np.polyfit(x, y, 1)), rel=1e-12)


def test_least_squares_refuses_data_with_a_single_x():
    with pytest.raises(PipelineError, match="every x is the same"):
        least_squares(np.ones(5), np.arange(5.0))


def test_the_metrics_of_a_perfect_model():
    x = np.linspace(-1, 1, 20)
    y = 2.0 * x + 1.0
    metrics = evaluate(x, y, 2.0 * x + 1.0, 2.0, 1.0, m_true=2.0, c_true=1.0)
    assert metrics["mse"] == 0.0 and metrics["r2"] == 1.0
    assert metrics["m_gap"] == pytest.approx(0.0, abs=1e-12) and metrics["c_gap"] == pytest.approx(0.0, abs=1e-12)
    assert {"m_learnt", "c_learnt", "m_true", "c_true", "m_ols", "c_ols", "mse", "mse_ols", "r2"} <= set(metrics)


def test_the_gap_shows_how_far_training_is_from_least_squares():
    x = np.linspace(-1, 1, 20)
    y = 2.0 * x + 1.0
    metrics = evaluate(x, y, 1.5 * x + 1.0, 1.5, 1.0, m_true=2.0, c_true=1.0)
    assert metrics["m_gap"] == pytest.approx(0.5) and metrics["mse"] > metrics["mse_ols"]
    assert metrics["r2"] < 1.0


def test_predict_runs_the_model_itself():
    model = make_model()
    with torch.no_grad():
        model.weight.fill_(2.0)
        model.bias.fill_(-1.0)
    assert np.array_equal(predict(model, np.array([0.0, 1.0, 2.5])), [-1.0, 1.0, 4.0])
