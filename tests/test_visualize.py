"""visualize draws four labelled figures, and samples the scatter when there are many points."""

import numpy as np

from pipeline.visualize import plot_data, plot_fit, plot_loss, plot_parameters, sample

TRUTH = {"m_true": 2.0, "c_true": -1.0}
LINES = {"m_learnt": 1.99, "c_learnt": -0.98, "m_ols": 1.995, "c_ols": -0.99}
HISTORY = {"epoch": np.arange(4.0), "loss": np.array([9.0, 2.0, 0.5, 0.4]),
           "m": np.array([0.0, 1.5, 1.9, 1.99]), "c": np.array([0.3, -0.5, -0.9, -0.98])}


def test_a_scatter_of_more_than_max_points_shows_a_seeded_sample():
    x, y = np.arange(10_000.0), np.arange(10_000.0) * 2
    x_shown, y_shown = sample(x, y, 500, seed=3)
    assert len(x_shown) == 500 and len(np.unique(x_shown)) == 500
    assert np.array_equal(y_shown, x_shown * 2)  # points stay paired
    assert np.array_equal(x_shown, sample(x, y, 500, seed=3)[0])
    assert not np.array_equal(x_shown, sample(x, y, 500, seed=4)[0])
    assert sample(x, y, 10_000, seed=3)[0] is x


def test_every_figure_has_a_title_labelled_axes_and_a_legend():
    x = np.linspace(-1, 1, 30)
    x_range = np.array([-1.0, 1.0])
    figures = [
        plot_data(x, 2 * x - 1, 30, x_range, TRUTH),
        plot_loss(HISTORY),
        plot_fit(x, 2 * x - 1, 30, x_range, TRUTH, LINES),
        plot_parameters(HISTORY, TRUTH),
    ]
    for figure in figures:
        axes = figure.axes
        assert axes[0].get_title()
        assert axes[-1].get_xlabel() and all(each.get_ylabel() for each in axes)
        assert all(each.get_legend() is not None for each in axes)


def test_the_fit_figure_shows_the_learnt_true_and_least_squares_lines():
    x = np.linspace(-1, 1, 30)
    figure = plot_fit(x, 2 * x - 1, 30, np.array([-1.0, 1.0]), TRUTH, LINES)
    labels = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert any(label.startswith("learnt: y = 1.99·x − 0.98") for label in labels)
    assert any(label.startswith("true") for label in labels) and any(label.startswith("least squares") for label in labels)


def test_the_parameters_figure_marks_the_true_m_and_c():
    m_axes, c_axes = plot_parameters(HISTORY, TRUTH).axes
    assert [line.get_ydata()[0] for line in m_axes.get_lines()][-1] == 2.0
    assert [line.get_ydata()[0] for line in c_axes.get_lines()][-1] == -1.0


def test_a_scatter_of_sampled_points_says_how_many_it_shows():
    x = np.linspace(-1, 1, 30)
    figure = plot_data(x[:10], x[:10], 30, np.array([-1.0, 1.0]), TRUTH)
    labels = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert "data (10 of 30 points)" in labels
