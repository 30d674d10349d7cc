"""Stage visualize: draw the data, the loss, the learnt model and how its coefficients moved in training;
the least-squares fit's residuals and intervals (pipeline.diagnostics); and the tables of dvc.yaml's
interactive coefficient charts.

One feature gets the tutorial's pictures (lines, or curves of a higher degree, over a scatter); several get
small multiples of the features that matter most and predicted against actual. Held-out rows are drawn apart
from training rows. No torch: the models are read from the metrics and models/ols.safetensors.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import LogLocator

from pipeline.diagnostics import intervals_of, plot_coefficients, plot_residuals, residuals_of
from pipeline.drawing import (
    LEARNT, LEAST_SQUARES, MAX_PANELS, ROWS, TRUE, EarlySample, Points, epoch_axis, largest, left_out, legend_below,
    number, panels, points_of, save_all, scatter, span, tidy, wrap,
)
from pipeline.errors import PipelineError, run_stage_process
from pipeline.files import (
    CHART_COEFFICIENTS, CHART_INTERCEPT, HISTORY, METRICS, MODEL, OLS, PLOT_COEFFICIENTS, PLOT_DATA, PLOT_FIT,
    PLOT_LOSS, PLOT_PARAMETERS, PLOT_RESIDUALS, atomic_output, numbers, read_history, read_json,
)
from pipeline.guard import prepare_outputs
from pipeline.linear import INTERCEPT, RESTORE, LinearModel, terms_of
from pipeline.least_squares import LeastSquares
from pipeline.params import DataParams, EvaluateParams, TrainParams, VisualizeParams, load_params
from pipeline.schema import resolve_features
from pipeline.split import load_split
from pipeline.rows import powers
from pipeline.terms import Design, level_name


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
             true_line: LinearModel | None, degree: int = 1, design: Design | None = None) -> Figure:
    """One feature: the learnt, least-squares and true lines (curves, of a degree above 1) over the scatter.
    One numeric feature and one factor: a least-squares line per level. Several: predicted against actual,
    with the line where they are equal."""
    figure = Figure(layout="constrained")
    axes = figure.add_subplot()
    by_level = lines_by_level(design)
    if by_level is not None:
        number_column, factor = by_level
        x = design.names.index(number_column)
        scatter(axes, points, [each.features[:, x] for each in points], [each.target for each in points])
        low, high = span(points, x)[:, 0]
        levels = design.levels[factor]
        for index, level in enumerate(levels):
            raw = np.zeros((2, len(design.raw)))
            raw[:, design.raw.index(number_column)] = [low, high]
            raw[:, design.raw.index(factor)] = index if design.kinds[factor] != "number" else level
            columns = design.encode(raw)[0]
            # A colour and a legend entry for each of the first levels; the others grey, counted in one entry.
            named = index < len(LEVEL_COLOURS) - (len(levels) > len(LEVEL_COLOURS))
            label = (f"least squares, {factor} = {level_name(level)}" if named else
                     f"… {len(levels) - index} more levels" if index == len(LEVEL_COLOURS) - 1 else None)
            axes.plot([low, high], ols.predict(columns), label=label, linewidth=2 if named else 1, zorder=2,
                      color=LEVEL_COLOURS[index] if named else "0.6")
        axes.set_title(wrap(f"Least squares: a line per level of {factor}", 70))
        axes.set_xlabel(wrap(number_column, 80))
        axes.set_ylabel(wrap(target, 50))
    elif len(learnt.features) == degree:  # one feature, and its powers
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


LEVEL_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
                 "tab:olive", "tab:cyan", "tab:gray")


def lines_by_level(design: Design | None) -> tuple[str, str] | None:
    """(the numeric column, the factor) of a model of one numeric column, as it is, and one factor (as
    `x + f`, `x*f` or `x:f`), which fit.png draws as a line per level; else None."""
    if design is None or len(design.raw) != 2 or len(design.levels) != 1 or design.degree != 1:
        return None
    (factor,) = design.levels
    number_column = next(column for column in design.raw if column != factor)
    plain = all(f.kind in ("number", "factor", "C") for term in design.terms for f in term)
    return (number_column, factor) if plain and number_column in design.names else None


def read_metrics(path: Path, metrics: dict, features: tuple[str, ...]
                 ) -> tuple[LinearModel, LinearModel, LinearModel | None, float]:
    """The learnt, least-squares and (for synthetic data) true models, and the least-squares training MSE, from
    `metrics` as read from `path` (which an error names)."""
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


def require_same_fit(fit: LeastSquares, ols: LinearModel) -> None:
    """models/ols.safetensors and the metrics' least squares are the one fit evaluate wrote."""
    if fit.model != ols:
        raise PipelineError(f"{OLS}: its least-squares model is not the one {METRICS} holds: expected the fit "
                            f"evaluate wrote beside it ({RESTORE})")


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


def main() -> None:
    data = resolve_features(load_params(DataParams)).data
    prepare_outputs([PLOT_DATA, PLOT_LOSS, PLOT_FIT, PLOT_PARAMETERS, PLOT_RESIDUALS, PLOT_COEFFICIENTS,
                     CHART_COEFFICIENTS, CHART_INTERCEPT], inputs=[Path(data.source)])
    train = load_params(TrainParams)
    level = load_params(EvaluateParams).level
    params = load_params(VisualizeParams)
    early = EarlySample.planned(data, params.max_points, params.seed)  # the scatters' rows, picked as the check reads
    split = load_split(data, train.fit_intercept, terms=terms_of(MODEL), seen=early)
    columns = split.columns
    metrics = read_json(METRICS)
    learnt, ols, true_line, mse_ols = read_metrics(METRICS, metrics, columns)
    fit = LeastSquares.load(OLS)
    require_same_fit(fit, ols)
    scales = spread(fit)
    losses = ("train_loss", "test_loss") if split.test is not None else ("train_loss",)
    history = read_history(HISTORY, ("epoch", *losses, *columns, INTERCEPT))
    points = points_of(split, params.max_points, params.seed, early)
    # Every input read and checked here, where an error is one line; each figure is then made by the process
    # that writes it (drawing.save_all).
    residuals = residuals_of(points, fit)
    intervals = intervals_of(METRICS, metrics, learnt, ols, scales)
    figures: dict[Path, Callable[[], Figure]] = {
        PLOT_DATA: lambda: plot_data(points, columns[:len(columns) // data.degree] if split.design is None else columns,
                                     data.target, true_line),
        PLOT_LOSS: lambda: plot_loss(history, mse_ols),
        PLOT_FIT: lambda: plot_fit(points, data.target, learnt, ols, true_line, data.degree, split.design),
        PLOT_PARAMETERS: lambda: plot_parameters(history, ols, true_line, train.optimizer, train.lr,
                                                 np.array(ols.coefficients) * scales),
        PLOT_RESIDUALS: lambda: plot_residuals(residuals, fit, data.target),
        PLOT_COEFFICIENTS: lambda: plot_coefficients(intervals, level),
    }
    # The four panels of the residuals (and scipy's import) take about as long as the tutorial's four figures
    # together: a second process draws the two diagnostics.
    save_all(figures, params.dpi, apart=[PLOT_RESIDUALS, PLOT_COEFFICIENTS])
    for path, table in charts(history, ols, scales).items():
        write_chart(path, table)


if __name__ == "__main__":
    run_stage_process(main)
