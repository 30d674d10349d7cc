"""Fit your own data, as the README's worked example does: a table of yours that DVC tracks, named by
data.source; what each change reruns, tested with the real dvc CLI."""

import hashlib
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet
import pytest
from ruamel.yaml import YAML

from exact import exact_least_squares
from pipeline.params import DataParams, load_params
from workspace import STAGES, commit, declared, dvc, git, ran, read_outs, restored, run, set_params

HOUSES = "data/raw/houses.csv"
FEATURES = ["area_m2", "rooms", "age_years"]
TARGET = "price_eur"
# What the worked example sets, as `dvc exp run -S` sets it: a list in the syntax of Hydra's overrides. Only
# data.*: predict (predict.rows: fitted) predicts the houses themselves, each with its split and residual.
SET_PARAMS = (f"data.source={HOUSES}", f"data.features=[{','.join(FEATURES)}]", f"data.target={TARGET}")
TRAINING_AND_AFTER = {"train", "evaluate", "visualize", "predict"}


@dataclass(frozen=True)
class WorkedExample:
    """A reproduced project, then the houses copied to data/raw, `dvc add`ed and committed, then fitted by
    `dvc exp run -S …` (whose params.yaml and dvc.lock are applied to the workspace, not committed)."""

    project: Path
    output: str = field(repr=False)  # what `dvc exp run` printed
    default_outs: dict[str, bytes] = field(repr=False)  # every output before, for synthesize's points
    houses_outs: dict[str, bytes] = field(repr=False)  # every output after


@pytest.fixture(scope="module")
def worked_example(reproduced_template, tmp_path_factory) -> WorkedExample:
    project = Path(shutil.copytree(reproduced_template, tmp_path_factory.mktemp("own") / "project", symlinks=True))
    default_outs = read_outs(project)
    (project / HOUSES).parent.mkdir(parents=True)
    shutil.copy2(project / "examples" / "houses.csv", project / HOUSES)
    dvc(project, "add", HOUSES)
    commit(project, "my houses, tracked by DVC")
    output = dvc(project, "exp", "run", *(part for value in SET_PARAMS for part in ("--set-param", value))).stdout
    return WorkedExample(project, output, default_outs, read_outs(project))


@pytest.fixture
def fitted(worked_example, tmp_path) -> Path:
    """A private copy of the worked example's project, the houses fitted."""
    return Path(shutil.copytree(worked_example.project, tmp_path / "project", symlinks=True))


def metrics_of(project: Path) -> dict:
    return json.loads((project / "metrics" / "metrics.json").read_text())


def houses_md5(project: Path) -> str:
    """The md5 that `dvc add` recorded for the houses in their .dvc file."""
    (out,) = YAML(typ="safe").load(project / f"{HOUSES}.dvc")["outs"]
    return out["md5"]


def test_the_worked_example_runs_train_evaluate_visualize_and_predict_and_not_synthesize(worked_example):
    assert ran(worked_example.output) == TRAINING_AND_AFTER
    assert "Stage 'synthesize' didn't change, skipping" in worked_example.output
    # -S took the list: params.yaml holds the three columns, in order.
    data = load_params(DataParams, worked_example.project / "params.yaml")
    assert (data.source, data.features, data.target) == (HOUSES, FEATURES, TARGET)


def test_the_metrics_name_the_houses_columns_have_no_true_line_and_training_converged(worked_example):
    metrics = metrics_of(worked_example.project)
    assert set(metrics) == {"learnt", "ols", "gap", "converged", "train", "test", "device", "processes",
                            "coefficient_gap", "residual_sd", "df_resid", "r2_adj", "f", "f_p", "condition_number",
                            "inference", "dtype", "epochs_run", "rows_dropped", "rows_unlabeled",
                            "r2", "log_likelihood", "aic", "bic", "n_coefficients", "df_model", "cov_type"}  # no "true"
    assert list(metrics["learnt"]) == list(metrics["ols"]) == [*FEATURES, "intercept"]
    # x in the hundreds, y in the hundreds of thousands: the committed train section still reaches least squares.
    assert metrics["converged"] is True
    assert (metrics["train"]["n"], metrics["test"]["n"]) == (48, 12)  # 60 rows, 20% held out


def test_the_learnt_model_is_the_exact_least_squares_fit_of_the_training_rows(worked_example):
    project = worked_example.project
    data = load_params(DataParams, project / "params.yaml")
    table = np.genfromtxt(project / HOUSES, delimiter=",", names=True)
    # The held-out rows, recomputed here: the first round(n × test_fraction) of a permutation drawn with
    # split_seed by NumPy's default generator.
    held_out = np.random.default_rng(data.split_seed).permutation(len(table))[:round(len(table) * data.test_fraction)]
    rows = np.setdiff1d(np.arange(len(table)), held_out)
    features = np.column_stack([table[name][rows] for name in FEATURES])
    target = table[TARGET][rows]
    intercept, *coefficients = exact_least_squares(features, target)
    exact = dict(zip(FEATURES, coefficients), intercept=intercept)
    metrics = metrics_of(project)
    # Least squares in float64 is the exact answer to float64 precision.
    assert metrics["ols"] == pytest.approx(exact, rel=1e-9)
    # float32 training, stopped once converged: predictions within train.tolerance (1e-4 sd) of the exact
    # ones, and every coefficient within train.coefficient_tolerance (0.01) of its standard error.
    learnt = metrics["learnt"]
    predictions = {name: learnt["intercept"] + features @ [learnt[feature] for feature in FEATURES]
                   for name, learnt in (("learnt", learnt), ("exact", exact))}
    # train stops once within train.tolerance (1e-4 sd of the target) of least squares
    assert np.max(np.abs(predictions["learnt"] - predictions["exact"])) < 1e-4 * target.std()
    for name, value in exact.items():
        assert abs(learnt[name] - value) < 0.01 * metrics["inference"][name]["se"], name
    # predict (predict.rows: fitted, the default) gives every house in order, split as train split them.
    predicted = pyarrow.parquet.read_table(project / "data/predictions.parquet")
    assert predicted.column_names == [*FEATURES, TARGET, "split", "prediction", "lower", "upper", "se_fit", "residual"]
    assert predicted.column(TARGET).to_pylist() == table[TARGET].tolist()
    expected_split = np.full(len(table), "train", dtype=object)
    expected_split[held_out] = "test"
    assert predicted.column("split").to_pylist() == expected_split.tolist()


def test_dvc_lock_records_the_md5_of_the_houses_as_a_dep_of_every_stage_after_synthesize(worked_example):
    project = worked_example.project
    md5 = houses_md5(project)
    assert md5 == hashlib.md5((project / HOUSES).read_bytes()).hexdigest()
    stages = YAML(typ="safe").load(project / "dvc.lock")["stages"]
    readers = {name for name, stage in stages.items() for dep in stage["deps"] if dep["path"] == HOUSES}
    assert readers == TRAINING_AND_AFTER
    for name in TRAINING_AND_AFTER:
        (dep,) = [dep for dep in stages[name]["deps"] if dep["path"] == HOUSES]
        assert dep["md5"] == md5


def test_dvc_params_diff_shows_the_switch_to_the_houses(worked_example):
    changes = json.loads(dvc(worked_example.project, "params", "diff", "--json").stdout)["params.yaml"]
    assert changes["data.source"] == {"old": "data/points.parquet", "new": HOUSES}
    assert changes["data.features"] == {"old": "['x']", "new": str(FEATURES)}  # a list, as Python writes it
    assert changes["data.target"] == {"old": "y", "new": TARGET}
    assert set(changes) == {"data.source", "data.features", "data.target"}


def test_a_new_version_of_the_houses_reruns_every_stage_that_reads_them_and_nothing_upstream(fitted):
    before, old_md5 = metrics_of(fitted), houses_md5(fitted)
    houses = fitted / HOUSES
    lines = houses.read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0] + ",210600"  # a price corrected: 200600 → 210600
    houses.write_text("\n".join(lines) + "\n")
    dvc(fitted, "add", HOUSES)
    assert houses_md5(fitted) != old_md5
    output = dvc(fitted, "repro").stdout
    assert ran(output) == TRAINING_AND_AFTER
    assert metrics_of(fitted)["ols"] != before["ols"]


# Each change of the data section, as one or more keys of params.yaml. A target must not be a feature, so
# another target trades places with it.
DATA_CHANGES = {
    "data.features": {"data.features": ["area_m2", "rooms"]},
    "data.target": {"data.target": "age_years", "data.features": ["area_m2", "rooms", "price_eur"]},
    "data.test_fraction": {"data.test_fraction": 0.3},
    "data.split_seed": {"data.split_seed": 1},
}


@pytest.mark.parametrize("change", DATA_CHANGES)
def test_changing_the_columns_or_the_split_reruns_train_evaluate_visualize_and_predict(fitted, change):
    set_params(fitted, DATA_CHANGES[change])
    assert ran(dvc(fitted, "repro").stdout) == TRAINING_AND_AFTER


def test_switching_data_source_back_and_forth_restores_every_output_from_the_run_cache(fitted, worked_example):
    git(fitted, "checkout", "--", "params.yaml")  # back to synthesize's points
    output = dvc(fitted, "repro").stdout
    assert ran(output) == set()
    assert restored(output) == TRAINING_AND_AFTER
    assert read_outs(fitted) == worked_example.default_outs
    assert (fitted / "dvc.lock").read_text() == git(fitted, "show", "HEAD:dvc.lock")

    set_params(fitted, {"data.source": HOUSES, "data.features": FEATURES, "data.target": TARGET})
    output = dvc(fitted, "repro").stdout
    assert ran(output) == set()
    assert restored(output) == TRAINING_AND_AFTER
    assert read_outs(fitted) == worked_example.houses_outs


# `dvc <arguments>` in a process that counts its own opens of one file (Python's audit hook sees every open):
# how often DVC reads that file to hash it, as the stages' own reads happen in processes of their own.
COUNTING_OPENS = """
import atexit, os, runpy, sys
watched, opened = os.path.realpath(sys.argv.pop(1)), []
def count(event, arguments):
    if event == "open" and isinstance(arguments[0], (str, os.PathLike)):
        if os.path.realpath(arguments[0]) == watched:
            opened.append(arguments[0])
sys.addaudithook(count)
atexit.register(lambda: print(f"opened {len(opened)} times", file=sys.stderr))
sys.argv[0] = "dvc"
runpy.run_module("dvc", run_name="__main__")
"""


def dvc_opens(project: Path, path: str, *arguments: str) -> int:
    result = run([sys.executable, "-c", COUNTING_OPENS, path, *arguments], project)
    return int(result.stderr.rsplit("opened ", 1)[1].split()[0])


def test_the_first_repro_on_a_new_table_has_dvc_hash_it_twice_in_each_stage_that_reads_it_and_then_never(
        reproduced_template, tmp_path):
    """docs/scale.md: DVC 3.67 asks a dependency that dvc.lock does not list yet for md5-dos2unix and then md5,
    for each time a stage names it, and its state keeps one hash a file; from then on, dvc.lock lists it and
    DVC hashes it only when it changes. If a DVC release mends this, say so there."""
    project = Path(shutil.copytree(reproduced_template, tmp_path / "project", symlinks=True))
    (project / HOUSES).parent.mkdir(parents=True)
    shutil.copy2(project / "examples" / "houses.csv", project / HOUSES)
    dvc(project, "add", HOUSES)
    commit(project, "my houses, tracked by DVC")
    set_params(project, {"data.source": HOUSES, "data.features": FEATURES, "data.target": TARGET})
    named = sum(declared(name, project)["deps"].count(HOUSES) for name in STAGES)
    assert named == len(TRAINING_AND_AFTER)  # train, evaluate, visualize and predict (predict.source is another file)
    assert dvc_opens(project, HOUSES, "repro") == 2 * named
    assert dvc_opens(project, HOUSES, "repro") == 0
