"""`make report`: report.md with the params and metrics that differ from main, and the plots beside main's."""

import json
import re

import pytest

from pipeline.params import TrainParams, load_params
from workspace import LOWER_LR, dvc, git, make, set_param

PLOTS = ("plots/data.png", "plots/loss.png", "plots/fit.png", "plots/parameters.png", "plots/residuals.png",
         "plots/coefficients.png")


def one_error_line(result) -> str:
    """The one line a tool prints for a mistake: "error: …", and no traceback."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    return line


def metrics_row(report: str, name: str) -> list[str]:
    """The cells main, workspace and Change of one metric's row in the report."""
    start = re.compile(rf"\|\s*metrics/metrics\.json\s*\|\s*{re.escape(name)}\s*\|")
    (row,) = [line for line in report.splitlines() if start.match(line)]
    return [cell.strip() for cell in row.strip().strip("|").split("|")][2:]


def test_make_report_tables_the_params_and_metrics_that_differ_from_main_and_shows_the_plots_beside_main_s(
        reproduced_template, lower_lr):
    reproduced = lower_lr  # reproduced with LOWER_LR, not committed: on a branch of its own, as a user would
    metrics_file = reproduced / "metrics" / "metrics.json"
    on_main = json.loads((reproduced_template / "metrics" / "metrics.json").read_text())
    main_plots = {plot: (reproduced_template / plot).read_bytes() for plot in PLOTS}
    git(reproduced, "checkout", "--quiet", "-b", "lower-lr")
    default_lr = load_params(TrainParams, reproduced_template / "params.yaml").lr
    here = json.loads(metrics_file.read_text())
    result = make(reproduced, "report")
    assert result.returncode == 0, result.stderr
    report = (reproduced / "report.md").read_text()
    row = rf"\|\s*params\.yaml\s*\|\s*train\.lr\s*\|\s*{re.escape(str(default_lr))}\s*\|\s*{re.escape(str(LOWER_LR))}\s*\|"
    assert re.search(row, report), report
    assert re.search(r"\|\s*Path\s*\|\s*Metric\s*\|\s*main\s*\|\s*workspace\s*\|\s*Change\s*\|", report), report
    # Nested metrics by their path; each number as it is, to 8 decimals.
    old, new, _ = metrics_row(report, "learnt.intercept")
    assert (float(old), float(new)) == pytest.approx((on_main["learnt"]["intercept"], here["learnt"]["intercept"]),
                                                     abs=1e-8)
    # A gap to least squares of a few 1e-7 is a number, not 0.0.
    old, new, _ = metrics_row(report, "gap")
    assert (float(old), float(new)) == pytest.approx((on_main["gap"], here["gap"]), rel=0.1)
    assert 0 < float(old) < float(new)
    assert "For local viewing" in report  # the images are git-ignored files: the report says so
    # Each plot of main, read from DVC's cache, beside the workspace's, in one row of a table.
    for plot in PLOTS:
        row = f"| ![main: {plot}](report/base/{plot}) | ![{plot}]({plot}) |"
        assert row in report, report
        assert (reproduced / "report" / "base" / plot).read_bytes() == main_plots[plot]
    assert main_plots["plots/loss.png"] != (reproduced / "plots/loss.png").read_bytes()  # lr moved the loss
    assert git(reproduced, "status", "--porcelain", "--", "report") == ""  # git-ignored
    assert git(reproduced, "status", "--porcelain", "--", "report.md") == ""  # git-ignored


def test_make_report_on_main_itself_says_that_nothing_differs(reproduced):
    assert make(reproduced, "report").returncode == 0
    report = (reproduced / "report.md").read_text()
    assert "No param differs from `main`." in report
    assert "No metric differs from `main`." in report


def test_make_report_refuses_a_workspace_that_is_not_reproduced(reproduced):
    set_param(reproduced, "train.lr", 0.02)
    line = one_error_line(make(reproduced, "report"))
    # visualize reads train.lr too: the title of the parameters plot names it.
    assert line == (
        "error: dvc status lists changes in train, visualize: expected a reproduced workspace (run `make repro` first)"
    )
    assert not (reproduced / "report.md").exists()


def test_make_report_names_a_base_that_is_not_a_commit(reproduced):
    line = one_error_line(make(reproduced, "report", "BASE=no-such-branch"))
    assert line == (
        "error: BASE = 'no-such-branch': not a commit or experiment here: expected a branch, tag, commit or "
        "experiment name (`dvc exp show`) to compare with"
    )


def test_make_report_compares_with_an_experiment_by_its_name(reproduced):
    dvc(reproduced, "exp", "run", "--name", "slower", "-S", "train.lr=0.002")
    git(reproduced, "checkout", "--", "params.yaml", "dvc.lock")
    dvc(reproduced, "checkout", "--force")
    result = make(reproduced, "report", "BASE=slower")
    assert result.returncode == 0, result.stderr
    report = (reproduced / "report.md").read_text()
    # The experiment's own ref: refs/exps/ can also hold DVC's working refs (exec/…), which sort before
    # or after it depending on the baseline commit's hash.
    refs = git(reproduced, "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps/").splitlines()
    experiment = next(line.split()[1] for line in refs if line.split()[0].endswith("/slower"))
    assert f"compared with `slower` ({experiment[:7]})" in report
    assert re.search(r"\|\s*params\.yaml\s*\|\s*train\.lr\s*\|\s*0\.002\s*\|", report), report
