"""Experiments with the real dvc CLI: `dvc exp run -S`, a queued sweep on two workers, and `dvc params diff`,
`dvc metrics diff` and `dvc plots diff` between two commits and between two experiments."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from pipeline.params import TrainParams, load_params
from workspace import LOWER_LR, ROOT, commit, dvc, environment, git, read_outs

DEFAULTS = load_params(TrainParams, ROOT / "params.yaml")  # the committed train section
# lrs too small for the committed train.epochs to reach least squares (as LOWER_LR), each stopping at its own
# distance from it: two lrs large enough to reach it may well end on the same float32 bits.
SWEEP = (0.0005, 0.001, 0.003)


def experiments(project: Path) -> dict[str, dict]:
    """Every experiment `dvc exp show --json` lists: name → its rev, params, metrics and queue state."""
    found = {}
    for baseline in json.loads(dvc(project, "exp", "show", "--json").stdout):
        for experiment in baseline.get("experiments") or ():
            for rev in experiment["revs"]:
                found[rev["name"]] = {
                    "rev": rev["rev"],
                    "params": rev["data"]["params"]["params.yaml"]["data"],
                    "metrics": rev["data"]["metrics"].get("metrics/metrics.json", {}).get("data"),
                    "state": (experiment["executor"] or {}).get("state"),
                }
    return found


def wait_for_the_queue(project: Path, polls: int = 300) -> str:
    """Poll `dvc queue status` until no task is queued or running; its last table."""
    for _ in range(polls):
        status = dvc(project, "queue", "status").stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            return status
        time.sleep(2)  # poll gently: each `dvc queue status` takes a CPU from the two workers for a moment
    raise AssertionError(f"the queue has not finished:\n{status}")


def test_exp_run_with_a_new_lr_is_listed_by_exp_show_with_its_params_and_metrics(reproduced):
    dvc(reproduced, "exp", "run", "--name", "faster", "--set-param", "train.lr=0.3")
    listed = experiments(reproduced)
    assert listed["faster"]["params"]["train"]["lr"] == 0.3
    # The experiment's results are applied to the workspace: exp show lists the metrics evaluate wrote.
    assert listed["faster"]["metrics"] == json.loads((reproduced / "metrics" / "metrics.json").read_text())
    metrics = listed["faster"]["metrics"]
    assert set(metrics) == {"learnt", "ols", "true", "gap", "converged", "train", "test", "device", "processes",
                            "coefficient_gap", "residual_sd", "df_resid", "r2_adj", "f", "f_p", "condition_number",
                            "inference", "dtype", "epochs_run", "rows_dropped", "rows_unlabeled",
                            "r2", "log_likelihood", "aic", "bic", "n_coefficients", "df_model", "cov_type"}
    assert set(metrics["learnt"]) == set(metrics["ols"]) == {"x", "intercept"}
    # Nested metrics are columns with dotted names.
    table = dvc(reproduced, "exp", "show", "--md", "--drop", ".*", "--keep", "Experiment|learnt.x|train.lr").stdout
    assert re.search(r"\|\s*learnt\.x\s*\|\s*train\.lr\s*\|", table), table
    assert re.search(r"\[faster\]\s*\|\s*2\.50\d*\s*\|\s*0\.3\s*\|", table), table


@dataclass(frozen=True)
class Compared:
    """A project with two commits (the committed train.lr, then LOWER_LR) and a sweep queued on top of the second."""

    project: Path
    started: str  # what `dvc queue start -j 2` printed
    workspace_before_the_sweep: dict[str, bytes] = field(repr=False)
    sweep: dict[float, str]  # lr → experiment name


@pytest.fixture(scope="module")
def compared(lower_lr_template, tmp_path_factory) -> Compared:
    project = Path(shutil.copytree(lower_lr_template.project, tmp_path_factory.mktemp("compared") / "project",
                                   symlinks=True))
    commit(project, f"train.lr {LOWER_LR}")
    before = read_outs(project)
    dvc(project, "exp", "run", "--queue", "--set-param", f"train.lr={','.join(map(str, SWEEP))}")
    started = start_workers(project, jobs=2)
    try:
        wait_for_the_queue(project)
    finally:
        stop_workers(project)
    sweep = {experiment["params"]["train"]["lr"]: name for name, experiment in experiments(project).items()}
    return Compared(project, started, before, sweep)


def test_a_queued_sweep_runs_every_lr_on_two_workers_and_exp_show_lists_their_metrics(compared):
    assert "Started '2' new experiments task queue workers" in compared.started
    listed = experiments(compared.project)
    assert sorted(compared.sweep) == sorted(SWEEP)
    for name in compared.sweep.values():
        assert listed[name]["state"] == "success"
        assert {"learnt", "ols", "gap", "converged", "train", "test"} <= set(listed[name]["metrics"])
    # Each lr trained its own line, so no two experiments share a learnt intercept.
    intercepts = {listed[name]["metrics"]["learnt"]["intercept"] for name in compared.sweep.values()}
    assert len(intercepts) == len(SWEEP)


def test_queued_experiments_run_apart_from_the_workspace_and_commit_only_params_and_lock(compared):
    assert read_outs(compared.project) == compared.workspace_before_the_sweep
    assert git(compared.project, "status", "--porcelain") == ""
    listed = experiments(compared.project)
    for name in compared.sweep.values():
        changed = git(compared.project, "diff", "--name-only", "HEAD", listed[name]["rev"])
        assert set(changed.split()) == {"dvc.lock", "params.yaml"}


PAIRS = ("two commits", "two experiments")
# The metrics of the data alone, which training cannot move.
DATA_METRICS = ("true.", "ols.", "train.mse_ols", "test.mse_ols", "train.n", "test.n")


def revisions(compared: Compared, pair: str) -> tuple[str, str, float, float]:
    """The old and new revision of `pair`, and their train.lr."""
    if pair == "two commits":
        return "HEAD~1", "HEAD", DEFAULTS.lr, LOWER_LR
    return compared.sweep[SWEEP[0]], compared.sweep[SWEEP[-1]], SWEEP[0], SWEEP[-1]


@pytest.mark.parametrize("pair", PAIRS)
def test_params_diff_shows_the_change_of_lr(compared, pair):
    old, new, old_lr, new_lr = revisions(compared, pair)
    changes = json.loads(dvc(compared.project, "params", "diff", old, new, "--json").stdout)
    assert list(changes) == ["params.yaml"] and list(changes["params.yaml"]) == ["train.lr"]
    assert (changes["params.yaml"]["train.lr"]["old"], changes["params.yaml"]["train.lr"]["new"]) == (old_lr, new_lr)
    table = dvc(compared.project, "params", "diff", old, new, "--md").stdout
    assert re.search(rf"\|\s*params\.yaml\s*\|\s*train\.lr\s*\|\s*{old_lr}\s*\|\s*{new_lr}\s*\|", table), table


@pytest.mark.parametrize("pair", PAIRS)
def test_metrics_diff_shows_how_the_learnt_line_moved(compared, pair):
    old, new, _, _ = revisions(compared, pair)
    changes = json.loads(dvc(compared.project, "metrics", "diff", old, new, "--json").stdout)["metrics/metrics.json"]
    # Nested metrics are named by their path, as `dvc metrics show` names them.
    assert changes["learnt.intercept"]["old"] != changes["learnt.intercept"]["new"]
    assert changes["gap"]["old"] != changes["gap"]["new"]
    # The data is the same: only what training learnt moves.
    assert not [name for name in changes if name.startswith(DATA_METRICS)], changes
    table = dvc(compared.project, "metrics", "diff", old, new, "--md").stdout
    assert re.search(r"\|\s*metrics/metrics\.json\s*\|\s*learnt\.intercept\s*\|", table), table


@pytest.mark.parametrize("pair", PAIRS)
def test_plots_diff_draws_the_losses_coefficients_and_intercept_of_both_runs_in_one_plot_each(compared, pair, tmp_path):
    old, new, _, _ = revisions(compared, pair)
    drawn = json.loads(dvc(compared.project, "plots", "diff", old, new, "--json", "-o", str(tmp_path)).stdout)["data"]
    learnt = json.loads(dvc(compared.project, "metrics", "diff", old, new, "--all", "--json").stdout)
    charts = {name: drawn[name][0] for name in ("loss", "test_loss", "coefficients", "intercept")}
    assert all(chart["revisions"] == [old, new] for chart in charts.values())
    losses = {}
    for rev, side in ((old, "old"), (new, "new")):
        for chart, name in (("loss", "train_loss"), ("test_loss", "test_loss")):  # one line per loss and run
            series = [float(point[name]) for point in charts[chart]["content"]["data"]["values"] if point["rev"] == rev]
            assert len(series) == learnt["metrics/metrics.json"]["epochs_run"][side] + 1  # where training stopped
            losses[rev, name] = series
        values = learnt["metrics/metrics.json"]
        for plot, name, column in ((charts["coefficients"], "x", "standardised"), (charts["intercept"], "intercept", "intercept")):
            rows = [point for point in plot["content"]["data"]["values"] if point["rev"] == rev]
            assert {point["coefficient"] for point in rows} == {name}
            series = [float(point[column]) for point in rows]
            assert len(series) == values["epochs_run"][side] + 1
            # Each run's history ends where its training ended: on that run's learnt model (float32), beside
            # least squares; the coefficient on a standardised axis, so as a ratio to least squares.
            least_squares = float(rows[-1]["least_squares"])
            if name == "intercept":
                assert np.float32(series[-1]) == np.float32(values[f"learnt.{name}"][side])
                assert least_squares == values[f"ols.{name}"][side]
            else:
                assert series[-1] / least_squares == pytest.approx(
                    np.float32(values[f"learnt.{name}"][side]) / values[f"ols.{name}"][side], rel=1e-12)
    assert losses[old, "train_loss"] != losses[new, "train_loss"]
    for image in ("data", "loss", "fit", "parameters"):
        assert {entry["revisions"][0] for entry in drawn[f"plots/{image}.png"]} == {old, new}


def start_workers(project: Path, jobs: int) -> str:
    """`dvc queue start`, and what it printed. Its output goes to a file, not a pipe: the workers it leaves
    running inherit it, and a pipe would stay open, and the call unfinished, for as long as any of them runs."""
    log = project.parent / "queue-start.log"
    with log.open("w") as output:
        subprocess.run([sys.executable, "-m", "dvc", "queue", "start", "--jobs", str(jobs)], cwd=project,
                       env=environment(), stdout=output, stderr=subprocess.STDOUT, check=True)
    return log.read_text()


def stop_workers(project: Path, seconds: float = 30) -> None:
    """`dvc queue stop`; then end, by the process ids DVC recorded, any of this queue's workers still running
    (a worker can hang after its monitor has shut it down)."""
    dvc(project, "queue", "stop", check=False)
    workers = [int(path.read_text()) for path in (project / ".dvc/tmp/exps/celery").glob("dvc-exp-worker-*.pid")]
    deadline = time.monotonic() + seconds
    while any(map(is_worker, workers)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in workers:
        if is_worker(pid):
            os.kill(pid, signal.SIGTERM)


def is_worker(pid: int) -> bool:
    """Whether `pid` is still a running DVC queue worker (and not a new process that reuses the id)."""
    try:
        return b"queue-worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
