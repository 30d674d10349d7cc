"""Stage visualize: draw the data, the loss, the learnt model and how its coefficients moved in training.

One feature gets the tutorial's pictures (lines over a scatter); several get small multiples and predicted
against actual. Held-out rows are drawn apart from training rows. No torch: the models are read from the metrics.
"""

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import Formatter, LogLocator, NullFormatter

from pipeline.dataset import Split, load_split
from pipeline.errors import run_stage
from pipeline.files import (
    CHART_COEFFICIENTS, CHART_INTERCEPT, HISTORY, METRICS, OLS, PLOT_COEFFICIENTS, PLOT_DATA, PLOT_FIT, PLOT_LOSS,
    PLOT_PARAMETERS, PLOT_RESIDUALS, atomic_output, numbers, read_history, read_json,
)
from pipeline.linear import INTERCEPT, LeastSquares, LinearModel
from pipeline.params import DataParams, EvaluateParams, TrainParams, VisualizeParams, load_params
from pipeline.rows import Rows, Table, chunks, concatenate, powers

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


def number(value: float, digits: int = 4) -> str:
    """`value` to `digits` significant digits, the one format of every label: positional with thousands
    separators ("11,578", "2.503", "0.0002026") from 1e-4 to 1e8, else "7.008×10⁸"; a true minus sign."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    magnitude = math.floor(math.log10(abs(value)))
    if not -4 <= magnitude < 8:
        return _scientific(value, digits)
    decimals = max(0, digits - 1 - magnitude)
    return _plain(f"{round(value, decimals):,.{decimals}f}")


def _plain(text: str) -> str:
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text.replace("-", "−")


def _scientific(value: float, digits: int) -> str:
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    return f"{_plain(mantissa)}×10{str(int(exponent)).translate(SUPERSCRIPTS)}"


SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


class Ticks(Formatter):
    """Tick labels in `number`'s format, each with the few decimals it needs ("0", "0.5", "1,000"), and
    more than four significant digits only where close ticks need them to differ (2.5005, 2.501). An axis
    that reaches beyond `number`'s positional range writes all its ticks as powers of ten."""

    def __call__(self, value: float, pos: int | None = None) -> str:
        return number(value)

    def format_ticks(self, values) -> list[str]:
        values = [float(value) for value in values]
        steps = np.diff(sorted(values))
        step = steps[steps > 0].min() if (steps > 0).any() else 1.0
        magnitudes = [math.floor(math.log10(abs(value))) for value in values if value != 0]
        if any(not -4 <= magnitude < 8 for magnitude in magnitudes):
            return [self._tick(value, step, scientific=True) for value in values]
        return [self._tick(value, step) for value in values]

    @staticmethod
    def _tick(value: float, step: float, scientific: bool = False) -> str:
        if value == 0:
            return "0"
        if scientific:
            return _scientific(value, 6)
        for decimals in range(0, 13):
            if abs(value - round(value, decimals)) <= 1e-6 * min(step, abs(value)):
                return _plain(f"{round(value, decimals):,.{decimals}f}")
        return number(value)


def tidy(axes: Axes) -> None:
    """One number format on both axes (minor ticks of a log axis unlabelled)."""
    for axis in (axes.xaxis, axes.yaxis):
        axis.set_major_formatter(Ticks())
        if axis.get_scale() != "linear":
            axis.set_minor_formatter(NullFormatter())


def wrap(text: str, width: int) -> str:
    """Lines of at most `width` characters, long column names broken too, so no title runs off its panel."""
    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False)) or text


def epoch_axis(axes: Axes, epochs: np.ndarray) -> None:
    """Epochs 0 to 1 linear, then logarithmic: the first epochs, where most of the movement is, get as much
    room as the hundreds after them."""
    axes.set_xscale("symlog", linthresh=1, linscale=0.5)
    axes.set_xlim(0, max(1.0, float(epochs[-1])))
    axes.set_xlabel("epoch (log scale)")


def legend_below(figure: Figure, axes: Axes) -> None:
    """The legend of `axes` under the plot, where it hides no point; its markers opaque however faint the points."""
    handles, labels = axes.get_legend_handles_labels()
    columns = 2 if max(len(label) for label in labels) <= 40 else 1
    labels = [wrap(label, 70) for label in labels]  # an equation of two 40-character names fits the page
    legend = figure.legend(handles, labels, loc="outside lower center", ncols=columns, fontsize="small")
    for handle in legend.legend_handles:
        if isinstance(handle, PathCollection):
            handle.set_alpha(1)
            handle.set_sizes([20])


def span(points: list[Points], column: int) -> np.ndarray:
    """The smallest and largest value of feature `column` shown, as the two rows of a feature array."""
    values = [each.features[:, column] for each in points]
    return np.array([[min(v.min() for v in values)], [max(v.max() for v in values)]])


# Panels of a grid: at most MAX_PANELS, so that a figure stays under 3,000 px at 100 dpi whatever the width
# of the table; wider tables show the columns that matter most and name how many are left out.
MAX_PANELS = 9
PANEL_WIDTH, PANEL_HEIGHT = 3.6, 3.2  # inches
MAX_PIXELS = 3000


def panels(figure: Figure, n_panels: int, sharey: bool = False) -> list[Axes]:
    """A grid of `n_panels` axes, one row up to three, else about square; the figure grows with it."""
    columns = n_panels if n_panels <= 3 else math.ceil(math.sqrt(n_panels))
    rows = math.ceil(n_panels / columns)
    height = 4.8 if rows == 1 else PANEL_HEIGHT * rows + 0.8
    figure.set_size_inches(max(6.4, PANEL_WIDTH * columns), height)
    grid = list(figure.subplots(rows, columns, sharey=sharey, squeeze=False).flat)
    for unused in grid[n_panels:]:
        unused.remove()
    for axes in grid[:n_panels]:
        axes.tick_params(labelleft=True)  # sharey hides inner tick labels; each panel reads alone
    return grid[:n_panels]


def largest(names: tuple[str, ...], sizes: np.ndarray, k: int) -> tuple[str, ...]:
    """The `k` names of the largest `sizes`, in their own order (ties by position: deterministic)."""
    if len(names) <= k:
        return names
    chosen = np.sort(np.argsort(-np.abs(sizes), kind="stable")[:k])
    return tuple(names[index] for index in chosen)


def left_out(shown: tuple[str, ...], names: tuple[str, ...], what: str, limit: int = 6) -> str:
    """"Not shown: 3 <what>: a, b, c" naming up to `limit` of the names left out, or "" when none is."""
    hidden = [name for name in names if name not in set(shown)]
    if not hidden:
        return ""
    named = ", ".join(hidden[:limit]) + (f" and {len(hidden) - limit:,} more" if len(hidden) > limit else "")
    return f"Not shown: {len(hidden):,} {what}: {named}"


def equation(model: LinearModel, target: str) -> str:
    sign = "−" if model.intercept < 0 else "+"
    return f"{target} = {number(model.coefficients[0])}·{model.features[0]} {sign} {number(abs(model.intercept))}"


def correlations(points: list[Points]) -> np.ndarray:
    """Each feature's correlation with the target over the rows shown (0 for a constant column)."""
    features = np.concatenate([each.features for each in points])
    target = np.concatenate([each.target for each in points])
    centred, target = features - features.mean(axis=0), target - target.mean()
    norms = np.sqrt((centred ** 2).sum(axis=0) * (target ** 2).sum())
    return np.divide(centred.T @ target, norms, out=np.zeros(features.shape[1]), where=norms > 0)


def plot_data(points: list[Points], features: tuple[str, ...], target: str, true_line: LinearModel | None) -> Figure:
    """The target against each feature, one panel per feature sharing the y axis; the true line for one
    feature. Of many features, the MAX_PANELS most correlated with the target, the rest named."""
    figure = Figure(layout="constrained")
    shown = largest(features, correlations(points)[:len(features)], MAX_PANELS)
    for axes, name in zip(panels(figure, len(shown), sharey=True), shown):
        column = features.index(name)
        scatter(axes, points, [each.features[:, column] for each in points], [each.target for each in points])
        if true_line is not None and len(features) == 1:
            x_range = span(points, 0)
            axes.plot(x_range[:, 0], true_line.predict(x_range), label=f"true: {equation(true_line, target)}", **TRUE)
        axes.set_title(wrap(f"{target} against {name}", 30), fontsize="medium")
        axes.set_xlabel(wrap(name, 30))
        axes.set_ylabel(wrap(target, 30))
        tidy(axes)
    if len(shown) < len(features):
        figure.suptitle(wrap(f"The data: {target} against the {len(shown)} of {len(features):,} features most "
                             f"correlated with it", 90) + "\n" + wrap(left_out(shown, features, "less correlated"), 110))
    elif len(features) > 1:
        figure.suptitle(wrap(f"The data: {target} against each of {len(features)} features", 90))
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
    axes.axhline(mse_ols, **{**LEAST_SQUARES, "linewidth": 3}, label=f"least-squares train MSE ({number(mse_ols)})")
    losses = np.concatenate([history["train_loss"], history.get("test_loss", []), [mse_ols]])
    epoch_axis(axes, history["epoch"])
    if (losses > 0).all():  # a log scale shows the whole descent; it cannot show a zero
        axes.set_yscale("log")
        if losses.max() / losses.min() < 1e4:
            # Over a few decades, ticks at 1, 2 and 5 × 10^k: 10^k alone leaves one or two.
            axes.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    tidy(axes)
    axes.set_title("Loss (MSE) per epoch")
    axes.set_ylabel("MSE" + (" (log scale)" if axes.get_yscale() == "log" else ""))
    axes.legend()
    return figure


def plot_fit(points: list[Points], target: str, learnt: LinearModel, ols: LinearModel,
             true_line: LinearModel | None, degree: int = 1) -> Figure:
    """One feature: the learnt, least-squares and true lines (curves, of a degree above 1) over the scatter.
    Several: predicted against actual, with the line where they are equal."""
    figure = Figure(layout="constrained")
    axes = figure.add_subplot()
    if len(learnt.features) == degree:  # one feature, and its powers
        scatter(axes, points, [each.features[:, 0] for each in points], [each.target for each in points])
        low, high = span(points, 0)[:, 0]
        # A line needs its two ends; a curve, enough points to look smooth.
        x_range = np.array([[low], [high]]) if degree == 1 else np.linspace(low, high, 400)[:, None]
        lines = [("least squares", ols, LEAST_SQUARES), ("learnt", learnt, LEARNT), ("true", true_line, TRUE)]
        for name, model, style in lines:
            if model is not None:
                label = (f"{name}: {equation(model, target)}" if degree == 1
                         else f"{name}: a polynomial of degree {degree} in {learnt.features[0]}")
                axes.plot(x_range[:, 0], model.predict(powers(x_range, degree)), label=label, **style)
        shape = "line" if degree == 1 else "curve"
        axes.set_title(f"Learnt {shape}, least squares and the true line" if true_line is not None
                       else f"Learnt {shape} and least squares")
        axes.set_xlabel(wrap(learnt.features[0], 80))
        axes.set_ylabel(wrap(target, 50))
    else:
        actual = [each.target for each in points]
        predicted = [learnt.predict(each.features) for each in points]
        scatter(axes, points, actual, predicted)
        low = min(values.min() for values in actual + predicted)
        high = max(values.max() for values in actual + predicted)
        axes.plot([low, high], [low, high], color="black", linewidth=1, zorder=3, label="predicted = actual")
        axes.set_title(wrap(f"Learnt model on {len(learnt.features):,} features: predicted against actual {target}",
                            70))
        axes.set_xlabel(wrap(f"actual {target}", 80))
        axes.set_ylabel(wrap(f"predicted {target}", 50))
    tidy(axes)
    legend_below(figure, axes)
    return figure


# The y axis of a trajectory is scaled to how it settles, unless its early values span more than
# CLIP_RATIO times as much: a first-epoch spike then runs off the panel, and the legend says so.
CLIP_RATIO = 5.0


def approach(values: np.ndarray, references: list[float]) -> tuple[float, float] | None:
    """y limits that show `values` settling near references[0] (least squares), or None to show them all.

    The approach starts at the first value within one "size" of the reference (the largest magnitude of the
    references and the last value); everything before it that lies outside is clipped, but only when the
    whole span is more than CLIP_RATIO times the approach's: a gradual rise is shown whole.
    """
    target = references[0]
    size = max(abs(value) for value in [*references, float(values[-1])])
    near = np.flatnonzero(np.abs(values - target) <= size)
    if len(near) == 0:
        return None
    settled = np.concatenate([values[near[0]:], references])
    everything = np.concatenate([values, references])
    low, high = float(settled.min()), float(settled.max())
    if high == low or np.ptp(everything) <= CLIP_RATIO * (high - low):
        return None
    margin = 0.08 * (high - low)
    return low - margin, high + margin


def off_scale(epochs: np.ndarray, values: np.ndarray, limits: tuple[float, float]) -> str:
    """The legend's note of what the limits clip: "epochs 0–12 off scale (up to 356,100)"."""
    outside = np.flatnonzero((values < limits[0]) | (values > limits[1]))
    first, last = int(epochs[outside[0]]), int(epochs[outside[-1]])
    extreme = values[outside[np.argmax(np.abs(values[outside] - np.mean(limits)))]]
    which = f"epoch {first}" if first == last else f"epochs {first}–{last}"
    return f"{which} off scale ({'up' if extreme > limits[1] else 'down'} to {number(extreme)})"


def plot_parameters(history: dict[str, np.ndarray], ols: LinearModel, true_line: LinearModel | None,
                    optimizer: str, lr: float, sizes: np.ndarray | None = None) -> Figure:
    """One panel per coefficient and one for the intercept: the learnt value per epoch, beside least
    squares and the true value. Of many coefficients, the MAX_PANELS - 1 largest `sizes` (standardised
    coefficients), the rest named."""
    figure = Figure(layout="constrained")
    sizes = np.ones(len(ols.features)) if sizes is None else sizes
    shown = largest(ols.features, sizes, MAX_PANELS - 1)
    names = (*shown, INTERCEPT)
    m_ols = ols.as_dict()
    m_true = true_line.as_dict() if true_line is not None else {}
    epochs = history["epoch"]
    for axes, name in zip(panels(figure, len(names)), names):
        values = history[name]
        axes.plot(epochs, values, label="learnt", **LEARNT)
        axes.axhline(m_ols[name], label=f"least squares ({number(m_ols[name])})", **LEAST_SQUARES)
        references = [m_ols[name], *([m_true[name]] if name in m_true else [])]
        values_line = f"least squares {number(m_ols[name])}"
        if name in m_true:
            axes.axhline(m_true[name], label=f"true ({number(m_true[name])})", **TRUE)
            values_line += f", true {number(m_true[name])}"
        what = name if name == INTERCEPT else f"coefficient of {name}"
        title = [wrap(what, 30), values_line]
        limits = approach(values, references)
        if limits is not None:
            axes.set_ylim(limits)
            title.append(off_scale(epochs, values, limits))
        axes.set_title("\n".join(title), fontsize="medium")
        epoch_axis(axes, epochs)
        axes.set_ylabel(wrap(what, 30))
        tidy(axes)
    # The same three lines in every panel: one legend below them all, each panel's numbers in its title.
    handles = [Line2D([], [], **LEARNT), Line2D([], [], **LEAST_SQUARES), *([Line2D([], [], **TRUE)] if m_true else [])]
    figure.legend(handles, ["learnt", "least squares", "true"][:len(handles)], loc="outside lower center",
                  ncols=len(handles), fontsize="small")
    n_epochs = len(epochs) - 1
    title = f"Coefficients per epoch: {optimizer}, lr = {number(lr)}, {n_epochs:,} epochs"
    if len(shown) < len(ols.features):
        title += (f"\nthe {len(shown)} largest of {len(ols.features):,} coefficients (standardised), and the intercept\n"
                  + wrap(left_out(shown, ols.features, "smaller"), 110))
    figure.suptitle(title)
    return figure


# --- Residual diagnostics and the coefficients' intervals (of the least-squares fit) -------------------


@dataclass(frozen=True)
class Residuals:
    """The least-squares fit's residuals of the rows one table shows, and what R's plot.lm draws of them."""

    name: str  # "train" or "test"
    label: str
    fitted: np.ndarray
    residuals: np.ndarray
    leverage: np.ndarray  # hat values: x0ᵀ(XᵀX)⁻¹x0, the intercept's 1/n included
    standardised: np.ndarray  # residual / (s·sqrt(1 − h)); a held-out row: / (s·sqrt(1 + h)), as a new observation


def residuals_of(points: list[Points], fit: LeastSquares) -> list[Residuals]:
    """Each table's residuals from the least-squares fit. A training row's residual has variance
    s²(1 − h); a held-out row's, a new observation's, s²(1 + h)."""
    found = []
    s = fit.residual_sd
    for each in points:
        fitted = fit.model.predict(each.features)
        residuals = each.target - fitted
        leverage = fit.leverage(each.features)
        variance = 1 - leverage if each.name == "train" else 1 + leverage
        scale = s * np.sqrt(np.clip(variance, 0, None))
        standardised = np.divide(residuals, scale, out=np.zeros_like(residuals), where=scale > 0)
        found.append(Residuals(each.name, each.label, fitted, residuals, leverage, standardised))
    return found


def plotting_positions(n: int) -> np.ndarray:
    """R's ppoints(n): (i − a) / (n + 1 − 2a), a = 3/8 up to 10 points, else 1/2."""
    a = 3 / 8 if n <= 10 else 0.5
    return (np.arange(1, n + 1) - a) / (n + 1 - 2 * a)


def cooks_contour(leverage: np.ndarray, distance: float, p: int) -> np.ndarray:
    """The standardised residual at which a training row of this leverage has Cook's distance `distance`:
    D = r² h / (p (1 − h)), so r = sqrt(D p (1 − h) / h)."""
    return np.sqrt(distance * p * (1 - leverage) / leverage)


COOK = {0.5: {"color": "tab:red", "linestyle": (0, (5, 3)), "linewidth": 1},
        1.0: {"color": "tab:red", "linestyle": (0, (1, 2)), "linewidth": 1.5}}


def plot_residuals(points: list[Points], fit: LeastSquares, target: str) -> Figure:
    """The four panels of R's plot(lm) for the least-squares fit: residuals against fitted values, a normal
    Q–Q plot of the standardised residuals, scale–location, and residuals against leverage with Cook's
    distance 0.5 and 1. Training and held-out rows apart."""
    from scipy.special import ndtri  # the normal quantile: only this figure needs scipy

    figure = Figure(layout="constrained")
    by_fitted, qq, scale_location, by_leverage = panels(figure, 4)
    shown = residuals_of(points, fit)
    style = marker_style(sum(len(each.fitted) for each in shown))
    for each in shown:
        look = {**ROWS[each.name], **style, "label": each.label, "zorder": 2}
        by_fitted.scatter(each.fitted, each.residuals, **look)
        order = np.argsort(each.standardised, kind="stable")
        qq.scatter(ndtri(plotting_positions(len(order))), each.standardised[order], **look)
        scale_location.scatter(each.fitted, np.sqrt(np.abs(each.standardised)), **look)
        by_leverage.scatter(each.leverage, each.standardised, **look)
    by_fitted.axhline(0, color="black", linewidth=1, zorder=1)
    by_fitted.set(title="Residuals against fitted", xlabel=wrap(f"fitted {target}", 40),
                  ylabel=wrap(f"residual ({target} − fitted)", 40))
    reach = max(3.0, *(np.abs(each.standardised).max(initial=0) for each in shown))
    qq.plot([-reach, reach], [-reach, reach], color="black", linewidth=1, zorder=1, label="normal")
    qq.set(title="Normal Q–Q", xlabel="normal quantile", ylabel="standardised residual")
    scale_location.set(title="Scale–location", xlabel=wrap(f"fitted {target}", 40),
                       ylabel="√|standardised residual|")
    by_leverage.axhline(0, color="black", linewidth=1, zorder=1)
    top = max(each.leverage.max(initial=0) for each in shown)
    low, high = by_leverage.get_ylim()
    grid = np.linspace(top / 200, top * 1.05, 200)
    low, high = min(low, -1), max(high, 1)
    for distance in (0.5, 1.0):
        contour = cooks_contour(grid, distance, fit.p)
        # Where no row has much leverage the contours lie far outside the residuals, as in R: say so.
        beyond = "" if (contour < max(high, -low)).any() else " (beyond this panel)"
        for sign in (1, -1):
            by_leverage.plot(grid, sign * contour, **COOK[distance],
                             label=f"Cook's distance {distance:g}{beyond}" if sign > 0 else None)
    by_leverage.set_ylim(low, high)
    by_leverage.set_xlim(0, top * 1.05)
    by_leverage.set(title="Residuals against leverage", xlabel="leverage (hat value)", ylabel="standardised residual")
    for axes in (by_fitted, qq, scale_location, by_leverage):
        tidy(axes)
    note = " (an exact fit: no residual variance to standardise by)" if fit.residual_sd == 0 else ""
    figure.suptitle(wrap(f"Residuals of the least-squares fit, as R's plot(lm){note}", 64))
    legend_below(figure, by_leverage)  # the same tables in every panel, and the contours
    return figure


# Coefficients a figure of intervals shows at most: those of the largest |t|.
MAX_INTERVALS = 20


@dataclass(frozen=True)
class Interval:
    """A coefficient's least-squares estimate, its confidence interval and the learnt value, standardised."""

    name: str
    ols: float
    low: float
    high: float
    learnt: float
    t: float | None


def intervals_of(metrics: Path, learnt: LinearModel, ols: LinearModel, scales: np.ndarray) -> list[Interval]:
    """Every coefficient's interval from metrics.json (`inference.<name>.ci_low` …), times its scale."""
    inference = read_json(metrics).get("inference")
    found = []
    for name, scale, m_learnt, m_ols in zip(ols.features, scales, learnt.coefficients, ols.coefficients):
        entry = inference.get(name) if isinstance(inference, dict) else None
        dotted = {f"inference.{name}.{key}": value for key, value in (entry or {}).items()}
        bounds = numbers(metrics, dotted, [f"inference.{name}.ci_low", f"inference.{name}.ci_high"])
        t = dotted.get(f"inference.{name}.t")
        found.append(Interval(name, m_ols * scale, bounds[f"inference.{name}.ci_low"] * scale,
                              bounds[f"inference.{name}.ci_high"] * scale, m_learnt * scale,
                              float(t) if isinstance(t, (int, float)) else None))
    return found


def plot_coefficients(intervals: list[Interval], level: float) -> Figure:
    """Each coefficient's least-squares estimate and confidence interval at `level`, standardised so that
    columns of any scale share the axis, the learnt value beside it; of many, those of the largest |t|."""
    shown = intervals
    if len(intervals) > MAX_INTERVALS:
        ranked = sorted(range(len(intervals)), key=lambda index: -abs(intervals[index].t or 0.0))
        shown = [intervals[index] for index in sorted(ranked[:MAX_INTERVALS])]
    figure = Figure(layout="constrained", figsize=(7.2, 2.8 + 0.32 * len(shown)))
    axes = figure.add_subplot()
    rows = np.arange(len(shown))[::-1]  # the first column at the top
    ols = np.array([each.ols for each in shown])
    axes.hlines(rows, [each.low for each in shown], [each.high for each in shown], color=LEAST_SQUARES["color"],
                linewidth=5, alpha=0.7, zorder=2, label=f"least squares, {number(100 * level)}% confidence interval")
    axes.scatter(ols, rows, color=LEAST_SQUARES["color"], edgecolors="black", linewidths=0.5, s=40, zorder=3,
                 label="least squares")
    axes.scatter([each.learnt for each in shown], rows - 0.25, color=LEARNT["color"], marker="v", s=30, zorder=4,
                 label="learnt")
    axes.axvline(0, color="black", linewidth=1, zorder=1)
    axes.set_yticks(rows, [wrap(each.name, 40).splitlines()[0] + ("…" if len(each.name) > 40 else "")
                           for each in shown])
    axes.set_ylim(-0.8, len(shown) - 0.4)
    axes.set_xlabel("coefficient × sd(feature) / sd(target)")
    axes.xaxis.set_major_formatter(Ticks())  # the y axis names the coefficients
    title = f"Coefficients, standardised: least squares with its {number(100 * level)}% confidence interval, and the learnt value"
    if len(shown) < len(intervals):
        title += (f"\nthe {len(shown)} of {len(intervals):,} with the largest |t|; "
                  f"{len(intervals) - len(shown):,} left out")
    figure.suptitle(wrap(title, 70), fontsize="medium")  # centred on the page: long names widen the axis
    legend_below(figure, axes)
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


def spread(fit: LeastSquares) -> np.ndarray:
    """sd(feature) / sd(target) over the training rows, by column: a coefficient times it is standardised,
    a size that columns of any scale share. (The norms of the centred columns: their n − 1 cancels.)"""
    return fit.x_scale / (fit.y_scale if fit.y_scale > 0 else 1.0)


def charts(history: dict[str, np.ndarray], ols: LinearModel, scales: np.ndarray) -> dict[Path, pa.Table]:
    """The tables of dvc.yaml's interactive charts. Coefficients: one row per coefficient and epoch, the
    learnt and least-squares values times `scales` (sd(x) / sd(y)), for the MAX_PANELS - 1 largest, as in
    parameters.png. Intercept: the same columns, in the target's units."""
    shown = largest(ols.features, np.array(ols.coefficients) * scales, MAX_PANELS - 1)
    epochs = history["epoch"].astype(np.int64)
    columns = [ols.features.index(name) for name in shown]
    coefficients = pa.table({
        "epoch": np.tile(epochs, len(shown)),
        "coefficient": np.repeat(np.array(shown, dtype=object), len(epochs)),
        "standardised": np.concatenate([history[ols.features[c]] * scales[c] for c in columns]),
        "least_squares": np.repeat([ols.coefficients[c] * scales[c] for c in columns], len(epochs)),
    })
    intercept = pa.table({"epoch": epochs, "coefficient": np.full(len(epochs), INTERCEPT, dtype=object),
                          "intercept": history[INTERCEPT], "least_squares": np.full(len(epochs), ols.intercept)})
    return {CHART_COEFFICIENTS: coefficients, CHART_INTERCEPT: intercept}


def write_chart(path: Path, table: pa.Table) -> None:
    with atomic_output(path) as temporary:
        pyarrow.csv.write_csv(table, temporary, pyarrow.csv.WriteOptions(quoting_header="none"))


def save(path: Path, figure: Figure, dpi: int) -> None:
    """Write `figure` as a PNG at most MAX_PIXELS on a side (a lower dpi for a large figure)."""
    dpi = min(dpi, MAX_PIXELS / max(figure.get_size_inches()))
    with atomic_output(path) as temporary:
        # No "Software" text chunk: the bytes depend on the figure alone.
        figure.savefig(temporary, format="png", dpi=dpi, metadata={"Software": None})


def main() -> None:
    data = load_params(DataParams)
    train = load_params(TrainParams)
    level = load_params(EvaluateParams).level
    params = load_params(VisualizeParams)
    columns = data.columns
    split = load_split(data, train.fit_intercept)
    learnt, ols, true_line, mse_ols = read_metrics(METRICS, columns)
    fit = LeastSquares.load(OLS)
    scales = spread(fit)
    losses = ("train_loss", "test_loss") if split.test is not None else ("train_loss",)
    history = read_history(HISTORY, ("epoch", *losses, *columns, INTERCEPT))
    points = points_of(split, params.max_points, params.seed)
    figures: dict[Path, Figure] = {
        PLOT_DATA: plot_data(points, tuple(data.features), data.target, true_line),
        PLOT_LOSS: plot_loss(history, mse_ols),
        PLOT_FIT: plot_fit(points, data.target, learnt, ols, true_line, data.degree),
        PLOT_PARAMETERS: plot_parameters(history, ols, true_line, train.optimizer, train.lr,
                                         np.array(ols.coefficients) * scales),
        PLOT_RESIDUALS: plot_residuals(points, fit, data.target),
        PLOT_COEFFICIENTS: plot_coefficients(intervals_of(METRICS, learnt, ols, scales), level),
    }
    for path, figure in figures.items():
        save(path, figure, params.dpi)
    for path, table in charts(history, ols, scales).items():
        write_chart(path, table)


if __name__ == "__main__":
    run_stage(main)
