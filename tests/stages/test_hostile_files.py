"""Hostile or broken files: a model file that is not safetensors weights, a damaged Parquet file, a
params.yaml that is no params at all. Each gets one line naming the file, exit 1, no traceback, and
nothing written; a payload in a model file never runs. (tests/unit/test_linear.py words each bad weights file;
tests/stages/test_user_files.py does the same for a file of yours as data.source.)"""

import contextlib
import json
import pickle
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet
import pytest
import torch
from ruamel.yaml import YAML
from safetensors.numpy import save

from workspace import STAGES, contents, declared, error_line, files_in, isolate, run_in_process, set_params, stage

MODEL = "models/model.safetensors"
POINTS = "data/points.parquet"
PARAMS = "params.yaml"


class Payload:
    """Unpickling this runs code: it creates the file `marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def refused(folder, stage_name: str, in_process: bool = True) -> str:
    """Run the stage; check it refused in one line and wrote nothing; return the line."""
    before = contents(folder)
    line = error_line(run_in_process(folder, stage_name) if in_process else stage(folder, stage_name))
    assert contents(folder) == before
    return line


# Model files ------------------------------------------------------------------------------------------

def write_raw_pickle(path, marker):
    path.write_bytes(pickle.dumps(Payload(marker)))


def write_torch_archive_with_payload(path, marker):
    torch.save({"weight": torch.zeros(1, 1), "bias": torch.zeros(1), "extra": Payload(marker)}, path)


@pytest.mark.parametrize("write", [write_raw_pickle, write_torch_archive_with_payload])
def test_a_model_file_carrying_a_pickle_payload_is_refused_and_the_payload_never_runs(reproduced_template, tmp_path,
                                                                                      write):
    folder = isolate(reproduced_template, tmp_path / "project", "evaluate")
    marker = tmp_path / "payload-ran"
    write(folder / MODEL, marker)
    # The payload is real: an unsafe load runs it (and may then fail on what the payload returned). A copy,
    # as torch.load hands a file named *.safetensors to safetensors.
    shutil.copy2(folder / MODEL, tmp_path / "model.pt")
    with contextlib.suppress(Exception):
        torch.load(tmp_path / "model.pt", weights_only=False)
    assert marker.exists()
    marker.unlink()

    line = refused(folder, "evaluate", in_process=False)
    assert not marker.exists()
    assert line.startswith(f"error: {MODEL}: is a pickle")


def weights(**changes) -> bytes:
    """The weights train writes for the default params (one feature, an intercept), changed."""
    return save({"weight": np.array([[2.5]], np.float32), "bias": np.array([-1.0], np.float32), **changes})


MODEL_FILES = {
    "a truncated file": lambda path: path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2]),
    "weights for two features": lambda path: path.write_bytes(weights(weight=np.zeros((1, 2), np.float32))),
    "weights without the bias": lambda path: path.write_bytes(save({"weight": np.zeros((1, 1), np.float32)})),
    "a NaN weight": lambda path: path.write_bytes(weights(weight=np.array([[np.nan]], np.float32))),
}


@pytest.mark.parametrize("stage_name", ["evaluate", "predict"])
@pytest.mark.parametrize("case", MODEL_FILES)
def test_a_model_file_that_is_not_the_weights_of_the_model_is_refused_in_one_line(reproduced_template, tmp_path,
                                                                                  stage_name, case):
    folder = isolate(reproduced_template, tmp_path, stage_name)
    MODEL_FILES[case](folder / MODEL)
    assert refused(folder, stage_name).startswith(f"error: {MODEL}: ")


def test_predict_refuses_weights_that_do_not_say_what_they_mean(reproduced_template, tmp_path):
    """predict takes the columns from the weights file: weights without its metadata are refused."""
    folder = isolate(reproduced_template, tmp_path, "predict")
    (folder / MODEL).write_bytes(weights())
    assert refused(folder, "predict") == (
        f"error: {MODEL}: holds no 'linear_model' metadata: expected weights written by train, which say what "
        "they mean (run `dvc checkout models/` to restore it, or `dvc repro`)")


def test_undamaged_weights_written_the_same_way_are_read(reproduced_template, tmp_path):
    """So each case above is refused for what it changed."""
    folder = isolate(reproduced_template, tmp_path, "evaluate")
    (folder / MODEL).write_bytes(weights())
    result = run_in_process(folder, "evaluate")
    assert result.returncode == 0, result.stderr


# The Parquet file ----------------------------------------------------------------------------------------

def edit_table(edit):
    def write(path):
        table = pyarrow.parquet.read_table(path)
        pyarrow.parquet.write_table(edit({name: table.column(name).to_numpy() for name in table.column_names}), path)
    return write


def with_value(column: str, value: float):
    def edit(columns):
        columns[column] = columns[column].copy()
        columns[column][3] = value
        return pa.table(columns)
    return edit


POINTS_FILES = {
    "truncated": lambda path: path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2]),
    "empty": lambda path: path.write_bytes(b""),
    "not Parquet at all": lambda path: path.write_text("x,y\n1,2\n3,4\n"),
    "missing column y": edit_table(lambda columns: pa.table({"x": columns["x"]})),
    "x renamed": edit_table(lambda columns: pa.table({"X": columns["x"], "y": columns["y"]})),
    "x as text": edit_table(lambda columns: pa.table({"x": columns["x"].astype(str), "y": columns["y"]})),
    "an empty value": lambda path: pyarrow.parquet.write_table(
        pa.table({"x": pa.array([1.0, None, 3.0]), "y": pa.array([1.0, 2.0, 3.0])}), path),
    "NaN in x": edit_table(with_value("x", np.nan)),
    "infinity in x": edit_table(with_value("x", np.inf)),
    "minus infinity in y": edit_table(with_value("y", -np.inf)),
    "a huge x": edit_table(with_value("x", 1e300)),
    "a huge y": edit_table(with_value("y", -3e38)),
    "one row": edit_table(lambda columns: pa.table({name: values[:1] for name, values in columns.items()})),
    "no rows": edit_table(lambda columns: pa.table({name: values[:0] for name, values in columns.items()})),
}
READERS = [stage_name for stage_name in STAGES if POINTS in declared(stage_name)["deps"]]
# predict reads the points as new rows, not to fit: it needs no target and no second row, and x may take one value.
PREDICTING = [stage_name for stage_name in READERS if "predict" in declared(stage_name)["params"]]
FITTING = [stage_name for stage_name in READERS if stage_name not in PREDICTING]
PREDICTABLE = {"missing column y", "one row"}


@pytest.mark.parametrize("stage_name, case", [
    (stage_name, case) for stage_name in READERS for case in POINTS_FILES
    if not (stage_name in PREDICTING and case in PREDICTABLE)
])
def test_a_broken_points_file_is_refused_in_one_line_naming_it(reproduced_template, tmp_path, stage_name, case):
    folder = isolate(reproduced_template, tmp_path, stage_name)
    POINTS_FILES[case](folder / POINTS)
    assert refused(folder, stage_name).startswith(f"error: {POINTS}: ")


@pytest.mark.parametrize("stage_name", PREDICTING)
@pytest.mark.parametrize("case", sorted(PREDICTABLE) + ["same x"])
def test_points_without_y_one_row_or_one_x_are_predicted(reproduced_template, tmp_path, stage_name, case):
    folder = isolate(reproduced_template, tmp_path, stage_name)
    edit = POINTS_FILES.get(case) or edit_table(lambda columns: pa.table({"x": np.full(len(columns["x"]), 2.0),
                                                                          "y": columns["y"]}))
    edit(folder / POINTS)
    set_params(folder, {"predict.rows": "new"})  # data.source's rows need y, and two distinct x
    result = run_in_process(folder, stage_name)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    (output,) = declared(stage_name)["outs"]
    names = pyarrow.parquet.read_schema(folder / output).names
    expected = ["x", "prediction", "lower", "upper", "se_fit"] if case == "missing column y" else \
        ["x", "y", "prediction", "lower", "upper", "se_fit", "residual"]
    assert names == expected


@pytest.mark.parametrize("stage_name", FITTING)
def test_points_that_all_share_one_x_are_refused_in_one_line(reproduced_template, tmp_path, stage_name):
    folder = isolate(reproduced_template, tmp_path, stage_name)
    edit_table(lambda columns: pa.table({"x": np.full(len(columns["x"]), 2.0), "y": columns["y"]}))(folder / POINTS)
    assert refused(folder, stage_name) == (
        f"error: {POINTS}: feature 'x' is constant (every row is 2.0): expected at least two distinct values"
    )


ACCEPTED_POINTS = {
    "y as float32": edit_table(lambda columns: pa.table({"x": columns["x"], "y": columns["y"].astype(np.float32)})),
    "x as integers": edit_table(lambda columns: pa.table({"x": np.round(columns["x"]).astype(np.int64),
                                                         "y": columns["y"]})),
}


@pytest.mark.parametrize("stage_name", READERS)
def test_a_row_whose_only_missing_value_is_y_is_unlabeled_in_every_stage(reproduced_template, tmp_path, stage_name):
    """Not fitted or scored, counted, and predicted (row index 3), whatever data.missing says (error here)."""
    folder = isolate(reproduced_template, tmp_path, stage_name)
    edit_table(with_value("y", np.nan))(folder / POINTS)
    result = run_in_process(folder, stage_name)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    line = f"{POINTS}: left out 1 row without a value of 'y' (unlabeled): not fitted or scored; predict predicts them"
    assert (line in result.stdout) == (stage_name in ("train", "evaluate"))
    if stage_name == "evaluate":
        metrics = json.loads((folder / "metrics/metrics.json").read_text())
        assert metrics["rows_unlabeled"] == 1 and metrics["train"]["n"] + metrics["test"]["n"] == 999
    if stage_name == "predict":
        predictions = pyarrow.parquet.read_table(folder / "data/predictions.parquet")
        assert predictions.num_rows == 1000 and predictions.column("split")[3].as_py() == "unlabeled"
        assert predictions.column("residual")[3].as_py() is None and predictions.column("prediction")[3].is_valid


@pytest.mark.parametrize("stage_name", READERS)
@pytest.mark.parametrize("case", ACCEPTED_POINTS)
def test_points_in_float32_or_integer_columns_are_read(reproduced_template, tmp_path, stage_name, case):
    folder = isolate(reproduced_template, tmp_path, stage_name)
    ACCEPTED_POINTS[case](folder / POINTS)
    result = run_in_process(folder, stage_name)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert set(declared(stage_name)["outs"]) <= files_in(folder)


# params.yaml ------------------------------------------------------------------------------------------

PARAMS_FILES = {
    "not valid YAML": "train:\n  lr: [0.05\n",
    "indented with a tab": "train:\n\tlr: 0.05\n",
    "a key given twice": "".join(f"{section}:\n  {key}: 1\n  {key}: 2\n"
                                 for section, key in [("synthesize", "m"), ("train", "lr"), ("visualize", "dpi")]),
    "empty": "",
    "only comments": "# nothing here yet\n",
    "a list": "- synthesize\n- train\n- visualize\n",
    "a number": "42\n",
    "not UTF-8": b"train:\n  lr: 0.05 # \xe9t\xe9\n",
    "missing": None,
}
PARAMS_READERS = [stage_name for stage_name in STAGES if declared(stage_name)["params"]]


@pytest.mark.parametrize("stage_name", PARAMS_READERS)
@pytest.mark.parametrize("case", PARAMS_FILES)
def test_a_params_yaml_that_holds_no_params_is_refused_in_one_line_naming_it(reproduced_template, tmp_path,
                                                                             stage_name, case):
    folder = isolate(reproduced_template, tmp_path, stage_name)
    content = PARAMS_FILES[case]
    if content is None:
        (folder / PARAMS).unlink()
    elif isinstance(content, bytes):
        (folder / PARAMS).write_bytes(content)
    else:
        (folder / PARAMS).write_text(content)
    assert refused(folder, stage_name).startswith(f"error: {PARAMS}: ")


def sections_read(stage_name: str) -> list[str]:
    """The sections of params.yaml a stage reads, whole or some of their keys."""
    return sorted({entry.split(".")[0] for entry in declared(stage_name)["params"]})


@pytest.mark.parametrize("stage_name, section", [
    (stage_name, section) for stage_name in PARAMS_READERS for section in sections_read(stage_name)
])
@pytest.mark.parametrize("damage", ["missing", "a list", "null"])
def test_a_params_yaml_lacking_a_section_the_stage_reads_is_refused_in_one_line_naming_it(
        reproduced_template, tmp_path, stage_name, section, damage):
    folder = isolate(reproduced_template, tmp_path, stage_name)
    yaml = YAML()
    document = yaml.load(folder / PARAMS)
    if damage == "missing":
        del document[section]
    else:
        document[section] = {"a list": [1], "null": None}[damage]
    yaml.dump(document, folder / PARAMS)
    line = refused(folder, stage_name)
    expected = f"section '{section}' is missing" if damage == "missing" else f"{section} = "
    assert line.startswith(f"error: {PARAMS}: {expected}") and "expected a mapping of" in line


def test_a_broken_params_yaml_is_one_line_from_the_real_stage_process_too(reproduced_template, tmp_path):
    folder = isolate(reproduced_template, tmp_path, "synthesize")
    (folder / PARAMS).write_text(PARAMS_FILES["not valid YAML"])
    assert refused(folder, "synthesize", in_process=False).startswith(f"error: {PARAMS}: not valid YAML")
