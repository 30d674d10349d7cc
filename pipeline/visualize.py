"""Stage visualize: draw the data, the loss, the learnt line and how m and c moved during training."""

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from pipeline.errors import run_stage
from pipeline.files import (
    HISTORY, METRICS, PLOT_DATA, PLOT_FIT, PLOT_LOSS, PLOT_PARAMETERS, POINTS, TRUTH, atomic_output,
    read_history, read_json, read_points,
)
from pipeline.params import VisualizeParams, load_params

LINE_KEYS = ("m_learnt", "c_learnt", "m_ols", "c_ols")


def sample(x: np.ndarray, y: np.ndarray, max_points: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """At most `max_points` of the points, a seeded random choice when there are more."""
    if len(x) <= max_points:
        return x, y
    chosen = np.sort(np.random.default_rng(seed).choice(len(x), size=max_points, replace=False))
    return x[chosen], y[chosen]


def _scatter(figure: Figure, x_shown: np.ndarray, y_shown: np.ndarray, n_points: int):
    axes = figure.add_subplot()
    label = f"data ({len(x_shown)} of {n_points} points)" if len(x_shown) < n_points else "data"
    axes.scatter(x_shown, y_shown, s=8, alpha=0.5, color="tab:gray", label=label)
    axes.set_xlabel("x")
    axes.set_ylabel("y")
    return axes


def _line(axes, x_range: np.ndarray, m: float, c: float, label: str, **style) -> None:
    sign = "−" if c < 0 else "+"
    axes.plot(x_range, m * x_range + c, label=f"{label}: y = {m:.4g}·x {sign} {abs(c):.4g}", **style)


def plot_data(x_shown, y_shown, n_points: int, x_range, truth: dict[str, float]) -> Figure:
    figure = Figure(layout="constrained")
    axes = _scatter(figure, x_shown, y_shown, n_points)
    _line(axes, x_range, truth["m_true"], truth["c_true"], "true line", color="tab:green")
    axes.set_title("Synthetic data and the true line")
    axes.legend()
    return figure


def plot_loss(history: dict[str, np.ndarray]) -> Figure:
    figure = Figure(layout="constrained")
    axes = figure.add_subplot()
    axes.plot(history["epoch"], history["loss"], color="tab:blue", label="MSE loss")
    if (history["loss"] > 0).all():  # a log scale shows the whole descent; it cannot show a zero loss
        axes.set_yscale("log")
    axes.set_title("Training loss per epoch")
    axes.set_xlabel("epoch")
    axes.set_ylabel("MSE loss")
    axes.legend()
    return figure


def plot_fit(x_shown, y_shown, n_points: int, x_range, truth: dict[str, float], lines: dict[str, float]) -> Figure:
    figure = Figure(layout="constrained")
    axes = _scatter(figure, x_shown, y_shown, n_points)
    _line(axes, x_range, truth["m_true"], truth["c_true"], "true", color="tab:green", linestyle="--")
    _line(axes, x_range, lines["m_ols"], lines["c_ols"], "least squares", color="tab:orange", linestyle=":")
    _line(axes, x_range, lines["m_learnt"], lines["c_learnt"], "learnt", color="tab:red")
    axes.set_title("Learnt line, true line and least squares")
    axes.legend()
    return figure


def plot_parameters(history: dict[str, np.ndarray], truth: dict[str, float]) -> Figure:
    figure = Figure(layout="constrained")
    m_axes, c_axes = figure.subplots(2, 1, sharex=True)
    for axes, name, color in ((m_axes, "m", "tab:purple"), (c_axes, "c", "tab:brown")):
        axes.plot(history["epoch"], history[name], color=color, label=f"{name} learnt")
        axes.axhline(truth[f"{name}_true"], color=color, linestyle="--", alpha=0.6, label=f"{name} true")
        axes.set_ylabel(name)
        axes.legend()
    m_axes.set_title("Slope m and intercept c per epoch")
    c_axes.set_xlabel("epoch")
    return figure


def main() -> None:
    params = load_params(VisualizeParams)
    x, y = read_points(POINTS)
    truth = read_json(TRUTH, ("m_true", "c_true"))
    history = read_history(HISTORY)
    lines = read_json(METRICS, LINE_KEYS)

    x_shown, y_shown = sample(x, y, params.max_points, params.seed)
    x_range = np.array([x.min(), x.max()])
    figures: dict[Path, Figure] = {
        PLOT_DATA: plot_data(x_shown, y_shown, len(x), x_range, truth),
        PLOT_LOSS: plot_loss(history),
        PLOT_FIT: plot_fit(x_shown, y_shown, len(x), x_range, truth, lines),
        PLOT_PARAMETERS: plot_parameters(history, truth),
    }
    for path, figure in figures.items():
        with atomic_output(path) as temporary:
            # No "Software" text chunk: the bytes depend on the figure alone.
            figure.savefig(temporary, format="png", dpi=params.dpi, metadata={"Software": None})


if __name__ == "__main__":
    run_stage(main)
