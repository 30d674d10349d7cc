"""A file of yours as data.source is hostile until proven otherwise (README, "Fit your own data"): whatever
is wrong with it, train, evaluate and visualize each stop with one line `error: <file>: <what>: expected
<what>`, exit 1, no traceback, and nothing written. A table of integers is a table like any other.

How read_table words each problem is tested in tests/unit/test_dataset.py; here the real stages prove the
contract, in this process for every case and stage, and as real processes for a few.
"""

import csv
import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet
import pytest

from exact import exact_least_squares, relative_errors
from pipeline.linear import load_weights
from workspace import (
    ROOT, contents, declared, error_line, files_in, isolate, run_in_process, set_params, stage,
)

READERS = ("train", "evaluate", "visualize")  # the stages that read data.source
MINE = "data/mine.csv"


def parquet_bytes(columns: dict) -> bytes:
    sink = pa.BufferOutputStream()
    pyarrow.parquet.write_table(pa.table(columns), sink)
    return sink.getvalue().to_pybytes()


TRUNCATED_PARQUET = parquet_bytes({"x": np.arange(100.0), "y": np.arange(100.0)})[:700]

# 1,001 numeric columns and the target, two rows.
WIDE_CSV = (",".join([*(f"x{i}" for i in range(1001)), "y"]) + "\n" + "\n".join(",".join([str(row)] * 1002)
                                                                              for row in (1, 2)) + "\n").encode()

# case: (file name, its bytes (None: no file), data params, the line it gets after "error: ")
CASES = {
    "the file is missing": (
        MINE, None, {},
        f"{MINE}: not found: expected a CSV or Parquet file "
        "(run `dvc repro` if a stage writes it, `dvc pull` if DVC tracks it)"),
    "a spreadsheet, not CSV or Parquet": (
        "data/mine.xlsx", b"PK\x03\x04 a zip of XML", {},
        "data/mine.xlsx: extension '.xlsx': expected .csv, .parquet, .pq"),
    "binary junk named .csv": (
        MINE, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", {},
        f"{MINE}: holds binary data (a NUL byte at byte 8): expected CSV text"),
    "a truncated Parquet file": (
        "data/mine.parquet", TRUNCATED_PARQUET, {},
        re.compile(r"data/mine\.parquet: not a readable Parquet file \(.+\): expected .+")),
    "a ragged row": (
        MINE, b"x,y\n1,2\n3,4,5\n6,7\n", {},
        f"{MINE}: line 3 has 3 fields: expected 2, as in the header"),
    "a feature column misspelt": (
        MINE, b"area_m2,rooms,price\n50,2,100\n70,3,150\n90,3,170\n", {"features": ["area_m2", "room"],
                                                                     "target": "price"},
        f"{MINE}: column 'room' is missing (did you mean 'rooms'?): expected one of the columns area_m2, rooms, price"),
    "the target column absent": (
        MINE, b"x,z\n1,2\n2,3\n3,5\n", {},
        f"{MINE}: column 'y' is missing: expected one of the columns x, z"),
    "a decimal comma": (
        MINE, b'x,y\n1.5,2\n"2,5",3\n3.5,4\n', {},
        f"{MINE}: column 'x' line 3 holds '2,5': expected a number (a decimal point, not a comma)"),
    "a word in a number column": (
        MINE, b"x,y\n1,2\n2,3\n3,4\n4,n/a?\n", {},
        f"{MINE}: column 'y' line 5 holds 'n/a?': expected a number"),
    "a Parquet target of text": (  # a text feature is a factor; a text target is refused
        "data/mine.parquet", parquet_bytes({"x": [1.0, 2.0, 3.0], "y": ["1", "2", "4"]}), {},
        "data/mine.parquet: column 'y' holds string: expected numbers (an integer or floating-point column)"),
    "empty, NaN and infinite cells": (
        MINE, b"x,y\n1,2\n2,\n3,nan\n4,inf\n5,6\n", {},  # 2 and 3 lack only y: unlabeled rows, no error
        f"{MINE}: 1 row has a missing value (empty, NA, NaN or infinite) in column 'y' (1), the first at line 5: "
        "expected a number in every used column, or data.missing: drop to leave such rows out"),
    "a constant feature": (
        MINE, b"x,y\n2,1\n2,3\n2,4\n2,6\n", {},
        f"{MINE}: feature 'x' is constant (every row is 2.0): expected at least two distinct values"),
    "a feature that is a linear combination of another": (
        MINE, b"x,x2,y\n1,3,2\n2,5,3\n3,7,5\n4,9,4\n5,11,7\n6,13,8\n", {"features": ["x", "x2"]},
        f"{MINE}: feature 'x2' is a linear combination of 'x' and the intercept: expected linearly independent "
        "features"),
    "the target also a feature": (
        MINE, b"x,y\n1,2\n2,3\n3,5\n", {"features": ["x", "y"]},
        "params.yaml: data.target = 'y' is also in data.features: expected a target that is not a feature"),
    "a feature named twice": (
        MINE, b"x,y\n1,2\n2,3\n3,5\n", {"features": ["x", "x"]},
        "params.yaml: data.features = a list ['x', 'x']: names 'x' twice: expected each column once"),
    "a column twice in the header": (
        MINE, b"x,x,y\n1,2,3\n2,3,5\n3,4,4\n", {},
        f"{MINE}: column 'x' appears 2 times in the header: expected one column of that name"),
    "fewer training rows than coefficients + 1": (
        MINE, b"x,y\n1,2\n2,3\n3,5\n", {"test_fraction": 0.2},  # 1 row held out, 2 coefficients
        f"{MINE}: 2 training rows (no degrees of freedom left for a standard error): expected at least 3 (one more "
        "than the 2 coefficients); add rows or lower "
        "data.test_fraction"),
    "an empty file": (
        MINE, b"", {},
        f"{MINE}: is empty (0 bytes): expected a header row, then rows of numbers"),
    "a header only": (
        MINE, b"x,y\n", {},
        f"{MINE}: has no rows: expected a header row, then at least one row of numbers"),
    "data.features: all finds no column but the target": (
        MINE, b"day,y\n2001-02-03,1\n2001-02-04,2\n", {"features": "all"},
        f"{MINE}: data.features = all: no numeric, text or true/false column besides the target 'y' (1 column that "
        "is not numbers: 'day' (date32[day])): expected at least one column to fit"),
    "data.features: all finds more than 1,000 numeric columns": (
        MINE, WIDE_CSV, {"features": "all"},
        f"{MINE}: data.features = all: 1001 numeric columns besides the target 'y': expected at most 1000 "
        "(list the ones to fit in data.features)"),
    "data.features: all and the target absent": (
        MINE, b"x,prices\n1,2\n2,3\n3,5\n", {"features": "all", "target": "price"},
        f"{MINE}: column 'price' is missing (did you mean 'prices'?): expected one of the columns x, prices"),
}
# Only train fits a model to the rows: evaluate and visualize, given a model of one feature, stop at that.
ONLY_TRAIN = {"a feature that is a linear combination of another"}
CONTRACT = re.compile(r"error: (\S+): (.+): expected (.+)")


def with_users_file(reproduced_template, folder, stage_name: str, name: str, content: bytes | None,
                    data: dict):
    """The stage alone with its declared inputs, data.source pointing at a file of yours."""
    isolate(reproduced_template, folder, stage_name)
    set_params(folder, {"data.source": name, "data.features": ["x"], "data.target": "y", "data.test_fraction": 0.0,
                        **{f"data.{key}": value for key, value in data.items()}})
    if content is not None:
        (folder / name).write_bytes(content)
    return folder


def assert_refused(result, before: dict, after: dict, expected) -> None:
    line = error_line(result)  # exit 1, one line on stderr, no traceback
    assert CONTRACT.fullmatch(line), line
    if isinstance(expected, str):
        assert line == f"error: {expected}"
    else:
        assert expected.fullmatch(line.removeprefix("error: ")), line
    assert result.stdout == ""
    assert after == before  # nothing written, nothing changed


@pytest.mark.parametrize("case, stage_name", [
    (case, stage_name) for case in CASES for stage_name in READERS if stage_name == "train" or case not in ONLY_TRAIN
])
def test_a_hostile_file_of_yours_stops_the_stage_with_one_line_and_nothing_written(reproduced_template, tmp_path,
                                                                                 case, stage_name):
    name, content, data, expected = CASES[case]
    folder = with_users_file(reproduced_template, tmp_path, stage_name, name, content, data)
    before = contents(folder)
    result = run_in_process(folder, stage_name)
    assert_refused(result, before, contents(folder), expected)


@pytest.mark.parametrize("case", ["the file is missing", "a decimal comma"])
def test_a_hostile_file_of_yours_is_one_line_from_the_real_train_process_too(reproduced_template, tmp_path, case):
    name, content, data, expected = CASES[case]
    folder = with_users_file(reproduced_template, tmp_path, "train", name, content, data)
    before = contents(folder)
    result = stage(folder, "train", PYTHONDONTWRITEBYTECODE="1")
    assert_refused(result, before, contents(folder), expected)


def read_houses() -> tuple[list[str], np.ndarray]:
    """examples/houses.csv read with Python's csv module: every cell an integer."""
    with (ROOT / "examples/houses.csv").open(newline="") as file:
        rows = list(csv.reader(file))
    assert all(re.fullmatch(r"-?\d+", cell) for row in rows[1:] for cell in row)
    return rows[0], np.array([[float(int(cell)) for cell in row] for row in rows[1:]])


def test_a_table_of_integers_is_fitted_and_every_stage_writes_its_outputs(reproduced_template, tmp_path):
    """examples/houses.csv, the README's worked example, all of it training rows: each stage alone with
    its declared deps (synthesize's points not among them), as DVC would run them one after the other."""
    header, values = read_houses()
    *features, target = header
    project = tmp_path / "project"  # what the stages have written so far
    for name in ["dvc.yaml", "params.yaml", "data/truth.json", *(path.relative_to(ROOT).as_posix()
                                                                 for path in (ROOT / "pipeline").glob("*.py"))]:
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_bytes((reproduced_template / name).read_bytes())
    (project / "data/houses.csv").write_bytes((ROOT / "examples/houses.csv").read_bytes())
    set_params(project, {"data.source": "data/houses.csv", "data.features": features, "data.target": target,
                         "data.test_fraction": 0.0})
    for stage_name in READERS:
        folder = isolate(project, tmp_path / stage_name, stage_name)
        inputs = files_in(folder)
        result = run_in_process(folder, stage_name)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        outs = declared(stage_name, project)["outs"]
        assert files_in(folder) - inputs == set(outs)
        for name in outs:
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            (project / name).write_bytes((folder / name).read_bytes())

    assert load_weights(project / "models/model.safetensors", tuple(features), True).features == tuple(features)
    metrics = json.loads((project / "metrics/metrics.json").read_text())
    assert set(metrics) == {"learnt", "ols", "gap", "converged", "train", "coefficient_gap", "residual_sd", "df_resid", "r2_adj", "f", "f_p", "condition_number", "inference", "dtype", "epochs_run", "device", "processes",
                            "rows_dropped", "rows_unlabeled",
                            "r2", "log_likelihood", "aic", "bic", "n_coefficients", "df_model", "cov_type"}  # no true line, no test rows
    assert metrics["train"]["n"] == len(values)
    exact = exact_least_squares(values[:, :-1], values[:, -1])
    ols = [metrics["ols"]["intercept"]] + [metrics["ols"][name] for name in features]
    assert max(relative_errors(ols, exact)) < 1e-9


def test_a_table_whose_least_squares_coefficient_float32_cannot_hold_is_refused_before_training(reproduced_template,
                                                                                                tmp_path):
    """y rises by about 10¹⁰ while x rises by 10⁻³⁰: the slope, near 10⁴⁰, is beyond float32 (3.4e38)."""
    table = b"x,y\n1e-30,1e10\n2e-30,3e10\n3e-30,2e10\n4e-30,5e10\n5e-30,4e10\n"
    folder = with_users_file(reproduced_template, tmp_path, "train", MINE, table, {})
    before = contents(folder)
    result = run_in_process(folder, "train")
    line = error_line(result)
    assert CONTRACT.fullmatch(line) and line.startswith(f"error: {MINE}: ") and "train.dtype" in line, line
    assert result.stdout == "" and contents(folder) == before


def test_a_parquet_file_named_pq_is_accepted_as_the_readme_says(reproduced_template, tmp_path):
    columns = {"x": np.arange(20.0), "y": 3.0 * np.arange(20.0) - 2.0 + np.sin(np.arange(20.0))}
    folder = with_users_file(reproduced_template, tmp_path, "train", "data/mine.pq", parquet_bytes(columns), {})
    result = run_in_process(folder, "train")
    assert result.returncode == 0, result.stderr
    assert set(declared("train")["outs"]) <= files_in(folder)


def test_all_on_a_parquet_file_trains_on_its_numeric_text_and_true_false_columns(reproduced_template, tmp_path):
    rng = np.random.default_rng(5)
    x1, x2 = np.round(rng.uniform(0, 10, 30), 2), rng.integers(0, 50, 30)
    table = parquet_bytes({"city": pa.array(["Paris", "Lyon", "Nice"] * 10), "x1": x1,
                           "sold": pa.array([True, False] * 15), "x2": pa.array(x2, pa.int32()),
                           "y": np.round(2 * x1 - 0.5 * x2 + 1 + rng.normal(0, 0.1, 30), 3)})
    folder = with_users_file(reproduced_template, tmp_path, "train", "data/mine.parquet", table, {"features": "all"})
    result = run_in_process(folder, "train")
    assert result.returncode == 0, result.stderr
    assert "data.features = all" not in result.stdout  # nothing skipped, nothing said
    columns = ("city[T.Nice]", "city[T.Paris]", "sold[T.True]", "x1", "x2")
    assert load_weights(folder / "models/model.safetensors", columns, True).features == columns
