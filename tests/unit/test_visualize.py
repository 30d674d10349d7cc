"""visualize draws labelled figures for one feature or several, training and test rows apart, the truth
only when there is one, and least squares as the reference training should reach."""

import re
import statistics
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection

from pipeline import visualize
from pipeline.dataset import Table
from pipeline.split import Split
from pipeline.diagnostics import (
    Interval, cooks_contour, intervals_of, plot_coefficients, plot_residuals, residuals_of,
)
from pipeline.drawing import MAX_PIXELS, marker_style, number, points_of, sample, save
from pipeline.errors import PipelineError
from pipeline.files import CHART_COEFFICIENTS, CHART_INTERCEPT
from pipeline.linear import LinearModel
from pipeline.factoring import fit_least_squares
from pipeline.visualize import plot_data, plot_fit, plot_loss, plot_parameters, read_metrics



def split_of(features: np.ndarray, target: np.ndarray, n_test: int) -> Split:
    """The first rows for training, the last `n_test` held out."""
    n_train = len(target) - n_test
    test = Table(features[n_train:], target[n_train:]) if n_test else None
    return Split(Path("points.csv"), Table(features[:n_train], target[:n_train]), test)


def tutorial(n_points: int = 100, n_test: int = 20) -> Split:
    x = np.random.default_rng(0).uniform(-5, 5, (n_points, 1))
    return split_of(x, 2.5 * x[:, 0] - 1 + np.random.default_rng(1).normal(0, 1, n_points), n_test)


def history(names: tuple[str, ...], test: bool = True, train_loss=(9.0, 2.0, 0.5, 0.4)) -> dict[str, np.ndarray]:
    """Four rows: the initial weights, then three epochs."""
    rows = {"epoch": np.arange(4), "train_loss": np.array(train_loss, dtype=float)}
    if test:
        rows["test_loss"] = rows["train_loss"] * 1.1
    for index, name in enumerate((*names, "intercept")):
        rows[name] = np.array([0.0, 1.0, 1.9, 1.99]) * (index + 1)
    return rows


def model(features: tuple[str, ...], *values: float) -> LinearModel:
    return LinearModel(features, tuple(values[:-1]), values[-1])


TRUE_1 = model(("x",), 2.5, -1.0)
OLS_1 = model(("x",), 2.52, -1.1)
LEARNT_1 = model(("x",), 2.49, -0.98)


def four_figures(split: Split, features: tuple[str, ...], target: str, true_line: LinearModel | None,
                 learnt: LinearModel, ols: LinearModel, max_points: int = 2000) -> dict:
    points = points_of(split, max_points, seed=0)
    return {
        "data": plot_data(points, features, target, true_line),
        "loss": plot_loss(history(features, test=split.test is not None), mse_ols=0.3),
        "fit": plot_fit(points, target, learnt, ols, true_line),
        "parameters": plot_parameters(history(features, test=split.test is not None), ols, true_line, "sgd", 0.05),
    }


def legend_texts(figure) -> list[str]:
    legends = [*figure.legends, *(axes.get_legend() for axes in figure.axes if axes.get_legend() is not None)]
    return [text.get_text() for legend in legends for text in legend.get_texts()]


def scatters(axes) -> dict[str, PathCollection]:
    """The scatters of an axes by the first word of their label: "train", "test"."""
    return {each.get_label().split()[0]: each for each in axes.collections if isinstance(each, PathCollection)}


def user_case():
    area = np.linspace(40, 200, 50)[:, None]
    split = split_of(area, 3000 * area[:, 0] + 25000, n_test=0)
    return four_figures(split, ("floor_area_m2",), "price_eur", None,
                        model(("floor_area_m2",), 2990.0, 26000.0), model(("floor_area_m2",), 3000.0, 25000.0))


NAMES_3 = ("x1", "x2", "x3")
TRUE_3 = model(NAMES_3, 1.5, -0.3, 2.0, 4.0)
LEARNT_3 = model(NAMES_3, 1.49, -0.31, 2.01, 3.98)


def three_features() -> Split:
    features = np.random.default_rng(0).normal(0, 1, (60, 3))
    return split_of(features, TRUE_3.predict(features), n_test=12)


def three_features_case():
    return four_figures(three_features(), NAMES_3, "y", TRUE_3, LEARNT_3, TRUE_3)


CASES = {
    "one feature, truth and a test split": lambda: four_figures(tutorial(), ("x",), "y", TRUE_1, LEARNT_1, OLS_1),
    "a user's table: no truth, no test split": user_case,
    "three features": three_features_case,
}


def test_a_scatter_of_more_than_max_points_shows_a_seeded_sample_of_rows():
    features = np.arange(20_000.0).reshape(10_000, 2)
    table = Table(features, features.sum(axis=1))
    shown = sample(table, 500, seed=3)
    assert shown.features.shape == (500, 2) and len(np.unique(shown.target)) == 500
    assert np.array_equal(shown.target, shown.features.sum(axis=1))  # rows stay whole
    assert np.array_equal(shown.target, sample(table, 500, seed=3).target)
    assert not np.array_equal(shown.target, sample(table, 500, seed=4).target)
    assert sample(table, 10_000, seed=3) is table


def test_training_and_test_rows_share_max_points_in_proportion_and_say_how_many_are_shown():
    train, test = points_of(tutorial(n_points=10_000, n_test=2_000), max_points=1_000, seed=0)
    assert (len(train.target), len(test.target)) == (800, 200)
    assert (train.label, test.label) == ("train (800 of 8,000 rows)", "test (200 of 2,000 rows)")
    train, test = points_of(tutorial(), max_points=1_000, seed=0)
    assert (train.label, test.label) == ("train (80 rows)", "test (20 rows)")
    assert [each.name for each in points_of(tutorial(n_test=0), 1_000, seed=0)] == ["train"]


@pytest.mark.parametrize("case", CASES)
def test_every_panel_has_a_title_axis_labels_and_a_legend(case):
    for name, figure in CASES[case]().items():
        for axes in figure.axes:
            assert axes.get_title() and axes.get_xlabel() and axes.get_ylabel(), (name, axes)
        # A scatter's legend sits below the plot, for the whole figure; line panels each have their own.
        assert figure.legends or all(axes.get_legend() is not None for axes in figure.axes), name
        assert legend_texts(figure), name


def test_axes_are_labelled_with_the_column_names():
    figures = user_case()
    for name in ("data", "fit"):
        axes = figures[name].axes[0]
        assert (axes.get_xlabel(), axes.get_ylabel()) == ("floor_area_m2", "price_eur")
    # A coefficient's axis reads as the coefficient, not as the feature.
    assert [axes.get_ylabel() for axes in figures["parameters"].axes] == ["coefficient of floor_area_m2", "intercept"]
    several = three_features_case()
    assert [axes.get_xlabel() for axes in several["data"].axes] == ["x1", "x2", "x3"]
    assert (several["fit"].axes[0].get_xlabel(), several["fit"].axes[0].get_ylabel()) == ("actual y", "predicted y")


def test_nothing_is_labelled_true_without_a_truth():
    for name, figure in user_case().items():
        labels = legend_texts(figure) + [line.get_label() for axes in figure.axes for line in axes.get_lines()]
        assert not any("true" in label for label in labels), (name, labels)
        assert "true" not in figure.axes[0].get_title(), name
    with_truth = CASES["one feature, truth and a test split"]()
    for name in ("data", "fit", "parameters"):  # the same check finds the truth where there is one
        assert any(label.startswith("true") for label in legend_texts(with_truth[name])), name


def test_test_rows_are_drawn_apart_from_training_rows():
    split = tutorial()
    figures = four_figures(split, ("x",), "y", TRUE_1, LEARNT_1, OLS_1)
    for name in ("data", "fit"):
        shown = scatters(figures[name].axes[0])
        train, test = shown["train"], shown["test"]
        assert (train.get_label(), test.get_label()) == ("train (80 rows)", "test (20 rows)")
        assert np.array_equal(test.get_offsets(), np.column_stack([split.test.features[:, 0], split.test.target]))
        assert tuple(train.get_facecolor()[0]) != tuple(test.get_facecolor()[0])
        assert not np.array_equal(train.get_paths()[0].vertices, test.get_paths()[0].vertices)  # another marker
    loss_labels = [line.get_label() for line in figures["loss"].axes[0].get_lines()]
    assert loss_labels[:2] == ["train loss", "test loss"]
    alone = four_figures(tutorial(n_test=0), ("x",), "y", TRUE_1, LEARNT_1, OLS_1)
    assert list(scatters(alone["data"].axes[0])) == ["train"]
    assert "test loss" not in legend_texts(alone["loss"])


def test_several_features_get_one_panel_each_and_predicted_against_actual():
    figures = three_features_case()
    panels = figures["data"].axes
    assert [axes.get_title() for axes in panels] == ["y against x1", "y against x2", "y against x3"]
    assert all(panels[0].get_shared_y_axes().joined(panels[0], other) for other in panels[1:])
    fit = figures["fit"].axes[0]
    test = three_features().test
    expected = np.column_stack([test.target, LEARNT_3.predict(test.features)])  # actual across, predicted up
    assert np.array_equal(scatters(fit)["test"].get_offsets(), expected)
    identity = [line for line in fit.get_lines() if line.get_label() == "predicted = actual"]
    assert len(identity) == 1 and np.array_equal(identity[0].get_xdata(), identity[0].get_ydata())
    assert [axes.get_title().splitlines()[0] for axes in figures["parameters"].axes] == [
        "coefficient of x1", "coefficient of x2", "coefficient of x3", "intercept"]


def test_the_parameters_show_least_squares_and_the_truth_as_references_and_name_the_run():
    ols = LEARNT_3
    figure = plot_parameters(history(NAMES_3), ols, TRUE_3, "adam", 0.01)
    assert len(figure.axes) == 4
    for axes, name in zip(figure.axes, (*NAMES_3, "intercept")):
        references = {line.get_label().split(" (")[0]: line.get_ydata() for line in axes.get_lines()}
        assert list(references["least squares"]) == [ols.as_dict()[name]] * 2
        assert list(references["true"]) == [TRUE_3.as_dict()[name]] * 2
        assert np.array_equal(references["learnt"], history(NAMES_3)[name])
    assert figure.get_suptitle() == "Coefficients per epoch: adam, lr = 0.01, 3 epochs"
    without_truth = plot_parameters(history(NAMES_3), ols, None, "adam", 0.01)
    assert all(len(axes.get_lines()) == 2 for axes in without_truth.axes)


def test_the_learnt_least_squares_and_true_lines_stay_apart_when_they_coincide():
    same = model(("x",), 2.5, -1.0)
    lines = {line.get_label().split(":")[0]: line for line in plot_fit(
        points_of(tutorial(), 2000, 0), "y", same, same, same).axes[0].get_lines()}
    learnt, ols, true_line = lines["learnt"], lines["least squares"], lines["true"]
    assert learnt.get_label() == "learnt: y = 2.5·x − 1"
    assert ols.get_linewidth() > 2 * learnt.get_linewidth() and ols.get_alpha() < 1  # a band underneath
    assert ols.get_zorder() < learnt.get_zorder() < true_line.get_zorder()
    assert learnt.get_linestyle() == "-" and true_line.get_linestyle() == "--"


def test_the_loss_has_the_least_squares_floor_and_a_log_scale_only_when_every_loss_is_positive():
    axes = plot_loss(history(("x",)), mse_ols=0.3).axes[0]
    floor = [line for line in axes.get_lines() if line.get_label().startswith("least-squares train MSE")]
    assert len(floor) == 1 and list(floor[0].get_ydata()) == [0.3, 0.3]
    assert axes.get_yscale() == "log"
    assert plot_loss(history(("x",), train_loss=(9.0, 2.0, 0.5, 0.0)), mse_ols=0.0).axes[0].get_yscale() == "linear"


def test_points_stay_visible_at_six_and_do_not_merge_into_a_blot_at_a_million():
    few, many = marker_style(6), marker_style(1_000_000)
    assert few["s"] >= 30 and few["alpha"] >= 0.8
    assert many["s"] <= 1 and many["alpha"] <= 0.05
    crowd = points_of(tutorial(n_points=20_000, n_test=4_000), max_points=20_000, seed=0)
    figure = plot_data(crowd, ("x",), "y", TRUE_1)
    assert scatters(figure.axes[0])["train"].get_alpha() < 0.5
    # The legend's markers stay opaque however faint the points are.
    assert all(handle.get_alpha() == 1 for handle in figure.legends[0].legend_handles
               if isinstance(handle, PathCollection))


def test_the_models_are_read_from_the_metrics_and_a_missing_number_is_named():
    path = Path("metrics/metrics.json")  # only named: visualize reads the file once, and hands its values on
    metrics = {"learnt": {"x": 2.49, "intercept": -0.98}, "ols": {"x": 2.52, "intercept": -1.1},
               "gap": 0.01, "converged": True, "train": {"mse": 1.0, "mse_ols": 0.98, "r2": 0.9, "n": 80}}
    assert read_metrics(path, metrics, ("x",)) == (LEARNT_1, OLS_1, None, 0.98)
    assert read_metrics(path, {**metrics, "true": {"x": 2.5, "intercept": -1.0}}, ("x",))[2] == TRUE_1
    with pytest.raises(PipelineError, match=r"^metrics/metrics.json: ols.intercept missing: expected a finite number"):
        read_metrics(path, {**metrics, "ols": {"x": 2.52}}, ("x",))


def test_the_epoch_axis_is_logarithmic_after_the_first_epoch_so_the_early_movement_reads():
    figures = CASES["one feature, truth and a test split"]()
    for name in ("loss", "parameters"):
        for axes in figures[name].axes:
            assert axes.get_xscale() == "symlog", name
            assert axes.xaxis.get_transform().linthresh == 1  # epochs 0 to 1 linear, then one decade per 10×
            assert axes.get_xlabel() == "epoch (log scale)"


def houses_history(epochs: int = 1000) -> dict[str, np.ndarray]:
    """The houses' shapes: the intercept starts at 356,094, undershoots to about 9,700 and settles at 11,578;
    the coefficient of area_m2 rises gradually from 0 to 2,634."""
    epoch = np.arange(epochs + 1, dtype=float)
    intercept = 11_578 + 344_516 * np.exp(-epoch / 4) - 4_000 * (epoch / 30) * np.exp(1 - epoch / 30)
    area = 2_634 * (1 - np.exp(-epoch / 20))
    return {"epoch": epoch, "train_loss": 1 + np.exp(-epoch / 10), "area_m2": area, "intercept": intercept}


def test_a_first_epoch_spike_runs_off_the_panel_which_says_so_and_a_gradual_rise_is_shown_whole():
    history = houses_history()
    ols = model(("area_m2",), 2_634.0, 11_578.0)
    area, intercept = plot_parameters(history, ols, None, "sgd", 0.1).axes
    low, high = intercept.get_ylim()
    undershoot = history["intercept"].min()
    assert low < undershoot < 11_578 < high < 40_000  # the approach fills the panel, not the spike
    assert intercept.get_title().splitlines() == [
        "intercept", "least squares 11,578", "epochs 0–12 off scale (up to 356,094)"]
    # The epochs named off scale are exactly those whose value lies above the panel.
    assert np.flatnonzero(history["intercept"] > high).tolist() == list(range(13))
    assert area.get_ylim()[0] <= 0 and area.get_ylim()[1] >= 2_634  # the whole rise
    assert area.get_title().splitlines() == ["coefficient of area_m2", "least squares 2,634"]


@pytest.mark.parametrize("value, text", [
    (11_578.126, "11,578"), (2.5034, "2.503"), (-1.0730538, "−1.073"), (356_094.3, "356,094"),
    (0.000202657, "0.0002027"), (7.008e8, "7.008×10⁸"), (2.0e-7, "2×10⁻⁷"), (0.5, "0.5"), (0.0, "0"),
    (99_999.99, "100,000"), (9.99996, "10"),
])
def test_every_label_writes_numbers_to_four_significant_digits_one_way(value, text):
    assert number(value) == text


def drawn(figure):
    """The figure laid out and drawn (constrained layout runs at draw time), and its renderer."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return canvas.get_renderer()


def tick_labels(figure) -> list[str]:
    drawn(figure)
    return [label.get_text() for axes in figure.axes for axis in (axes.xaxis, axes.yaxis)
            for label in axis.get_ticklabels() if label.get_text()]


@pytest.mark.parametrize("case", CASES)
def test_tick_labels_share_the_format_of_the_labels(case):
    positional = re.compile(r"^−?\d{1,3}(,\d{3})*(\.\d+)?$")
    powers = re.compile(r"^−?\d(\.\d+)?×10[⁻]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+$")
    houses = plot_loss({"epoch": np.arange(4), "train_loss": np.array([2.1e10, 5e9, 9e8, 7.1e8])}, 7.008e8)
    for name, figure in {**CASES[case](), "houses loss": houses}.items():
        labels = tick_labels(figure)
        assert labels, name
        assert all(positional.match(label) or powers.match(label) for label in labels), (name, labels)
        assert not any("e+" in label or "e-" in label for label in labels)


LONG = ("floor_area_in_square_metres_measured_202", "number_of_rooms_including_kitchen_and_ba",
        "age_of_the_building_in_years_since_const")
LONG_TARGET = "sale_price_in_euro_including_all_the_fee"


def texts_of(figure):
    """Every visible text of the figure: titles, axis labels, tick labels, legends, the figure's title."""
    found = [figure._suptitle] if figure._suptitle is not None else []
    for legend in figure.legends + [axes.get_legend() for axes in figure.axes if axes.get_legend()]:
        found += [legend]
    for axes in figure.axes:
        found += [axes.title, axes.xaxis.label, axes.yaxis.label]
    return [text for text in found if text.get_visible() and (not hasattr(text, "get_text") or text.get_text())]


def long_names_case():
    assert {len(name) for name in (*LONG, LONG_TARGET)} == {40}
    features = np.random.default_rng(0).uniform(0, 100, (60, 3))
    truth = model(LONG, 3000.0, 10_000.0, -500.0, 20_000.0)
    split = split_of(features, truth.predict(features), n_test=12)
    figures = four_figures(split, LONG, LONG_TARGET, None, truth, truth)
    fit = fit_least_squares(split.train, LONG, True, Path("t.csv"))
    figures["residuals"] = plot_residuals(residuals_of(points_of(split, 2000, 0), fit), fit, LONG_TARGET)
    figures["coefficients"] = plot_coefficients(
        [Interval(name, 1.0, 0.5, 1.5, 1.1, 4.0) for name in LONG], level=0.95)
    one = split_of(features[:, :1], 3000 * features[:, 0], n_test=12)
    figures["fit, one feature"] = four_figures(one, LONG[:1], LONG_TARGET, None, model(LONG[:1], 3000.0, 0.0),
                                               model(LONG[:1], 3000.0, 0.0))["fit"]
    return figures


def test_no_title_label_or_legend_is_cut_off_or_overlaps_another_for_40_character_column_names():
    for name, figure in long_names_case().items():
        renderer = drawn(figure)
        page = figure.bbox
        texts = texts_of(figure)
        for text in texts:
            box = text.get_window_extent(renderer)
            assert page.x0 - 0.5 <= box.x0 and box.x1 <= page.x1 + 0.5, (name, getattr(text, "get_text", str)())
            assert page.y0 - 0.5 <= box.y0 and box.y1 <= page.y1 + 0.5, (name, getattr(text, "get_text", str)())
        titles = [axes.title.get_window_extent(renderer) for axes in figure.axes]
        for index, first in enumerate(titles):
            assert not any(first.overlaps(other) for other in titles[index + 1:]), name


def wide(n_features: int) -> tuple[Split, tuple[str, ...], LinearModel]:
    rng = np.random.default_rng(n_features)
    names = tuple(f"x{index}" for index in range(n_features))
    features = rng.normal(0, 1, (300, n_features)) * rng.uniform(0.1, 100, n_features)
    ols = LinearModel(names, tuple(rng.normal(0, 1, n_features) / features.std(axis=0)), 3.0)
    return split_of(features, ols.predict(features) + rng.normal(0, 1, 300), n_test=60), names, ols


def standardised(ols: LinearModel, split: Split) -> np.ndarray:
    """Each coefficient × sd(feature) / sd(target) over the training rows."""
    return np.array(ols.coefficients) * split.train.features.std(axis=0) / split.train.target.std()


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


@pytest.mark.parametrize("n_features", [1, 3, 20, 200, 500])
def test_every_picture_stays_within_3000_pixels_and_names_what_it_leaves_out(tmp_path, n_features):
    split, names, ols = wide(n_features)
    points = points_of(split, 2000, seed=0)
    epochs = np.arange(11.0)
    history = {"epoch": epochs, "train_loss": 2 + np.exp(-epochs), "test_loss": 2.1 + np.exp(-epochs),
               **{name: value * (1 - np.exp(-epochs)) for name, value in ols.as_dict().items()}}
    figures = {
        "data": plot_data(points, names, "y", None),
        "loss": plot_loss(history, 2.0),
        "fit": plot_fit(points, "y", ols, ols, None),
        "parameters": plot_parameters(history, ols, None, "sgd", 0.1, standardised(ols, split)),
    }
    for name, figure in figures.items():
        assert len(figure.axes) <= 9, name
        for dpi in (100, 1000):
            save(tmp_path / f"{name}.png", figure, dpi)
            assert max(png_size(tmp_path / f"{name}.png")) <= MAX_PIXELS, (name, dpi)
    data_title, parameters_title = figures["data"].get_suptitle(), figures["parameters"].get_suptitle()
    if n_features > 9:
        assert f"the 9 of {n_features} features most correlated with it" in data_title
        assert f"Not shown: {n_features - 9} less correlated: " in data_title
        assert f"the 8 largest of {n_features} coefficients (standardised)" in parameters_title
        assert f"Not shown: {n_features - 8} smaller: " in parameters_title


def test_of_many_features_the_panels_show_those_most_correlated_and_the_largest_standardised_coefficients():
    features = np.random.default_rng(0).normal(0, 1, (400, 12)) * np.arange(1, 13)  # scales 1 … 12
    names = tuple(f"x{index}" for index in range(12))
    # In data units x0 has the largest coefficient; standardised (× its sd) the smallest.
    ols = LinearModel(names, tuple(1 / np.sqrt(np.arange(1, 13))), 0.0)
    target = features @ np.array(ols.coefficients)
    points = points_of(split_of(features, target, n_test=0), 2000, seed=0)
    by_size = [abs(c) * s for c, s in zip(ols.coefficients, features.std(axis=0))]
    expected = [names[i] for i in sorted(np.argsort(by_size)[-8:])]
    epochs = np.arange(3.0)
    history = {"epoch": epochs, "train_loss": np.ones(3), **{n: np.full(3, v) for n, v in ols.as_dict().items()}}
    figure = plot_parameters(history, ols, None, "sgd", 0.1, standardised(ols, split_of(features, target, 0)))
    assert [axes.get_title().splitlines()[0] for axes in figure.axes] == [
        *(f"coefficient of {name}" for name in expected), "intercept"]
    data = plot_data(points, names, "y", None)
    correlation = [abs(np.corrcoef(features[:, i], target)[0, 1]) for i in range(12)]
    assert [axes.get_xlabel() for axes in data.axes] == [names[i] for i in sorted(np.argsort(correlation)[-9:])]


def test_the_interactive_charts_hold_the_largest_coefficients_standardised_beside_least_squares_and_the_intercept():
    names = tuple(f"x{index}" for index in range(10))
    ols = LinearModel(names, tuple(float(index + 1) for index in range(10)), -4.0)
    scales = np.array([10.0, 1, 1, 1, 1, 1, 1, 1, 1, 0.01])  # x0 standardised 10, x9 0.1: x1 drops out, x0 stays
    epochs = np.arange(3)
    history = {"epoch": epochs, **{name: np.array([0.0, 0.5, 1.0]) * value for name, value in ols.as_dict().items()}}
    tables = visualize.charts(history, ols, scales)
    coefficients = tables[CHART_COEFFICIENTS].to_pydict()
    shown = ["x0", "x2", "x3", "x4", "x5", "x6", "x7", "x8"]  # the 8 largest of 1·10, 2, 3, …, 9, 10·0.01
    assert coefficients["coefficient"] == [name for name in shown for _ in epochs]
    assert coefficients["epoch"] == [0, 1, 2] * 8
    assert coefficients["standardised"][:6] == [0.0, 5.0, 10.0, 0.0, 1.5, 3.0]  # x0: 1 × 10; x2: 3 × 1
    assert coefficients["least_squares"][:6] == [10.0, 10.0, 10.0, 3.0, 3.0, 3.0]
    intercept = tables[CHART_INTERCEPT].to_pydict()
    assert intercept == {"epoch": [0, 1, 2], "coefficient": ["intercept"] * 3, "intercept": [0.0, -2.0, -4.0],
                         "least_squares": [-4.0] * 3}


def diagnosed(n_test: int = 8):
    """A 3-feature table, its least-squares fit on the training rows, and the rows shown."""
    rng = np.random.default_rng(4)
    features = rng.normal(0, 1, (48, 3)) * [1.0, 10.0, 0.1]
    target = features @ [2.0, -0.3, 5.0] + 1 + rng.normal(0, 0.5, 48)
    split = split_of(features, target, n_test)
    fit = fit_least_squares(split.train, NAMES_3, True, Path("t.csv"))
    return split, fit, points_of(split, 2000, seed=0)


def test_residual_diagnostics_standardise_by_the_hat_values_of_the_training_design():
    split, fit, points = diagnosed()
    train, test = residuals_of(points, fit)
    # The hat matrix and s² computed the textbook way, with the normal equations (fine for 40 rows).
    design = np.column_stack([np.ones(40), split.train.features])
    hat = design @ np.linalg.inv(design.T @ design) @ design.T
    residuals = split.train.target - hat @ split.train.target
    s = np.sqrt(residuals @ residuals / (40 - 4))
    assert train.leverage == pytest.approx(np.diag(hat), rel=1e-9)
    assert train.residuals == pytest.approx(residuals, abs=1e-9)
    assert train.standardised == pytest.approx(residuals / (s * np.sqrt(1 - np.diag(hat))), rel=1e-9)
    # A held-out row is a new observation: its residual's variance is s²(1 + h).
    new = np.column_stack([np.ones(8), split.test.features])
    h_new = np.einsum("ij,jk,ik->i", new, np.linalg.inv(design.T @ design), new)
    assert test.leverage == pytest.approx(h_new, rel=1e-9)
    assert test.standardised == pytest.approx(test.residuals / (s * np.sqrt(1 + h_new)), rel=1e-9)


def test_cooks_distance_contours_lie_where_d_is_half_and_one():
    leverage = np.array([0.05, 0.2, 0.5])
    for distance in (0.5, 1.0):
        r = cooks_contour(leverage, distance, p=4)
        assert r ** 2 * leverage / (4 * (1 - leverage)) == pytest.approx(distance)  # Cook's D, as R defines it


def test_the_residual_figure_has_r_s_four_panels_with_training_and_test_rows_apart():
    split, fit, points = diagnosed()
    figure = plot_residuals(residuals_of(points, fit), fit, "y")
    titles = [axes.get_title() for axes in figure.axes]
    assert titles == ["Residuals against fitted", "Normal Q–Q", "Scale–location", "Residuals against leverage"]
    for axes in figure.axes:
        shown = scatters(axes)
        assert (shown["train"].get_label(), shown["test"].get_label()) == ("train (40 rows)", "test (8 rows)")
        assert len(shown["train"].get_offsets()) == 40 and len(shown["test"].get_offsets()) == 8
    # Q–Q: the sorted standardised residuals against normal quantiles at R's ppoints, (i − 1/2) / n.
    train_qq = scatters(figure.axes[1])["train"].get_offsets()
    normal = [statistics.NormalDist().inv_cdf((i - 0.5) / 40) for i in range(1, 41)]
    assert np.asarray(train_qq[:, 0]) == pytest.approx(normal, rel=1e-12)
    assert list(train_qq[:, 1]) == sorted(residuals_of(points, fit)[0].standardised)
    # Scale–location: √|standardised residual| against fitted.
    location = scatters(figure.axes[2])["train"].get_offsets()
    assert np.asarray(location[:, 1]) == pytest.approx(np.sqrt(np.abs(residuals_of(points, fit)[0].standardised)))
    labels = [line.get_label() for line in figure.axes[3].get_lines()]
    assert sum(label.startswith("Cook's distance 0.5") for label in labels) == 1
    assert sum(label.startswith("Cook's distance 1") for label in labels) == 1
    assert not any("test" in label for label in legend_texts(plot_residuals(residuals_of(points_of(
        split_of(split.train.features, split.train.target, 0), 2000, 0), fit), fit, "y")))


def intervals(n: int) -> list[Interval]:
    """Coefficient k: estimate k + 1, interval ± 1, learnt 0.1 short of it, t = (k + 1) / 0.5 … so the
    largest |t| are the last."""
    return [Interval(f"c{k}", k + 1.0, k, k + 2.0, k + 0.9, (k + 1) / 0.5) for k in range(n)]


def top_down(axes) -> list[str]:
    """The y tick labels from the top of the panel down."""
    ticks = sorted(zip(axes.get_yticks(), (label.get_text() for label in axes.get_yticklabels())), reverse=True)
    return [label for _, label in ticks]


def test_the_coefficients_figure_shows_each_interval_with_least_squares_and_the_learnt_value_beside():
    figure = plot_coefficients(intervals(3), level=0.95)
    axes = figure.axes[0]
    assert top_down(axes) == ["c0", "c1", "c2"]  # the first at the top
    (bars,) = [each for each in axes.collections if each.get_label().startswith("least squares, 95%")]
    segments = sorted((segment[0][0], segment[1][0]) for segment in bars.get_segments())
    assert segments == [(0.0, 2.0), (1.0, 3.0), (2.0, 4.0)]
    points = {each.get_label(): each.get_offsets() for each in axes.collections if isinstance(each, PathCollection)}
    assert sorted(points["least squares"][:, 0]) == [1.0, 2.0, 3.0]
    assert sorted(points["learnt"][:, 0]) == pytest.approx([0.9, 1.9, 2.9])
    # Beside, not on top: the learnt marker sits just below its coefficient's row.
    assert all(0 < a - b < 0.5 for a, b in zip(sorted(points["least squares"][:, 1]), sorted(points["learnt"][:, 1])))
    assert axes.get_xlabel() == "coefficient × sd(feature) / sd(target)"


def test_of_many_coefficients_the_figure_shows_the_largest_t_and_says_how_many_it_left_out(tmp_path):
    figure = plot_coefficients(intervals(500), level=0.9)
    assert top_down(figure.axes[0]) == [f"c{k}" for k in range(480, 500)]  # in the columns' order
    assert "the 20 of 500 with the largest |t|; 480 left out" in figure.get_suptitle().replace("\n", " ")
    assert "90% confidence interval" in figure.get_suptitle().replace("\n", " ")
    save(tmp_path / "coefficients.png", figure, 1000)
    assert max(png_size(tmp_path / "coefficients.png")) <= MAX_PIXELS


def test_the_intervals_are_read_from_the_metrics_and_standardised():
    path = Path("metrics/metrics.json")  # only named, as above
    inference = {"x1": {"se": 0.5, "t": 4.0, "p": 0.001, "ci_low": 1.0, "ci_high": 3.0},
                 "x2": {"se": 0.0, "t": None, "p": None, "ci_low": -1.0, "ci_high": -1.0}}
    learnt, ols = model(("x1", "x2"), 2.1, -1.0, 0.0), model(("x1", "x2"), 2.0, -1.0, 0.0)
    assert intervals_of(path, {"inference": inference}, learnt, ols, np.array([10.0, 0.5])) == [
        Interval("x1", 20.0, 10.0, 30.0, 21.0, 4.0), Interval("x2", -0.5, -0.5, -0.5, -0.5, None)]
    with pytest.raises(PipelineError,
                       match=r"^metrics/metrics.json: inference.x2.ci_low missing: expected a finite number"):
        intervals_of(path, {"inference": {"x1": inference["x1"]}}, learnt, ols, np.array([10.0, 0.5]))
