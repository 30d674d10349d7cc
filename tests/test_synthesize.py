"""synthesize draws y = m·x + c + noise from its seed alone."""

import numpy as np
import pytest

from pipeline.params import SynthesizeParams
from pipeline.synthesize import DRAWN_RANGE, synthesize


def params(**changes) -> SynthesizeParams:
    values = dict(m=2.0, c=-1.0, noise=0.5, n_points=500, x_min=-3.0, x_max=4.0, seed=7) | changes
    return SynthesizeParams(**values)


def test_the_same_seed_gives_the_same_points_and_another_seed_other_points():
    first, again, other = synthesize(params()), synthesize(params()), synthesize(params(seed=8))
    assert np.array_equal(first.x, again.x) and np.array_equal(first.y, again.y)
    assert not np.array_equal(first.x, other.x)


def test_x_is_in_range_and_y_scatters_around_the_true_line_with_the_given_noise():
    dataset = synthesize(params(n_points=100_000))
    assert dataset.x.dtype == dataset.y.dtype == np.float64
    assert dataset.x.min() >= -3.0 and dataset.x.max() <= 4.0
    residuals = dataset.y - (2.0 * dataset.x - 1.0)
    assert abs(residuals.mean()) < 0.01
    assert residuals.std() == pytest.approx(0.5, rel=0.02)


def test_zero_noise_puts_every_point_on_the_line():
    dataset = synthesize(params(noise=0.0))
    assert np.allclose(dataset.y, 2.0 * dataset.x - 1.0, rtol=0, atol=1e-12)


def test_null_m_and_c_are_drawn_from_the_seed_and_recorded():
    drawn = synthesize(params(m=None, c=None))
    assert DRAWN_RANGE[0] <= drawn.m_true <= DRAWN_RANGE[1] and DRAWN_RANGE[0] <= drawn.c_true <= DRAWN_RANGE[1]
    assert (drawn.m_true, drawn.c_true) == (synthesize(params(m=None, c=None)).m_true, synthesize(params(m=None, c=None)).c_true)
    assert drawn.m_true != synthesize(params(m=None, c=None, seed=8)).m_true


def test_fixing_m_and_c_to_the_drawn_values_keeps_the_same_points():
    drawn = synthesize(params(m=None, c=None))
    fixed = synthesize(params(m=drawn.m_true, c=drawn.c_true))
    assert np.array_equal(drawn.x, fixed.x) and np.array_equal(drawn.y, fixed.y)
