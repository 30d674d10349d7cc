"""synthesize draws y = m·x + c + noise from its seed alone, with one feature x or several x1 … xd."""

import numpy as np
import pytest

from pipeline.params import SynthesizeParams
from pipeline.synthesize import DRAWN_RANGE, synthesize


def params(**changes) -> SynthesizeParams:
    values = dict(m=2.0, c=-1.0, noise=0.5, n_points=500, x_min=-3.0, x_max=4.0, seed=7) | changes
    return SynthesizeParams(**values)


def test_the_same_seed_gives_the_same_points_and_another_seed_other_points():
    (first, _), (again, _), (other, _) = synthesize(params()), synthesize(params()), synthesize(params(seed=8))
    assert list(first) == ["x", "y"]
    assert all(np.array_equal(first[name], again[name]) for name in first)
    assert not np.array_equal(first["x"], other["x"])


def test_x_is_in_range_and_y_scatters_around_the_true_line_with_the_given_noise():
    columns, true_line = synthesize(params(n_points=100_000))
    assert columns["x"].dtype == columns["y"].dtype == np.float64
    assert columns["x"].min() >= -3.0 and columns["x"].max() <= 4.0
    residuals = columns["y"] - (2.0 * columns["x"] - 1.0)
    assert abs(residuals.mean()) < 0.01
    assert residuals.std() == pytest.approx(0.5, rel=0.02)
    assert true_line.as_dict() == {"x": 2.0, "intercept": -1.0}


def test_a_list_of_slopes_draws_one_uniform_column_per_slope():
    columns, true_line = synthesize(params(m=[1.0, -2.0, 0.5], noise=0.0, n_points=20_000))
    assert list(columns) == ["x1", "x2", "x3", "y"]
    assert true_line.as_dict() == {"x1": 1.0, "x2": -2.0, "x3": 0.5, "intercept": -1.0}
    for name in ("x1", "x2", "x3"):
        assert -3.0 <= columns[name].min() and columns[name].max() <= 4.0
        assert columns[name].mean() == pytest.approx(0.5, abs=0.05)
    assert abs(np.corrcoef(columns["x1"], columns["x2"])[0, 1]) < 0.05  # drawn independently
    expected = columns["x1"] - 2.0 * columns["x2"] + 0.5 * columns["x3"] - 1.0
    assert np.allclose(columns["y"], expected, rtol=0, atol=1e-12)


def test_zero_noise_puts_every_point_on_the_line():
    columns, _ = synthesize(params(noise=0.0))
    assert np.allclose(columns["y"], 2.0 * columns["x"] - 1.0, rtol=0, atol=1e-12)


def test_null_m_and_c_are_drawn_from_the_seed_and_recorded():
    _, drawn = synthesize(params(m=None, c=None))
    m_true, c_true = drawn.coefficients[0], drawn.intercept
    assert DRAWN_RANGE[0] <= m_true <= DRAWN_RANGE[1] and DRAWN_RANGE[0] <= c_true <= DRAWN_RANGE[1]
    assert synthesize(params(m=None, c=None))[1] == drawn
    assert synthesize(params(m=None, c=None, seed=8))[1].coefficients[0] != m_true


def test_fixing_m_and_c_to_the_drawn_values_keeps_the_same_points():
    drawn, true_line = synthesize(params(m=None, c=None))
    fixed, _ = synthesize(params(m=true_line.coefficients[0], c=true_line.intercept))
    assert all(np.array_equal(drawn[name], fixed[name]) for name in drawn)
