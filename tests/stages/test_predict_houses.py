"""Stage predict on its own: the houses fitted as a curve (data.degree 2), then new houses without a price
predicted from what the weights file says of itself; and rows it refuses, in one line, writing nothing."""

import json
import math
import shutil
from fractions import Fraction

import numpy as np
import pyarrow
import pyarrow.csv
import pyarrow.parquet
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file
from scipy.special import stdtr

from exact import exact_inference
from workspace import ROOT, contents, dvc, error_line, isolate, run_in_process, set_params, stage

FEATURES = ["area_m2", "rooms", "age_years"]
LEVEL = 0.9


def run(folder, stage_name: str) -> str:
    result = run_in_process(folder, stage_name)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def houses(reproduced_template, tmp_path_factory):
    """The houses fitted with every row for training and each feature squared too, then the new houses
    predicted into a CSV file."""
    project = shutil.copytree(reproduced_template, tmp_path_factory.mktemp("houses") / "project", symlinks=True)
    for name in ("houses.csv", "new_houses.csv"):
        shutil.copy2(ROOT / "examples" / name, project / "data" / name)
    dvc(project, "add", "data/houses.csv", "data/new_houses.csv")  # tracked, as train asks of data.source
    set_params(project, {"data.source": "data/houses.csv", "data.features": FEATURES, "data.target": "price_eur",
                         "data.degree": 2, "data.test_fraction": 0.0, "predict.rows": "new", "predict.source": "data/new_houses.csv",
                         "predict.output": "data/new_prices.csv", "predict.level": LEVEL})
    for stage_name in ("train", "evaluate"):
        run(project, stage_name)
    printed = run(project, "predict")
    return project, printed


def test_the_weights_file_names_its_columns_powers_included(houses):
    project, _ = houses
    with safe_open(project / "models/model.safetensors", framework="numpy") as file:
        described = json.loads(file.metadata()["linear_model"])
    assert described == {
        "features": [*FEATURES, "area_m2^2", "rooms^2", "age_years^2"], "raw_features": FEATURES, "degree": 2,
        "target": "price_eur", "fit_intercept": True, "dtype": "float32"}


def read_csv(path) -> list[list[str]]:
    lines = path.read_text().splitlines()
    return [line.split(",") for line in lines]


def test_new_houses_get_the_trained_models_price_and_a_prediction_interval(houses):
    project, printed = houses
    rows = read_csv(project / "data/new_prices.csv")
    assert rows[0] == [*FEATURES, "prediction", "lower", "upper", "se_fit"]  # no price in the new houses: no residual
    new = [[Fraction(cell) for cell in line.split(",")] for line in
           (project / "data/new_houses.csv").read_text().splitlines()[1:]]
    found = [[float(cell) for cell in row] for row in rows[1:]]
    assert [row[:3] for row in found] == [[float(value) for value in row] for row in new]
    # The prediction: the weights as stored, applied to x and x² in rational arithmetic.
    weights = load_file(project / "models/model.safetensors")
    coefficients = [Fraction(float(value)) for value in weights["weight"][0]]
    intercept = Fraction(float(weights["bias"][0]))
    for row, x in zip(found, new):
        exact = intercept + sum(c * v for c, v in zip(coefficients, [*x, *(value**2 for value in x)]))
        assert row[3] == pytest.approx(float(exact), rel=1e-12)
    # The interval: t · sqrt(s² (1 + x₀ᵀ(XᵀX)⁻¹x₀)) from the exact least-squares fit of all 60 houses, with
    # the same t on every row, the one whose Student's t probability is 1 − (1 − level)/2 on 60 − 7 degrees
    # of freedom.
    table = pyarrow.csv.read_csv(project / "data/houses.csv")
    raw = np.column_stack([table.column(name).to_numpy().astype(float) for name in FEATURES])
    exact = exact_inference(np.column_stack([raw, raw**2]), table.column("price_eur").to_numpy().astype(float))
    inverse, s2 = exact["inverse"], exact["s2"]
    quantiles = []
    for row, x in zip(found, new):
        x0 = [Fraction(1), *x, *(value**2 for value in x)]
        leverage = sum(x0[i] * inverse[i][j] * x0[j] for i in range(7) for j in range(7))
        half_width = (row[5] - row[4]) / 2
        assert (row[4] + row[5]) / 2 == pytest.approx(row[3], rel=1e-12)
        quantiles.append(half_width / math.sqrt(s2 * (1 + leverage)))
        assert row[6] == pytest.approx(math.sqrt(s2 * leverage), rel=1e-10)  # se_fit: R's se.fit
    assert max(quantiles) == pytest.approx(min(quantiles), rel=1e-9)
    assert stdtr(60 - 7, quantiles[0]) == pytest.approx(1 - (1 - LEVEL) / 2, rel=1e-9)
    assert printed == ("predicted 4 rows of data/new_houses.csv into data/new_prices.csv: prediction, "
                       "lower and upper (its 90% prediction interval), se_fit\n")


def test_the_same_rows_give_the_same_bytes(houses, tmp_path):
    project, _ = houses
    folder = isolate(project, tmp_path, "predict")
    run(folder, "predict")
    assert (folder / "data/new_prices.csv").read_bytes() == (project / "data/new_prices.csv").read_bytes()


ROWS = {  # the rows to predict, and the end of the one line that refuses them
    "a misspelt column": (b"area_m2,room,age_years\n54,2,35\n", "column 'rooms' is missing (did you mean 'room'?)"),
    "a word for a number": (b"area_m2,rooms,age_years\n54,two,35\n", "column 'rooms' line 2 holds 'two': expected a number"),
    "a missing value": (b"area_m2,rooms,age_years\n54,,35\n", "1 row has a missing value (empty, NA, NaN or infinite) in column 'rooms' (1)"),
    "no rows": (b"area_m2,rooms,age_years\n", "has no rows"),
}


@pytest.mark.parametrize("case", ROWS)
def test_rows_it_cannot_predict_are_refused_in_one_line_and_nothing_is_written(houses, tmp_path, case):
    project, _ = houses
    folder = isolate(project, tmp_path, "predict")
    (folder / "data/new_prices.csv").unlink(missing_ok=True)
    content, message = ROWS[case]
    (folder / "data/new_houses.csv").write_bytes(content)
    before = contents(folder)
    line = error_line(stage(folder, "predict"))  # the real process: exit 1, one line, no traceback
    assert line.startswith(f"error: data/new_houses.csv: {message}")
    assert contents(folder) == before



def test_rows_without_the_models_columns_name_predict_source_in_the_line(houses, tmp_path):
    # The usual cause: data.source changed to the houses, predict.source left at synthesize's points.
    project, _ = houses
    folder = isolate(project, tmp_path, "predict")
    set_params(folder, {"predict.source": "data/points.parquet"})
    (folder / "data").mkdir(exist_ok=True)
    pyarrow.parquet.write_table(pyarrow.table({"x": [1.0, 2.0], "y": [3.0, 4.0]}), folder / "data/points.parquet")
    line = error_line(stage(folder, "predict"))
    assert line.startswith("error: data/points.parquet: columns 'area_m2', 'rooms', 'age_years' are missing")
    assert line.endswith("(predict.source = 'data/points.parquet': the rows to predict need the model's feature "
                         "columns area_m2, rooms, age_years; predict.rows: fitted predicts data.source's rows)")
