"""Experiments with the real dvc CLI: `dvc exp run -S`, a queued sweep on two workers, and `dvc params diff`,
`dvc metrics diff` and `dvc plots diff` between two commits and between two experiments."""

import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from workspace import commit, dvc, git, read_outs, set_param

SWEEP = (0.01, 0.03, 0.1)
EPOCHS = 300  # train.epochs in params.yaml


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
    dvc(reproduced, "exp", "run", "--name", "faster", "--set-param", "train.lr=0.1")
    listed = experiments(reproduced)
    assert listed["faster"]["params"]["train"]["lr"] == 0.1
    # The experiment's results are applied to the workspace: exp show lists the metrics evaluate wrote.
    assert listed["faster"]["metrics"] == json.loads((reproduced / "metrics" / "metrics.json").read_text())
    assert {"m_learnt", "c_learnt", "m_ols", "c_ols", "mse", "r2"} <= set(listed["faster"]["metrics"])
    table = dvc(reproduced, "exp", "show", "--md", "--drop", ".*", "--keep", "Experiment|m_learnt|train.lr").stdout
    assert re.search(r"\[faster\]\s*\|\s*2\.50\d*\s*\|\s*0\.1\s*\|", table), table


@dataclass(frozen=True)
class Compared:
    """A project with two commits (train.lr 0.05, then 0.02) and a sweep queued on top of the second."""

    project: Path
    started: str  # what `dvc queue start -j 2` printed
    workspace_before_the_sweep: dict[str, bytes] = field(repr=False)
    sweep: dict[float, str]  # lr → experiment name


@pytest.fixture(scope="module")
def compared(reproduced_template, tmp_path_factory) -> Compared:
    project = Path(shutil.copytree(reproduced_template, tmp_path_factory.mktemp("compared") / "project", symlinks=True))
    set_param(project, "train.lr", 0.02)
    dvc(project, "repro")
    commit(project, "train.lr 0.02")
    before = read_outs(project)
    dvc(project, "exp", "run", "--queue", "--set-param", f"train.lr={','.join(map(str, SWEEP))}")
    started = dvc(project, "queue", "start", "--jobs", "2").stdout
    wait_for_the_queue(project)
    dvc(project, "queue", "stop")  # idle workers would otherwise outlive the test
    sweep = {experiment["params"]["train"]["lr"]: name for name, experiment in experiments(project).items()}
    return Compared(project, started, before, sweep)


def test_a_queued_sweep_runs_every_lr_on_two_workers_and_exp_show_lists_their_metrics(compared):
    assert "Started '2' new experiments task queue workers" in compared.started
    listed = experiments(compared.project)
    assert sorted(compared.sweep) == sorted(SWEEP)
    for name in compared.sweep.values():
        assert listed[name]["state"] == "success"
        assert {"m_learnt", "c_learnt", "mse", "r2"} <= set(listed[name]["metrics"])
    # Each lr trained its own line, so no two experiments share a c_learnt.
    assert len({listed[name]["metrics"]["c_learnt"] for name in compared.sweep.values()}) == len(SWEEP)


def test_queued_experiments_run_apart_from_the_workspace_and_commit_only_params_and_lock(compared):
    assert read_outs(compared.project) == compared.workspace_before_the_sweep
    assert git(compared.project, "status", "--porcelain") == ""
    listed = experiments(compared.project)
    for name in compared.sweep.values():
        changed = git(compared.project, "diff", "--name-only", "HEAD", listed[name]["rev"])
        assert set(changed.split()) == {"dvc.lock", "params.yaml"}


PAIRS = ("two commits", "two experiments")


def revisions(compared: Compared, pair: str) -> tuple[str, str, float, float]:
    """The old and new revision of `pair`, and their train.lr."""
    if pair == "two commits":
        return "HEAD~1", "HEAD", 0.05, 0.02
    return compared.sweep[0.01], compared.sweep[0.1], 0.01, 0.1


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
    assert changes["c_learnt"]["old"] != changes["c_learnt"]["new"]
    assert "m_true" not in changes  # the data is the same: only what training learnt moves
    table = dvc(compared.project, "metrics", "diff", old, new, "--md").stdout
    assert re.search(r"\|\s*metrics/metrics\.json\s*\|\s*c_learnt\s*\|", table), table


@pytest.mark.parametrize("pair", PAIRS)
def test_plots_diff_draws_the_loss_and_m_and_c_of_both_runs_in_one_plot(compared, pair, tmp_path):
    old, new, _, _ = revisions(compared, pair)
    drawn = json.loads(dvc(compared.project, "plots", "diff", old, new, "--json", "-o", str(tmp_path)).stdout)["data"]
    learnt = json.loads(dvc(compared.project, "metrics", "diff", old, new, "--all", "--json").stdout)
    (loss,), (parameters,) = drawn["loss"], drawn["parameters"]
    assert loss["revisions"] == parameters["revisions"] == [old, new]
    losses = {}
    for rev, side in ((old, "old"), (new, "new")):
        losses[rev] = [float(point["loss"]) for point in loss["content"]["data"]["values"] if point["rev"] == rev]
        assert len(losses[rev]) == EPOCHS + 1
        lines = [point for point in parameters["content"]["data"]["values"] if point["rev"] == rev]
        for name in ("m", "c"):
            series = [float(point[name]) for point in lines if point["field"] == name]
            assert len(series) == EPOCHS + 1
            # Each run's history ends where its training ended: on that run's learnt m and c (float32).
            assert np.float32(series[-1]) == np.float32(learnt["metrics/metrics.json"][f"{name}_learnt"][side])
    assert losses[old] != losses[new]
    for image in ("data", "loss", "fit", "parameters"):
        assert {entry["revisions"][0] for entry in drawn[f"plots/{image}.png"]} == {old, new}
