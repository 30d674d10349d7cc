"""train runs the tutorial's loop and records row k = m, c and their loss after k epochs."""

import numpy as np
import pytest
import torch

from pipeline.errors import PipelineError
from pipeline.model import line_of
from pipeline.params import TrainParams
from pipeline.train import fit, init_model

X = np.linspace(-2.0, 2.0, 50)
Y = 3.0 * X + 0.5


def test_the_seed_alone_sets_the_initial_line():
    assert line_of(init_model(1)) == line_of(init_model(1))
    assert line_of(init_model(1)) != line_of(init_model(2))


def test_the_history_starts_at_the_initial_line_and_ends_at_the_learnt_one():
    model = init_model(0)
    m_initial, c_initial = line_of(model)
    history = fit(model, X, Y, TrainParams(lr=0.1, epochs=40, seed=0))
    assert list(history["epoch"]) == list(range(41))
    assert (history["m"][0], history["c"][0]) == (np.float32(m_initial), np.float32(c_initial))
    assert (history["m"][-1], history["c"][-1]) == tuple(np.float32(value) for value in line_of(model))
    with torch.no_grad():
        final_loss = torch.nn.functional.mse_loss(model(torch.tensor(X, dtype=torch.float32).unsqueeze(1)),
                                                  torch.tensor(Y, dtype=torch.float32).unsqueeze(1))
    assert history["loss"][-1] == np.float32(final_loss.item())


def test_full_batch_sgd_converges_to_the_line_and_the_loss_falls():
    model = init_model(0)
    history = fit(model, X, Y, TrainParams(lr=0.1, epochs=300, seed=0))
    m_learnt, c_learnt = line_of(model)
    assert m_learnt == pytest.approx(3.0, abs=1e-4) and c_learnt == pytest.approx(0.5, abs=1e-4)
    assert history["loss"][-1] < 1e-8 < history["loss"][0]


def test_the_first_step_is_exactly_one_sgd_step_on_the_mse_gradient():
    model = init_model(0)
    m0, c0 = line_of(model)
    history = fit(model, X, Y, TrainParams(lr=0.1, epochs=1, seed=0))
    x32, y32 = X.astype(np.float32), Y.astype(np.float32)
    error = (np.float32(m0) * x32 + np.float32(c0)) - y32
    assert history["m"][1] == pytest.approx(m0 - 0.1 * 2 * np.mean(error * x32), rel=1e-5)
    assert history["c"][1] == pytest.approx(c0 - 0.1 * 2 * np.mean(error), rel=1e-5)


def test_a_diverging_lr_stops_at_the_first_non_finite_loss():
    with pytest.raises(PipelineError, match=r"loss = (inf|nan) at epoch \d+ with train.lr = 50.0; lower train.lr"):
        fit(init_model(0), X, Y, TrainParams(lr=50.0, epochs=1000, seed=0))
