"""Stage visualize: draw the data, the loss, the learnt model and how its coefficients moved in training.

One feature gets the tutorial's pictures (lines over a scatter); several get small multiples and predicted
against actual. Held-out rows are drawn apart from training rows. No torch: the models are read from the metrics.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from pipeline.dataset import Split, load_split
from pipeline.errors import run_stage
from pipeline.files import (
    HISTORY, METRICS, PLOT_DATA, PLOT_FIT, PLOT_LOSS, PLOT_PARAMETERS, atomic_output, numbers, read_history,
    read_json,
)
from pipeline.linear import INTERCEPT, LinearModel
from pipeline.params import DataParams, TrainParams, VisualizeParams, load_params
from pipeline.rows import Rows, Table, chunks, concatenate

# Least squares thick and translucent underneath, the learnt model thin on top, the truth dashed above
# both: when all three coincide, as they should after training, each stays visible.
LEARNT = {"color": "tab:red", "linewidth": 1.5, "zorder": 3}
LEAST_SQUARES = {"color": "tab:orange", "linewidth": 6, "alpha": 0.45, "zorder": 2}
TRUE = {"color": "tab:green", "linestyle": (0, (4, 3)), "linewidth": 1.5, "zorder": 4}
ROWS = {"train": {"color": "tab:blue", "marker": "o"}, "test": {"color": "tab:purple", "marker": "^"}}


@dataclass(frozen=True)
class Points:
    """The rows one scatter draws: all `n_rows` of a table ("train" or "test"), or a seeded sample."""

    name: str
    features: np.ndarray
    target: np.ndarray
    n_rows: int

    @property
    def label(self) -> str:
        if len(self.target) < self.n_rows:
            return f"{self.name} ({len(self.target):,} of {self.n_rows:,} rows)"
        return f"{self.name} ({self.n_rows:,} rows)"


def sample(rows: Rows, max_points: int, seed: int) -> Table:
    """At most `max_points` rows, a seeded random choice (in their order) when there are more, read a chunk
    at a time: memory for a chunk and the rows chosen, whatever the number of rows."""
    n_rows = len(rows)
    if n_rows <= max_points:
        return concatenate(list(chunks(rows)))
    # n_rows is known up front, so choosing indices first draws as a seeded reservoir would, in O(max_points) memory.
    chosen = np.sort(np.random.default_rng(seed).choice(n_rows, size=max_points, replace=False))
    picked, start = [], 0
    for chunk in chunks(rows):
        low, high = np.searchsorted(chosen, [start, start + len(chunk)])
        picked.append(chunk.select(chosen[low:high] - start))
        start += len(chunk)
    return concatenate(picked)


def points_of(split: Split, max_points: int, seed: int) -> list[Points]:
    """The training rows, then the test rows if any: at most `max_points` in all, shared in proportion
    (but one row of each at the least)."""
    tables = {"train": split.train}
    if split.test is not None:
        tables["test"] = split.test
    n_rows = sum(len(table) for table in tables.values())
    points = []
    for name, table in tables.items():
        budget = max(1, max_points * len(table) // n_rows)
        shown = sample(table, budget, seed)
        points.append(Points(name, shown.features, shown.target, len(table)))
    return points


def marker_style(n_shown: int) -> dict[str, float]:
    """Marker area and opacity that keep 6 points visible and a million from becoming one blot."""
    size = min(40.0, max(1.0, 400 / math.sqrt(n_shown)))  # in points²: 40 up to 100 points, 1 from 160,000
    alpha = min(0.9, max(0.05, 30 / math.sqrt(n_shown)))
    return {"s": size, "alpha": alpha, "linewidths": 0}


def scatter(axes: Axes, points: list[Points], x: list[np.ndarray], y: list[np.ndarray]) -> None:
    """Each table's rows at (x, y), one array of each per table: training and test apart."""
    style = marker_style(sum(len(each.target) for each in points))
    for each, x_values, y_values in zip(points, x, y):
        axes.scatter(x_values, y_values, label=each.label, zorder=1, **ROWS[each.name], **style)


def legend_below(figure: Figure, axes: Axes) -> None:
    """The legend of `axes` under the plot, where it hides no point; its markers opaque however faint the points."""
    handles, labels = axes.get_legend_handles_labels()
    columns = 2 if max(len(label) for label in labels) <= 40 else 1
    legend = figure.legend(handles, labels, loc="outside lower center", ncols=columns, fontsize="small")
    for handle in legend.legend_handles:
        if isinstance(handle, PathCollection):
            handle.set_alpha(1)
            handle.set_sizes([20])


def span(points: list[Points], column: int) -> np.ndarray:
    """The smallest and largest value of feature `column` shown, as the two rows of a feature array."""
    values = [each.features[:, column] for each in points]
    return np.array([[min(v.min() for v in values)], [max(v.max() for v in values)]])


def panels(figure: Figure, n_panels: int, sharey: bool = False) -> list[Axes]:
    """A grid of `n_panels` axes, one row up to three, else about square; the figure grows with it."""
    columns = n_panels if n_panels <= 3 else math.ceil(math.sqrt(n_panels))
    rows = math.ceil(n_panels / columns)
    height = 4.8 if rows == 1 else 3.2 * rows + 0.4
    figure.set_size_inches(max(6.4, 3.6 * columns), height)
    grid = list(figure.subplots(rows, columns, sharey=sharey, squeeze=False).flat)
    for unused in grid[n_panels:]:
        unused.remove()
    for axes in grid[:n_panels]:
        axes.tick_params(labelleft=True)  # sharey hides inner tick labels; each panel reads alone
    return grid[:n_panels]


def equation(model: LinearModel, target: str) -> str:
    sign = "−" if model.intercept < 0 else "+"
    return f"{target} = {model.coefficients[0]:.4g}·{model.features[0]} {sign} {abs(model.intercept):.4g}"


def plot_data(points: list[Points], features: tuple[str, ...], target: str, true_line: LinearModel | None) -> Figure:
    """The target against each feature, one panel per feature sharing the y axis; the true line for one feature."""
    figure = Figure(layout="constrained")
    for column, (axes, name) in enumerate(zip(panels(figure, len(features), sharey=True), features)):
        scatter(axes, points, [each.features[:, column] for each in points], [each.target for each in points])
        if true_line is not None and len(features) == 1:
            x_range = span(points, 0)
            axes.plot(x_range[:, 0], true_line.predict(x_range), label=f"true: {equation(true_line, target)}", **TRUE)
        axes.set_title(f"{target} against {name}")
        axes.set_xlabel(name)
        axes.set_ylabel(target)
    if len(features) > 1:
        figure.suptitle(f"The data: {target} against each of {len(features)} features")
    legend_below(figure, axes)  # every panel draws the same tables: one legend serves them all
    return figure


def plot_loss(history: dict[str, np.ndarray], mse_ols: float) -> Figure:
    """Training (and test) loss per epoch, above the least-squares training MSE that training can reach."""
    figure = Figure(layout="constrained")
    axes = figure.add_subplot()
    axes.plot(history["epoch"], history["train_loss"], color=ROWS["train"]["color"], label="train loss")
    if "test_loss" in history:
        axes.plot(history["epoch"], history["test_loss"], color=ROWS["test"]["color"], linestyle="--",
                  label="test loss")
    axes.axhline(mse_ols, **{**LEAST_SQUARES, "linewidth": 3}, label=f"least-squares train MSE ({mse_ols:.4g})")
    losses = np.concatenate([history["train_loss"], history.get("test_loss", []), [mse_ols]])
    if (losses > 0).all():  # a log scale shows the whole descent; it cannot show a zero
        axes.set_yscale("log")
        if losses.max() / losses.min() < 1e4:
            # Over a few decades, ticks at 1, 2 and 5 × 10^k as plain numbers: 10^k alone leaves one or two.
            axes.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            axes.yaxis.set_minor_formatter(NullFormatter())
    axes.set_title("Loss (MSE) per epoch")
    axes.set_xlabel("epoch")
    axes.set_ylabel("MSE")
    axes.legend()
    return figure


def plot_fit(points: list[Points], target: str, learnt: LinearModel, ols: LinearModel,
             true_line: LinearModel | None) -> Figure:
    """One feature: the learnt, least-squares and true lines over the scatter. Several: predicted
    against actual, with the line where they are equal."""
    figure = Figure(layout="constrained")
    axes = figure.add_subplot()
    if len(learnt.features) == 1:
        scatter(axes, points, [each.features[:, 0] for each in points], [each.target for each in points])
        x_range = span(points, 0)
        lines = [("least squares", ols, LEAST_SQUARES), ("learnt", learnt, LEARNT), ("true", true_line, TRUE)]
        for name, model, style in lines:
            if model is not None:
                axes.plot(x_range[:, 0], model.predict(x_range), label=f"{name}: {equation(model, target)}", **style)
        axes.set_title("Learnt line, least squares and the true line" if true_line is not None
                       else "Learnt line and least squares")
        axes.set_xlabel(learnt.features[0])
        axes.set_ylabel(target)
    else:
        actual = [each.target for each in points]
        predicted = [learnt.predict(each.features) for each in points]
        scatter(axes, points, actual, predicted)
        low = min(values.min() for values in actual + predicted)
        high = max(values.max() for values in actual + predicted)
        axes.plot([low, high], [low, high], color="black", linewidth=1, zorder=3, label="predicted = actual")
        axes.set_title(f"Learnt model on {len(learnt.features)} features: predicted against actual {target}")
        axes.set_xlabel(f"actual {target}")
        axes.set_ylabel(f"predicted {target}")
    legend_below(figure, axes)
    return figure


def plot_parameters(history: dict[str, np.ndarray], ols: LinearModel, true_line: LinearModel | None,
                    optimizer: str, lr: float) -> Figure:
    """One panel per coefficient and one for the intercept: the learnt value per epoch, beside least
    squares and the true value."""
    figure = Figure(layout="constrained")
    names = (*ols.features, INTERCEPT)
    m_ols = ols.as_dict()
    m_true = true_line.as_dict() if true_line is not None else {}
    for axes, name in zip(panels(figure, len(names)), names):
        axes.plot(history["epoch"], history[name], label="learnt", **LEARNT)
        axes.axhline(m_ols[name], label=f"least squares ({m_ols[name]:.4g})", **LEAST_SQUARES)
        if name in m_true:
            axes.axhline(m_true[name], label=f"true ({m_true[name]:.4g})", **TRUE)
        axes.set_title(name if name == INTERCEPT else f"coefficient of {name}")
        axes.set_xlabel("epoch")
        axes.set_ylabel(name)
        axes.legend(fontsize="small")
    epochs = len(history["epoch"]) - 1
    figure.suptitle(f"Coefficients per epoch: {optimizer}, lr = {lr:g}, {epochs} epochs")
    return figure


def read_metrics(path: Path, features: tuple[str, ...]) -> tuple[LinearModel, LinearModel, LinearModel | None, float]:
    """The learnt, least-squares and (for synthetic data) true models, and the least-squares training MSE."""
    metrics = read_json(path)
    # Dotted keys, as `dvc metrics show` names them, so that a missing number is named in its one line.
    dotted = {}
    for section, values in metrics.items():
        if isinstance(values, dict):
            dotted.update({f"{section}.{key}": value for key, value in values.items()})

    def model(name: str) -> LinearModel:
        keys = [f"{name}.{key}" for key in (*features, INTERCEPT)]
        values = numbers(path, dotted, keys)
        return LinearModel(features, tuple(values[key] for key in keys[:-1]), values[keys[-1]])

    true_line = model("true") if "true" in metrics else None
    return model("learnt"), model("ols"), true_line, numbers(path, dotted, ["train.mse_ols"])["train.mse_ols"]


def main() -> None:
    data = load_params(DataParams)
    train = load_params(TrainParams)
    params = load_params(VisualizeParams)
    features = data.columns
    split = load_split(data, train.fit_intercept)
    learnt, ols, true_line, mse_ols = read_metrics(METRICS, features)
    losses = ("train_loss", "test_loss") if split.test is not None else ("train_loss",)
    history = read_history(HISTORY, ("epoch", *losses, *features, INTERCEPT))
    points = points_of(split, params.max_points, params.seed)
    figures: dict[Path, Figure] = {
        PLOT_DATA: plot_data(points, features, data.target, true_line),
        PLOT_LOSS: plot_loss(history, mse_ols),
        PLOT_FIT: plot_fit(points, data.target, learnt, ols, true_line),
        PLOT_PARAMETERS: plot_parameters(history, ols, true_line, train.optimizer, train.lr),
    }
    for path, figure in figures.items():
        with atomic_output(path) as temporary:
            # No "Software" text chunk: the bytes depend on the figure alone.
            figure.savefig(temporary, format="png", dpi=params.dpi, metadata={"Software": None})


if __name__ == "__main__":
    run_stage(main)
