"""The pages `dvc plots show` and `dvc plots diff` write draw every chart offline: opened in headless Chromium
with no network, each chart holds drawn lines and the console stays silent."""

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest
import vl_convert
from ruamel.yaml import YAML

from tools.plots_page import VEGA_LITE, page_path, write_page
from workspace import ROOT, dvc, git

# Every host name resolves to nothing, so a page that needs the network fails here even on a machine that
# has one. --virtual-time-budget lets the page's scripts run before --dump-dom prints the DOM; with
# --enable-logging=stderr Chromium prints each console message (log, warning or error alike) as a CONSOLE line.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
)
CHARTS = ("loss", "test_loss", "coefficients", "intercept")  # the ids of dvc.yaml's interactive plots
# DVC's linear template filters its hover points to none until the mouse moves, and Vega warns of that empty
# layer's extent: the one console message a page that draws may print.
EMPTY_HOVER_LAYER = re.compile(r'"WARN Infinite extent for field "[^"]+": \[Infinity, -Infinity\]"')


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.skip("needs Debian's chromium on PATH (`apt-get install chromium`; .ci/run installs it)")
    return found


@dataclass
class Chart:
    """What one vega-embed chart drew: its texts by role, and how many lines and canvases."""

    title: list[str] = field(default_factory=list)
    axis_titles: list[str] = field(default_factory=list)
    legend: list[str] = field(default_factory=list)
    lines: int = 0  # <path> elements with a shape, in a line mark
    canvases: int = 0


class ChartReader(HTMLParser):
    """Reads the charts out of a page's DOM: each <div class="vega-embed"> by its id."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
    TEXTS = {"role-title-text": "title", "role-axis-title": "axis_titles", "role-legend-label": "legend"}

    def __init__(self):
        super().__init__()
        self.charts: dict[str, Chart] = {}
        self.open: list[tuple[str, set[str]]] = []  # the open elements: tag and classes
        self.chart: Chart | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        classes = set((attributes.get("class") or "").split())
        if tag == "div" and "vega-embed" in classes:
            self.chart = self.charts.setdefault(attributes["id"], Chart())
        elif self.chart and tag == "path" and attributes.get("d") and self.inside("mark-line"):
            self.chart.lines += 1
        elif self.chart and tag == "canvas":
            self.chart.canvases += 1
        if tag not in self.VOID:
            self.open.append((tag, classes))

    def handle_endtag(self, tag):
        while self.open and self.open.pop()[0] != tag:
            pass

    def handle_data(self, data):
        if self.chart and self.open and self.open[-1][0] == "text" and data.strip():
            for role, texts in self.TEXTS.items():
                if self.inside(role):
                    getattr(self.chart, texts).append(data.strip())

    def inside(self, css_class: str) -> bool:
        return any(css_class in classes for _, classes in self.open)


@dataclass(frozen=True)
class Opened:
    charts: dict[str, Chart]
    console: list[str]  # every console message, as Chromium logged it


def open_page(chromium: str, page: Path, profile: Path) -> Opened:
    """Load `page` in headless Chromium with a fresh profile; its charts once the scripts ran, and its console."""
    result = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    reader = ChartReader()
    reader.feed(result.stdout)
    return Opened(reader.charts, [line for line in result.stderr.splitlines() if ":CONSOLE" in line])


def assert_every_chart_drew_lines(opened: Opened, page: str) -> None:
    assert [line for line in opened.console if not EMPTY_HOVER_LAYER.search(line)] == []
    assert sorted(opened.charts) == sorted(CHARTS)
    for name, chart in opened.charts.items():
        assert chart.canvases == 0, f"{name}: drawn on a canvas, expected SVG"
        assert chart.lines > 0, f"{name}: no line drawn"
    assert "<script src" not in page  # every script is inline: nothing to fetch


def test_plots_show_draws_the_loss_on_a_log_axis_and_the_coefficients_offline(reproduced, chromium, tmp_path):
    dvc(reproduced, "plots", "show")
    page = reproduced / "dvc_plots" / "index.html"
    opened = open_page(chromium, page, tmp_path / "profile")
    assert_every_chart_drew_lines(opened, page.read_text(encoding="utf-8"))
    loss, test_loss, coefficients, intercept = (opened.charts[name] for name in CHARTS)
    assert loss.title == ["Training loss (MSE) per epoch, log scale"]
    assert loss.axis_titles == ["epoch (log scale)", "training loss (MSE)"]
    assert test_loss.axis_titles == ["epoch (log scale)", "test loss (MSE)"]
    # Standardised, so that columns of any scale share the axis; least squares drawn beneath.
    assert coefficients.axis_titles == ["epoch (log scale)", "coefficient × sd(feature) / sd(target)"]
    assert intercept.axis_titles == ["epoch (log scale)", "intercept (data units)"]
    assert "x" in coefficients.legend and "intercept" in intercept.legend
    # One run: the loss and its faint unsmoothed copy; the coefficient of x (and the intercept) and least squares.
    assert loss.lines == test_loss.lines == coefficients.lines == intercept.lines == 2


def test_the_loss_chart_has_a_log_y_axis(reproduced):
    shown = json.loads(dvc(reproduced, "plots", "show", "--json").stdout)
    (loss,) = shown["data"]["loss"]
    scales = [layer["encoding"]["y"]["scale"] for layer in loss["content"]["layer"] if "y" in layer.get("encoding", {})]
    assert scales and all(scale == {"type": "log"} for scale in scales)


@pytest.fixture(scope="module")
def two_experiments(reproduced_template, chromium, tmp_path_factory) -> Path:
    """A reproduced project, then `dvc exp run` of `faster` (train.lr 0.02) and `slower` (0.002); copy it."""
    project = Path(shutil.copytree(reproduced_template, tmp_path_factory.mktemp("two") / "project", symlinks=True))
    dvc(project, "exp", "run", "--name", "faster", "-S", "train.lr=0.02")
    dvc(project, "exp", "run", "--name", "slower", "-S", "train.lr=0.002")
    return project


def test_plots_diff_of_two_experiments_draws_both_runs_in_each_chart_offline(reproduced, two_experiments, chromium,
                                                                               tmp_path):
    dvc(reproduced, "plots", "show")  # one run's page, as before the experiments
    shown = open_page(chromium, reproduced / "dvc_plots" / "index.html", tmp_path / "show")
    project = Path(shutil.copytree(two_experiments, tmp_path / "two", symlinks=True))
    dvc(project, "plots", "diff", "faster", "slower")
    page = project / "dvc_plots" / "index.html"
    opened = open_page(chromium, page, tmp_path / "diff")
    assert_every_chart_drew_lines(opened, page.read_text(encoding="utf-8"))
    for name in CHARTS:
        assert {"faster", "slower"} <= set(opened.charts[name].legend)
        assert opened.charts[name].lines == 2 * shown.charts[name].lines  # each run's lines, in one chart


def test_dvc_s_own_page_draws_nothing_offline(reproduced, chromium, tmp_path):
    """Without plots.html_template DVC's page loads Vega from a CDN: the check above sees that it fails."""
    dvc(reproduced, "config", "--unset", "plots.html_template")
    dvc(reproduced, "plots", "show")
    page = reproduced / "dvc_plots" / "index.html"
    opened = open_page(chromium, page, tmp_path / "profile")
    assert opened.charts == {}
    assert any("vegaEmbed is not defined" in line for line in opened.console), opened.console
    assert "<script src" in page.read_text(encoding="utf-8")


def test_set_up_writes_the_page_once_where_dvc_config_points_and_git_ignores_it(reproduced):
    page = page_path(reproduced)
    assert page == reproduced / ".dvc" / "plots_page.html"
    written = page.stat().st_mtime_ns
    assert write_page(reproduced) == page and page.stat().st_mtime_ns == written  # unchanged: not rewritten
    git(reproduced, "check-ignore", str(page.relative_to(reproduced)))


def test_the_coefficient_charts_draw_standardised_lines_beside_least_squares_on_a_log_epoch_axis(reproduced):
    """Drawn by Vega itself (vl-convert renders the filled charts to SVG), so this runs without Chromium."""
    shown = json.loads(dvc(reproduced, "plots", "show", "--json").stdout)["data"]
    for name in CHARTS:
        (chart,) = shown[name]
        svg = vl_convert.vegalite_to_svg(chart["content"], vl_version=VEGA_LITE)
        assert svg.count('class="mark-line') == 2, name  # one run: two line marks
        assert re.search(r"X-axis titled 'epoch \(log scale\)' for a symlog scale", svg), name
    values = shown["coefficients"][0]["content"]["data"]["values"]
    assert {value["coefficient"] for value in values} == {"x"}
    # The tutorial's standardised slope: 2.5 · sd(x) / sd(y), about 0.99 (R² 0.98), least squares beneath.
    assert 0.95 < float(values[-1]["least_squares"]) < 1
    # Training stops once converged: near least squares, not on it.
    assert float(values[-1]["standardised"]) == pytest.approx(float(values[-1]["least_squares"]), rel=1e-3)


# Appended to a page that `dvc plots diff` wrote: once every image has loaded, the window's width and where
# each image ends on the right, as JSON in a <pre> that --dump-dom prints.
IMAGE_PROBE = """<script>
window.addEventListener("load", () => {
    const found = document.createElement("pre");
    found.id = "image-rights";
    found.textContent = JSON.stringify({
        width: document.documentElement.clientWidth,
        rights: [...document.images].map(image => image.getBoundingClientRect().right),
    });
    document.body.appendChild(found);
});
</script>"""


def test_in_plots_diff_each_run_s_pngs_fit_a_1400_pixel_window_side_by_side(two_experiments, chromium, tmp_path):
    project = Path(shutil.copytree(two_experiments, tmp_path / "two", symlinks=True))
    dvc(project, "plots", "diff", "faster", "slower")
    page = project / "dvc_plots" / "index.html"
    page.write_text(page.read_text(encoding="utf-8").replace("</body>", IMAGE_PROBE + "</body>"), encoding="utf-8")
    result = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, "--window-size=1400,900", f"--user-data-dir={tmp_path / 'profile'}",
         "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    (found,) = re.findall(r'<pre id="image-rights">(.*?)</pre>', result.stdout, re.DOTALL)
    measured = json.loads(found.replace("&quot;", '"'))
    pngs = [plot for plot in YAML(typ="safe").load(ROOT / "dvc.yaml")["plots"] if isinstance(plot, str)]
    assert len(measured["rights"]) == 2 * len(pngs)  # each run's image of each PNG plot
    assert measured["width"] <= 1400
    assert all(0 < right <= measured["width"] for right in measured["rights"]), measured

