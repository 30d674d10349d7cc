"""Random damage to params.yaml, to synthesize's Parquet file and to a CSV file of yours as data.source: every
case ends in a valid run or in one clean error line, never a traceback and never a partial output.

The stages run in this process (through run_stage, as `python -m` runs them) to try hundreds of cases
quickly; tests/stages/test_hostile_files.py, tests/stages/test_user_files.py and tests/stages/test_isolation.py run the real
processes. How read_table itself takes random CSV files is tests/unit/test_dataset_fuzz.py.
"""

import io
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet
import pytest
from hypothesis import HealthCheck, assume, currently_in_test_context, event, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML, YAMLError

from pipeline import files
from pipeline.dataset import read_table
from pipeline.linear import INTERCEPT, load_weights
from pipeline.params import DataParams, PredictParams, SynthesizeParams, TrainParams, load_params
from workspace import (
    STAGES, contents, declared, error_line, files_in, isolate, run_in_process, set_params,
)

PARAMS_READERS = [stage_name for stage_name in STAGES if declared(stage_name)["params"]]
# The stages that read data.source, synthesize's points by default.
POINTS_READERS = [stage_name for stage_name in STAGES if str(files.POINTS) in declared(stage_name)["deps"]]
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Valid values can still be costly (10⁸ points, 10⁶ epochs, one row per step); this test is about bad
# values, so a case beyond these is skipped rather than run.
AFFORDABLE = {"n_points": 100_000, "epochs": 1_000, "dpi": 200}
SMALLEST_BATCH = 64


@pytest.fixture(scope="module")
def base_params(reproduced_template, tmp_path_factory) -> str:
    """The project's params.yaml, with a low dpi and few epochs to keep each case fast."""
    folder = tmp_path_factory.mktemp("params")
    shutil.copy2(reproduced_template / "params.yaml", folder / "params.yaml")
    set_params(folder, {"visualize.dpi": 20, "train.epochs": 30})
    return (folder / "params.yaml").read_text()


def run_case(source: Path, stage_name: str, params_text: str | bytes, data: dict[str, bytes] | None = None) -> None:
    """Run the stage alone with its inputs from `source`, but this params.yaml (and these data files); check
    that it ends in a valid run or one clean line, and in the second case wrote nothing."""
    with tempfile.TemporaryDirectory() as temporary:
        folder = isolate(source, Path(temporary), stage_name)
        (folder / "params.yaml").write_bytes(params_text if isinstance(params_text, bytes) else params_text.encode())
        for name, content in (data or {}).items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(content)
        before = contents(folder)

        result = run_in_process(folder, stage_name)

        if result.returncode == 0:
            assert result.stderr == ""
            # The outs as DVC resolves them from this params.yaml: predict.output may name another file.
            outs = declared(stage_name, params_file=folder / "params.yaml")["outs"]
            assert files_in(folder) == set(before) | set(outs)
            readable(folder, stage_name)
            count(f"{stage_name}: ran")
        else:
            _, path, found, *_ = error_line(result).split(": ")
            count(f"{stage_name}: refused ({path}: {' '.join(found.split()[:3])})")
            assert contents(folder) == before


def count(kind: str) -> None:
    """Tell hypothesis the kind of case it tried (its statistics); a plain test's case is not counted."""
    if currently_in_test_context():
        event(kind)


def readable(folder: Path, stage_name: str) -> None:
    """What a valid run wrote, the next stage can read."""
    params = folder / "params.yaml"
    if stage_name == "synthesize":
        features = load_params(SynthesizeParams, params).feature_names
        read_table(folder / files.POINTS, features, "y")
        truth = files.read_json(folder / files.TRUTH)
        files.numbers(files.TRUTH, truth, (*features, INTERCEPT))
    elif stage_name == "train":
        data, train = load_params(DataParams, params), load_params(TrainParams, params)
        features = data.columns
        load_weights(folder / files.MODEL, features, train.fit_intercept)  # finite, of the right shape
        history = files.read_history(folder / files.HISTORY, ("epoch", "train_loss", *features, INTERCEPT))
        # Every epoch, or fewer where training stopped once converged.
        rows = len(history["epoch"])
        assert rows == train.epochs + 1 or (train.stop_when_converged and rows < train.epochs + 1)
        assert all(len(column) == rows and np.isfinite(column).all() for column in history.values())
    elif stage_name == "evaluate":
        metrics = files.read_json(folder / files.METRICS)
        assert {"learnt", "ols", "gap", "converged", "train"} <= set(metrics)
    elif stage_name == "predict":
        predict = load_params(PredictParams, params)
        table = pyarrow.parquet.read_table(folder / predict.output)
        names = table.column_names
        assert names[names.index("prediction"):][:4] == ["prediction", "lower", "upper", "se_fit"]
        predicted = np.ones(table.num_rows, dtype=bool) if "split" not in names else \
            np.asarray(table.column("split").to_pylist()) != "dropped"  # a dropped row's computed columns are empty
        assert all(np.isfinite(table.column(name).to_numpy(zero_copy_only=False)[predicted]).all()
                   for name in ("prediction", "lower", "upper", "se_fit"))
    else:  # the pictures, and the tables of the interactive charts
        outs = declared(stage_name)["outs"]
        assert all((folder / path).read_bytes().startswith(b"\x89PNG") for path in outs if path.endswith(".png"))
        assert all((folder / path).read_bytes().startswith(b"epoch,") for path in outs if path.endswith(".csv"))


def affordable(text: str | bytes) -> bool:
    try:
        document = YAML(typ="safe").load(text)
    except (YAMLError, UnicodeDecodeError):
        return True
    sections = [section for section in document.values() if isinstance(section, dict)] \
        if isinstance(document, dict) else []
    return not any(
        type(section.get(key)) is int and section[key] > limit
        for section in sections for key, limit in AFFORDABLE.items()
    ) and not any(type(section.get("batch_size")) is int and section["batch_size"] < SMALLEST_BATCH
                  for section in sections)


# params.yaml -------------------------------------------------------------------------------------------

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 10),
    st.sampled_from([2**31, 2**32, 2**63, -(2**63), 10**30]),  # beyond every range
    st.floats(),  # NaN, ±inf, huge, subnormal
    st.sampled_from([1e-300, 5e-324, 1e300, -0.0, 1e6, -1e6, 0.5, 0.9]),
    st.text(max_size=8),
    st.sampled_from(["x", "y", "sgd", "adam", "lbfgs", "float64", "data/points.parquet", "../points.csv", "/x.csv"]),
    st.lists(st.integers(), max_size=3),
    st.lists(st.sampled_from(["x", "y", "x1", "intercept", ""]), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
keys = st.sampled_from(["m", "c", "noise", "n_points", "x_min", "x_max", "seed", "source", "features", "target",
                        "test_fraction", "split_seed", "optimizer", "lr", "momentum", "epochs", "batch_size", "dtype",
                        "standardize", "fit_intercept", "tolerance", "dpi", "max_points", "output", "level",
                        "unknown", "M", "lr "])
sections = st.sampled_from(["synthesize", "data", "train", "visualize", "evaluate", "predict", "extra"])
mutations = st.one_of(
    st.tuples(st.just("set"), sections, keys, values),
    st.tuples(st.just("delete key"), sections, keys),
    st.tuples(st.just("delete section"), sections),
    st.tuples(st.just("replace section"), sections, values),
    st.tuples(st.just("replace document"), values),
)


def mutate(document, mutation: tuple):
    kind, *arguments = mutation
    if kind == "replace document":
        return arguments[0]
    if not isinstance(document, dict):
        return document
    if kind == "set" and isinstance(document.get(arguments[0]), dict):
        document[arguments[0]][arguments[1]] = arguments[2]
    elif kind == "delete key" and isinstance(document.get(arguments[0]), dict):
        document[arguments[0]].pop(arguments[1], None)
    elif kind == "delete section":
        document.pop(arguments[0], None)
    elif kind == "replace section":
        document[arguments[0]] = arguments[1]
    return document


@settings(FUZZ, max_examples=200)
@given(stage_name=st.sampled_from(PARAMS_READERS), changes=st.lists(mutations, min_size=1, max_size=4))
def test_random_changes_to_params_yaml_end_in_a_valid_run_or_one_clean_line(reproduced_template, base_params,
                                                                            stage_name, changes):
    yaml = YAML(typ="safe")
    document = yaml.load(base_params)
    for change in changes:
        document = mutate(document, change)
    text = io.StringIO()
    yaml.dump(document, text)
    assume(affordable(text.getvalue()))
    run_case(reproduced_template, stage_name, text.getvalue())


def test_an_edit_that_moves_predict_output_is_a_valid_run_that_writes_there(reproduced_template, base_params):
    # An edit the fuzz below once made: `output: (data/predictions.parquet` is a path like any other.
    text = base_params.replace("output: data/predictions.parquet", "output: (data/predictions.parquet")
    assert text != base_params
    run_case(reproduced_template, "predict", text)


insertions = st.binary(max_size=3) | st.sampled_from([b"0", b"-", b".", b":", b" ", b"\n", b"e9"])


@settings(FUZZ, max_examples=100)
@given(stage_name=st.sampled_from(PARAMS_READERS), data=st.data())
def test_random_edits_to_the_text_of_params_yaml_end_in_a_valid_run_or_one_clean_line(reproduced_template, base_params,
                                                                                      stage_name, data):
    text = base_params.encode()
    for _ in range(data.draw(st.integers(1, 3))):
        start = data.draw(st.integers(0, len(text)))
        end = data.draw(st.integers(start, min(len(text), start + 4)))
        text = text[:start] + data.draw(insertions) + text[end:]
    assume(affordable(text))
    run_case(reproduced_template, stage_name, text)


# synthesize's Parquet file, as data.source ---------------------------------------------------------------

cells = st.one_of(st.floats(), st.sampled_from([np.nan, np.inf, -np.inf, 1e300, -1e300, 5e-324, 0.0]), st.none())


def changed_table(columns: dict[str, np.ndarray], data) -> pa.Table:
    kind = data.draw(st.sampled_from(["drop", "rename", "cast", "cells", "rows", "extra column", "same x"]))
    name = data.draw(st.sampled_from(sorted(columns)))
    arrays = {key: pa.array(value) for key, value in columns.items()}
    if kind == "drop":
        del arrays[name]
    elif kind == "rename":
        arrays[data.draw(st.sampled_from(["X", "z", "", "y" if name == "x" else "x"]))] = arrays.pop(name)
    elif kind == "cast":
        new_type = data.draw(st.sampled_from([pa.float32(), pa.int64(), pa.string(), pa.float16()]))
        arrays[name] = arrays[name].cast(new_type, safe=False)
    elif kind == "cells":
        values = arrays[name].to_pylist()
        for _ in range(data.draw(st.integers(1, 5))):
            values[data.draw(st.integers(0, len(values) - 1))] = data.draw(cells)
        arrays[name] = pa.array(values, pa.float64())
    elif kind == "rows":
        rows = data.draw(st.integers(0, 3) | st.integers(0, len(columns["x"])))
        arrays = {key: value[:rows] for key, value in arrays.items()}
    elif kind == "extra column":
        arrays["extra"] = pa.array(np.zeros(len(columns["x"])))
    else:
        arrays["x"] = pa.array(np.full(len(columns["x"]), data.draw(st.floats(allow_nan=False, allow_infinity=False))))
    return pa.table(arrays)


@settings(FUZZ, max_examples=150)
@given(stage_name=st.sampled_from(POINTS_READERS), data=st.data())
def test_random_damage_to_the_points_file_ends_in_a_valid_run_or_one_clean_line(reproduced_template, base_params,
                                                                               stage_name, data):
    points = (reproduced_template / files.POINTS).read_bytes()
    if data.draw(st.booleans()):  # damage the bytes: truncate, or overwrite a few
        if data.draw(st.booleans()):
            points = points[:data.draw(st.integers(0, len(points) - 1))]
        else:
            points = bytearray(points)
            for _ in range(data.draw(st.integers(1, 8))):
                points[data.draw(st.integers(0, len(points) - 1))] = data.draw(st.integers(0, 255))
            points = bytes(points)
    else:  # damage the table: columns, types, values, rows
        table = pyarrow.parquet.read_table(reproduced_template / files.POINTS)
        columns = {name: table.column(name).to_numpy() for name in table.column_names}
        sink = pa.BufferOutputStream()
        pyarrow.parquet.write_table(changed_table(columns, data), sink)
        points = sink.getvalue().to_pybytes()
    run_case(reproduced_template, stage_name, base_params, {str(files.POINTS): points})


# A CSV file of yours, as data.source -------------------------------------------------------------------

MINE = "data/mine.csv"
NUMBERS = st.one_of(
    st.integers(-1000, 1000).map(str),
    st.floats(-1e6, 1e6, allow_nan=False).map(repr),
    st.floats(-1e15, 1e15, allow_nan=False).map(lambda value: f"{value:.3e}"),
)
ODD_CELLS = st.one_of(
    st.sampled_from(["", "nan", "inf", "-inf", "NA", '"1,5"', "1,5", "abc", "1e16", "1e-300", '"', " 7 ", "0x1"]),
    st.text(max_size=4),
)


@st.composite
def users_csvs(draw) -> bytes:
    """Mostly a table of numbers under a header naming x and y among others; sometimes odd cells, a ragged
    row, a header only, or bytes that are no CSV at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=64))
    header = draw(st.permutations(["x", "y", *draw(st.lists(st.sampled_from(["z", "X", "", "y", "x "]), max_size=2))]))
    lines = [",".join(header)]
    odd_cells = draw(st.integers(0, 3))
    for _ in range(draw(st.integers(0, 20))):
        row = [draw(ODD_CELLS if draw(st.integers(0, 30)) < odd_cells else NUMBERS) for _ in header]
        if draw(st.integers(0, 40)) == 0:
            row = row[:-1] if draw(st.booleans()) else [*row, "1"]
        lines.append(",".join(row))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    return (end.join(lines) + draw(st.sampled_from(["", end]))).encode()


def with_data(params_text: str, **data) -> str:
    """params.yaml with these keys of its data section set, comments kept."""
    yaml = YAML()
    document = yaml.load(params_text)
    document["data"].update(data)
    text = io.StringIO()
    yaml.dump(document, text)
    return text.getvalue()


@settings(FUZZ, max_examples=50)
@given(table=users_csvs(), test_fraction=st.sampled_from([0.0, 0.2, 0.5]))
def test_a_random_csv_file_of_yours_trains_to_valid_outputs_or_gets_one_clean_line(reproduced_template, base_params,
                                                                                   table, test_fraction):
    params_text = with_data(base_params, source=MINE, features=["x"], target="y", test_fraction=test_fraction)
    run_case(reproduced_template, "train", params_text, {MINE: table})
