"""`make report`: report.md with the params and metrics that differ from main, and the four plots."""

import re

from workspace import dvc, git, make, set_param

PLOTS = ("plots/data.png", "plots/loss.png", "plots/fit.png", "plots/parameters.png")


def one_error_line(result) -> str:
    """The one line a tool prints for a mistake: "error: …", and no traceback."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    return line


def test_make_report_tables_the_params_and_metrics_that_differ_from_main_and_links_the_four_plots(reproduced):
    git(reproduced, "checkout", "--quiet", "-b", "lower-lr")
    set_param(reproduced, "train.lr", 0.02)
    dvc(reproduced, "repro")
    result = make(reproduced, "report")
    assert result.returncode == 0, result.stderr
    report = (reproduced / "report.md").read_text()
    assert re.search(r"\|\s*params\.yaml\s*\|\s*train\.lr\s*\|\s*0\.05\s*\|\s*0\.02\s*\|", report), report
    assert re.search(r"\|\s*Path\s*\|\s*Metric\s*\|\s*main\s*\|\s*workspace\s*\|\s*Change\s*\|", report), report
    assert re.search(r"\|\s*metrics/metrics\.json\s*\|\s*c_learnt\s*\|\s*-1\.07", report), report
    for plot in PLOTS:
        assert f"![{plot}]({plot})" in report
        assert (reproduced / plot).is_file()
    assert git(reproduced, "status", "--porcelain", "--", "report.md") == ""  # git-ignored


def test_make_report_on_main_itself_says_that_nothing_differs(reproduced):
    assert make(reproduced, "report").returncode == 0
    report = (reproduced / "report.md").read_text()
    assert "No param differs from `main`." in report
    assert "No metric differs from `main`." in report


def test_make_report_refuses_a_workspace_that_is_not_reproduced(reproduced):
    set_param(reproduced, "train.lr", 0.02)
    line = one_error_line(make(reproduced, "report"))
    assert line == "error: dvc status lists changes in train: expected a reproduced workspace (run `make repro` first)"
    assert not (reproduced / "report.md").exists()


def test_make_report_names_a_base_that_is_not_a_commit(reproduced):
    line = one_error_line(make(reproduced, "report", "BASE=no-such-branch"))
    assert line == (
        "error: BASE = 'no-such-branch': not a commit here: expected a branch, tag or commit to compare with"
    )
