"""How every picture reads: the rows a scatter shows (a seeded sample, streamed), one number format,
the epoch axis, grids of panels that stay under 3,000 pixels at any width, legends, and saving."""

import math
import os
import sys
import textwrap
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.ticker import Formatter, NullFormatter

from pipeline.dataset import rows_beyond_kept
from pipeline.split import Split
from pipeline.errors import INTERRUPTED, PipelineError, first_few
from pipeline.files import atomic_output
from pipeline.holdout import held_out, held_out_count
from pipeline.params import DataParams
from pipeline.parts import Part, Picker
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
    chosen = chosen_rows(n_rows, max_points, seed)
    if isinstance(rows, Part):  # the chosen rows alone, not a copy of every row of the part first
        return rows.rows_at(chosen)
    picker = Picker(chosen)
    for chunk in chunks(rows):
        picker.add_rows(chunk)
    return picker.rows()


def chosen_rows(n_rows: int, max_points: int, seed: int) -> np.ndarray:
    """The positions sample() shows of `n_rows` rows: every one, or a seeded choice of max_points, in order."""
    if n_rows <= max_points:
        return np.arange(n_rows)
    # n_rows is known up front, so choosing indices first draws as a seeded reservoir would, in O(max_points) memory.
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=max_points, replace=False))


def budgets(sizes: dict[str, int], max_points: int) -> dict[str, int]:
    """Each part's share of max_points, in proportion to its rows, but one row at the least."""
    n_rows = sum(sizes.values())
    return {name: max(1, max_points * size // n_rows) for name, size in sizes.items()}


class EarlySample:
    """points_of's rows, picked from each row group of a Parquet file as the check reads it (load_split's
    `seen`), where the table is too large to keep: Part.rows_at would read every group again for a few
    thousand rows (a third of visualize's time at 5·10^7 points). The plan assumes that every row the footer
    counts is split, none left out; points_of takes these rows only where the split has exactly the parts
    planned and every group was seen, and reads them again otherwise (rows left out by data.missing, unlabeled
    rows, terms). The same rows either way."""

    def __init__(self, n_rows: int, test_fraction: float, split_seed: int, degree: int, max_points: int,
                 seed: int):
        self.n_rows, self.test_fraction, self.split_seed, self.degree = n_rows, test_fraction, split_seed, degree
        n_test = held_out_count(n_rows, test_fraction)
        self.sizes = {"train": n_rows - n_test} | ({"test": n_test} if n_test else {})
        self.pickers = {name: Picker(chosen_rows(self.sizes[name], budget, seed))
                        for name, budget in budgets(self.sizes, max_points).items()}
        self.rows_seen = 0  # -1 once a group is not the next of the table planned for: never taken

    @classmethod
    def planned(cls, data: DataParams, max_points: int, seed: int) -> "EarlySample | None":
        """The plan for data.source, where a stage would not keep its rows in memory (else rows_at reads them
        from there): a Parquet file beyond KEPT_BYTES of decoded rows."""
        n_rows = rows_beyond_kept(Path(data.source), len(data.features) + 1)
        if not n_rows:
            return None
        return cls(n_rows, data.test_fraction, data.split_seed, data.degree, max_points, seed)

    def __call__(self, span: tuple[int, int], rows: Table) -> None:
        start, stop = span
        if start != self.rows_seen or stop > self.n_rows:
            self.rows_seen = -1
            return
        held = held_out(self.n_rows, self.test_fraction, self.split_seed, start, stop)
        for name, picker in self.pickers.items():
            picker.add(held if name == "test" else ~held, lambda: rows)
        self.rows_seen = stop

    def tables(self, split: Split) -> dict[str, Table] | None:
        """Each part's rows shown, or None where the split is not the one planned for."""
        sizes = {name: len(part) for name, part in parts_of(split).items()}
        if (self.rows_seen != self.n_rows or sizes != self.sizes or split.rows_dropped or split.rows_unlabeled
                or split.design is not None):
            return None
        return {name: Table(powers(picked.features, self.degree), picked.target)
                for name, picked in ((name, picker.rows()) for name, picker in self.pickers.items())}


def parts_of(split: Split) -> dict[str, Rows]:
    """The training rows, then the test rows if any, by name."""
    return {"train": split.train} | ({"test": split.test} if split.test is not None else {})


def points_of(split: Split, max_points: int, seed: int, early: EarlySample | None = None) -> list[Points]:
    """The training rows, then the test rows if any: at most `max_points` in all, shared in proportion
    (but one row of each at the least); the rows `early` picked as the table was checked, where it could."""
    tables = parts_of(split)
    picked = early.tables(split) if early is not None else None
    points = []
    for name, budget in budgets({name: len(table) for name, table in tables.items()}, max_points).items():
        table = tables[name]
        shown = picked[name] if picked is not None else sample(table, budget, seed)
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
    return f"Not shown: {len(hidden):,} {what}: {first_few(hidden, limit)}"


def save(path: Path, figure: Figure, dpi: int) -> None:
    """Write `figure` as a PNG at most MAX_PIXELS on a side (a lower dpi for a large figure)."""
    dpi = min(dpi, MAX_PIXELS / max(figure.get_size_inches()))
    with atomic_output(path) as temporary:
        # No "Software" text chunk: the bytes depend on the figure alone.
        figure.savefig(temporary, format="png", dpi=dpi, metadata={"Software": None})



def save_all(figures: dict[Path, Callable[[], Figure]], dpi: int, apart: Collection[Path] | None = None) -> None:
    """Draw and write every figure (`save`), each made by its function in the process that writes it. Where the
    system forks and has a second core, a child process makes and writes the figures `apart` (by default every
    other one) meanwhile: a picture's time is mostly matplotlib's Python, one core's work, and each figure's
    bytes are the same whichever process draws it."""
    items = list(figures.items())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    if not hasattr(os, "fork") or cores < 2 or len(items) < 2:
        for path, make in items:
            save(path, make(), dpi)
        return
    apart = set(list(figures)[0::2] if apart is None else apart)
    theirs = [(path, make) for path, make in items if path in apart]
    ours = [(path, make) for path, make in items if path not in apart]
    sys.stdout.flush(), sys.stderr.flush()  # nothing buffered may be written twice
    child = os.fork()
    if child == 0:
        status = 1
        try:
            for path, make in theirs:
                save(path, make(), dpi)
            status = 0
        except KeyboardInterrupt:
            status = INTERRUPTED  # the parent, interrupted too, says so
        except BaseException as error:  # told by the parent in its one line
            print(f"error: drawing {', '.join(str(path) for path, _ in theirs)}: {error!r}", file=sys.stderr)
        finally:
            os._exit(status)
    try:
        for path, make in ours:
            save(path, make(), dpi)
    finally:
        _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise PipelineError(f"the process drawing {', '.join(str(path) for path, _ in theirs)} exited {code}: "
                            "run the stage again")
