"""evaluate streams data.source: a Parquet file of many row groups, read in chunks of a few rows, gives the
same metrics.json whatever its row groups, with least squares equal to the exact answer; metrics.json
records where the model was trained."""

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pipeline.files
import pipeline.holdout
import pipeline.rows
from exact import correlated_table, exact_least_squares, relative_errors
from pipeline import evaluate
from pipeline.files import HISTORY, METRICS, MODEL, write_history
from pipeline.linear import LinearModel, save_weights
from tools.project import set_params
from workspace import ROOT

FEATURES = ("a", "b", "c", "d", "e", "f")
TEST_FRACTION, SPLIT_SEED = 0.2, 5


def evaluate_in(project, row_group_size: int, device: str = "cpu", processes: int = 1,
                cov_type: str = "nonrobust") -> dict:
    """Run evaluate's main() in `project` on correlated_table written in row groups of `row_group_size`."""
    features, target = correlated_table()
    pq.write_table(pa.table({**dict(zip(FEATURES, features.T)), "price": target}), project / "data" / "table.parquet",
                   row_group_size=row_group_size)
    set_params(project, {"data.source": "data/table.parquet", "data.features": list(FEATURES),
                         "data.target": "price", "data.test_fraction": TEST_FRACTION,
                         "data.split_seed": SPLIT_SEED, "train.device": device, "train.processes": processes,
                         "evaluate.cov_type": cov_type})
    evaluate.main()
    return json.loads((project / METRICS).read_text())


@pytest.fixture
def project(tmp_path, monkeypatch):
    """params.yaml and a learnt model in an empty directory, with chunks, groups and split blocks of a few rows."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    for folder in ("data", "models", "metrics"):
        (tmp_path / folder).mkdir()
    learnt = LinearModel(FEATURES, (1.0, -2.0, 0.3, 0.04, -0.005, 1e-4), 5.0)
    save_weights(tmp_path / MODEL, learnt, "float64", True)
    write_history(tmp_path / HISTORY, {"epoch": np.arange(3), "train_loss": np.ones(3)})  # read for epochs_run
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pipeline.rows, "CHUNK_ROWS", 16)
    monkeypatch.setattr(pipeline.files, "GROUP_ROWS", 10)
    monkeypatch.setattr(pipeline.holdout, "SPLIT_BLOCK", 64)
    return tmp_path


def test_the_metrics_are_the_same_bits_whatever_the_row_groups(project):
    found = [evaluate_in(project, row_group_size) for row_group_size in (7, 33, 1000)]
    assert found[0] == found[1] == found[2]
    metrics = found[0]
    features, target = correlated_table()
    held_out = pipeline.holdout.held_out(len(target), TEST_FRACTION, SPLIT_SEED)
    assert (metrics["train"]["n"], metrics["test"]["n"]) == (np.count_nonzero(~held_out), np.count_nonzero(held_out))
    ols = [metrics["ols"]["intercept"], *(metrics["ols"][name] for name in FEATURES)]
    assert max(relative_errors(ols, exact_least_squares(features[~held_out], target[~held_out]))) < 1e-12
    assert metrics["converged"] is False and metrics["gap"] > 1e-4


def test_the_metrics_record_the_device_and_processes_train_ran_on(project):
    metrics = evaluate_in(project, 7, device="cuda", processes=4)
    assert (metrics["device"], metrics["processes"]) == ("cuda", 4)
    assert list(metrics) == ["learnt", "ols", "gap", "coefficient_gap", "converged", "train", "test", "residual_sd",
                             "df_resid", "r2_adj", "f", "f_p", "condition_number", "r2", "log_likelihood", "aic",
                             "bic", "n_coefficients", "df_model", "cov_type", "inference", "dtype", "device",
                             "processes", "epochs_run", "rows_dropped", "rows_unlabeled"]


def test_robust_standard_errors_are_the_same_bits_whatever_the_row_groups(project):
    found = [evaluate_in(project, row_group_size, cov_type="HC3") for row_group_size in (7, 33, 1000)]
    assert found[0] == found[1] == found[2] and found[0]["cov_type"] == "HC3"
    classical = evaluate_in(project, 7)
    assert found[0]["inference"]["a"]["se"] != classical["inference"]["a"]["se"]
    assert found[0]["coefficient_gap"] == classical["coefficient_gap"]  # judged in classical errors
