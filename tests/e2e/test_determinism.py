"""Same code and params, same bytes: across runs, thread counts, and a fresh clone's dvc.lock."""

import contextlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from exact import exact_least_squares
from pipeline.dataset import gather
from pipeline.split import load_split
from pipeline.params import DataParams, load_params
from workspace import OUTS, ROOT, copy_project, read_outs, set_params, stage


def test_the_committed_dvc_lock_is_what_a_fresh_repro_writes(reproduced_template):
    assert (reproduced_template / "dvc.lock").read_bytes() == (ROOT / "dvc.lock").read_bytes()


def test_the_default_params_learn_the_least_squares_line(reproduced_template):
    metrics = json.loads((reproduced_template / "metrics" / "metrics.json").read_text())
    data = load_params(DataParams, reproduced_template / "params.yaml")
    with contextlib.chdir(reproduced_template):
        train = gather(load_split(data, fit_intercept=True).train)
    # The exact minimiser of the squared error on the training rows, in rational arithmetic.
    intercept, slope = exact_least_squares(train.features, train.target)
    exact_predictions = intercept + slope * train.features[:, 0]
    learnt = metrics["learnt"]
    learnt_predictions = learnt["intercept"] + learnt["x"] * train.features[:, 0]
    # train stops once within train.tolerance (1e-4 sd of the target) of least squares
    assert np.max(np.abs(learnt_predictions - exact_predictions)) < 1e-4 * train.target.std()
    assert metrics["converged"] is True and metrics["gap"] < 1e-4 and metrics["coefficient_gap"] < 0.01


@pytest.mark.parametrize("setting", [{"OPENBLAS_CORETYPE": "Nehalem"}, {"ATEN_CPU_CAPABILITY": "default"}])
def test_evaluate_writes_the_same_metrics_without_vector_instructions(reproduced, setting):
    # np.dot and np.sum add in an order that depends on the CPU's kernels; evaluate's sums must not.
    before = (reproduced / "metrics" / "metrics.json").read_bytes()
    stage(reproduced, "evaluate", check=True, **setting)
    assert (reproduced / "metrics" / "metrics.json").read_bytes() == before


# Every optimiser, batch size and dtype, each pair of them at least once (tests/unit/test_train.py runs every
# combination in one process): each adds up rows in its own way.
SETTINGS = {
    "sgd float32 full batch": {},
    "sgd float64 batch_size 65536": {"train.dtype": "float64", "train.batch_size": 65536},
    "adam float64 full batch": {"train.optimizer": "adam", "train.dtype": "float64"},
    "adam float32 batch_size 65536": {"train.optimizer": "adam", "train.batch_size": 65536},
    "lbfgs float32": {"train.optimizer": "lbfgs"},
    "lbfgs float64": {"train.optimizer": "lbfgs", "train.dtype": "float64"},
}


@pytest.fixture(scope="module")
def large_table(tmp_path_factory) -> Path:
    """A project (no git, no DVC) with synthesize's points written: 350,000 rows, so 280,000 training rows,
    two chunks of train's sums (CHUNK_ROWS, 262,144), each above the 32,768 rows from which torch would split
    a sum between its own threads, and more than one batch of 65,536."""
    project = copy_project(tmp_path_factory.mktemp("large") / "project", with_git=False)
    set_params(project, {"synthesize.n_points": 350_000, "train.epochs": 3})
    stage(project, "synthesize", check=True)
    return project


@pytest.mark.parametrize("setting", SETTINGS)
def test_train_writes_the_same_bytes_on_1_2_or_3_threads_for_every_optimiser_dtype_and_batch_size(
        large_table, tmp_path, setting):
    project = Path(shutil.copytree(large_table, tmp_path / "project"))
    set_params(project, SETTINGS[setting])
    written = {}
    # OMP_NUM_THREADS sets torch's thread count, as a machine's cores would; torch takes at most as many as
    # there are cores, so 3 is 2 on a 2-core machine.
    for threads in ("1", "2", "3"):
        stage(project, "train", check=True, OMP_NUM_THREADS=threads)
        written[threads] = read_outs(project, OUTS["train"])
    assert written["1"] == written["2"] == written["3"]
