"""The least-squares fit's pictures: its residuals as R's plot(lm) draws them, and each coefficient's
confidence interval on a standardised axis, the learnt value beside it."""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from pipeline.drawing import (
    LEARNT, LEAST_SQUARES, ROWS, Points, Ticks, legend_below, marker_style, number, panels, tidy, wrap,
)
from pipeline.errors import PipelineError
from pipeline.files import OLS, numbers
from pipeline.linear import RESTORE, LinearModel
from pipeline.least_squares import LeastSquares


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
        with np.errstate(over="ignore", invalid="ignore"):  # beyond float64: refused below, in one line
            fitted = fit.model.predict(each.features)
            residuals = each.target - fitted
            leverage = fit.leverage(each.features)
        if not (np.isfinite(residuals).all() and np.isfinite(leverage).all()):
            raise PipelineError(f"{OLS}: its fit gives residuals or leverages beyond float64 for the {each.name} "
                                f"rows: expected finite numbers (if the file is damaged, {RESTORE})")
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


def plot_residuals(shown: list[Residuals], fit: LeastSquares, target: str) -> Figure:
    """The four panels of R's plot(lm) for the least-squares fit (`shown`: residuals_of its rows): residuals
    against fitted values, a normal Q–Q plot of the standardised residuals, scale–location, and residuals
    against leverage with Cook's distance 0.5 and 1. Training and held-out rows apart."""
    from scipy.special import ndtri  # the normal quantile: only this figure needs scipy

    figure = Figure(layout="constrained")
    by_fitted, qq, scale_location, by_leverage = panels(figure, 4)
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
    qq.plot([-reach, reach], [-reach, reach], color="black", linewidth=1, zorder=1)
    qq.set(title="Normal Q–Q", xlabel="normal quantile", ylabel="standardised residual")
    scale_location.set(title="Scale–location", xlabel=wrap(f"fitted {target}", 40),
                       ylabel="√|standardised residual|")
    by_leverage.axhline(0, color="black", linewidth=1, zorder=1)
    top = max(1e-9, *(each.leverage.max(initial=0) for each in shown))
    # A training row's leverage is below 1 (D grows without bound there); a test row's may be far above.
    stop = min(top * 1.05, 0.999)
    grid = np.linspace(stop / 200, stop, 200)
    low, high = by_leverage.get_ylim()
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


def intervals_of(path: Path, metrics: dict, learnt: LinearModel, ols: LinearModel, scales: np.ndarray
                 ) -> list[Interval]:
    """Every coefficient's interval from `metrics`, as read from `path` (`inference.<name>.ci_low` …), times its
    scale."""
    inference = metrics.get("inference")
    found = []
    for name, scale, m_learnt, m_ols in zip(ols.features, scales, learnt.coefficients, ols.coefficients):
        entry = inference.get(name) if isinstance(inference, dict) else None
        dotted = {f"inference.{name}.{key}": value for key, value in (entry or {}).items()}
        bounds = numbers(path, dotted, [f"inference.{name}.ci_low", f"inference.{name}.ci_high"])
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
    # A factor's levels together, a thin line between such groups (columns of plain numbers are groups of one).
    groups = [re.sub(r"\[[^\]]*\]", "[]", each.name) for each in shown]
    order = sorted(range(len(shown)), key=lambda index: groups.index(groups[index]))
    shown, groups = [shown[index] for index in order], [groups[index] for index in order]
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
    for index in range(1, len(shown)):
        if groups[index] != groups[index - 1] and (groups.count(groups[index]) > 1 or groups.count(groups[index - 1]) > 1):
            axes.axhline(rows[index] + 0.5, color="0.8", linewidth=0.8, zorder=0)
    axes.set_yticks(rows, [wrap(each.name, 40).splitlines()[0] + ("…" if len(each.name) > 40 else "")
                           for each in shown])
    axes.set_ylim(-0.8, len(shown) - 0.4)
    axes.set_xlabel("coefficient × sd(feature) / sd(target)")
    axes.xaxis.set_major_formatter(Ticks())  # the y axis names the coefficients
    title = [f"Coefficients, standardised: least squares with its {number(100 * level)}% confidence interval, "
             "and the learnt value"]
    if len(shown) < len(intervals):
        title.append(f"the {len(shown)} of {len(intervals):,} with the largest |t|; "
                     f"{len(intervals) - len(shown):,} left out")
    # Over the page, not the axes: long names widen the axis and push a centred title off the page.
    figure.suptitle("\n".join(wrap(line, 70) for line in title), fontsize="medium")
    legend_below(figure, axes)
    return figure

