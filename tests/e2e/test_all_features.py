"""`data.features: all` end to end with the real dvc CLI: a table of yours with identifier-like text columns (a
level per row, more than data.max_levels) among its numbers, set by `dvc exp run -S data.features=all`; the
model, the metrics and the history name its numeric columns, least squares is the exact answer, and a new
column in the file reruns train."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from exact import exact_least_squares
from pipeline.params import DataParams, load_params
from workspace import commit, dvc, ran

SHOPS = "data/raw/shops.csv"
NUMERIC = ["area", "staff", "rent"]  # in file order, the target "sales" among them
NOTE = (f"{SHOPS}: data.features = all: left out 'shop', a text column of 60 levels (more than data.max_levels = 50: "
        "an identifier? name it in data.features to fit it)")


def shops(rows: int = 60, seed: int = 3, extra: bool = False) -> dict[str, list]:
    """Columns in file order: text, numbers, the target, text, numbers (and, with extra, one more number)."""
    rng = np.random.default_rng(seed)
    area = np.round(rng.uniform(20, 200, rows), 1)
    staff = rng.integers(1, 12, rows)
    rent = np.round(rng.uniform(500, 5000, rows), 2)
    sales = np.round(30 * area + 900 * staff - 0.5 * rent + 2000 + rng.normal(0, 300, rows), 2)
    columns = {"shop": [f"shop {i}" for i in range(rows)], "area": area.tolist(), "staff": staff.tolist(),
               "sales": sales.tolist(), "street": [f"{i} Main St" for i in range(rows)], "rent": rent.tolist()}
    if extra:
        columns["footfall"] = rng.integers(100, 900, rows).tolist()
    return columns


def write_shops(project: Path, columns: dict[str, list]) -> None:
    path = project / SHOPS
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        writer.writerows(zip(*columns.values()))


def metrics_of(project: Path) -> dict:
    return json.loads((project / "metrics" / "metrics.json").read_text())


@pytest.fixture(scope="module")
def fitted(reproduced_template, tmp_path_factory) -> tuple[Path, str]:
    """A reproduced project, the shops tracked by DVC, then `dvc exp run -S data.features=all`."""
    project = Path(shutil.copytree(reproduced_template, tmp_path_factory.mktemp("all") / "project", symlinks=True))
    write_shops(project, shops())
    dvc(project, "add", SHOPS)
    commit(project, "my shops, tracked by DVC")
    settings = (f"data.source={SHOPS}", "data.features=all", "data.target=sales", f"predict.source={SHOPS}")
    output = dvc(project, "exp", "run", *(part for value in settings for part in ("--set-param", value))).stdout
    return project, output


def test_exp_run_with_all_writes_all_to_params_yaml_and_train_alone_names_the_left_out_text_columns(fitted):
    project, output = fitted
    assert ran(output) == {"train", "evaluate", "visualize", "predict"}
    assert load_params(DataParams, project / "params.yaml").features == "all"
    assert "  features: all\n" in (project / "params.yaml").read_text()
    assert output.count(NOTE) == 1  # train says it; evaluate and visualize resolve `all` silently


def test_the_metrics_and_the_history_name_the_numeric_columns_and_least_squares_is_exact(fitted):
    project, _ = fitted
    metrics = metrics_of(project)
    assert list(metrics["ols"]) == list(metrics["learnt"]) == list(metrics["inference"]) == [*NUMERIC, "intercept"]
    history_header = (project / "metrics" / "history.csv").read_text().splitlines()[0].split(",")
    assert [name for name in history_header if name in NUMERIC] == NUMERIC
    # The training rows, recomputed here: all but the first round(n × test_fraction) of a permutation drawn
    # with split_seed by NumPy's default generator.
    data = load_params(DataParams, project / "params.yaml")
    columns = shops()
    n = len(columns["sales"])
    held_out = np.random.default_rng(data.split_seed).permutation(n)[:round(n * data.test_fraction)]
    rows = np.setdiff1d(np.arange(n), held_out)
    features = np.column_stack([np.array(columns[name], dtype=float)[rows] for name in NUMERIC])
    intercept, *coefficients = exact_least_squares(features, np.array(columns["sales"])[rows])
    assert metrics["ols"] == pytest.approx(dict(zip(NUMERIC, coefficients), intercept=intercept), rel=1e-9)
    assert metrics["converged"] is True


def test_a_new_numeric_column_in_the_file_reruns_train_and_joins_the_model(fitted, tmp_path):
    project = Path(shutil.copytree(fitted[0], tmp_path / "project", symlinks=True))
    write_shops(project, shops(extra=True))
    dvc(project, "add", SHOPS)
    output = dvc(project, "repro").stdout
    assert {"train", "evaluate", "visualize", "predict"} <= ran(output)
    assert list(metrics_of(project)["ols"]) == [*NUMERIC, "footfall", "intercept"]
