"""A mistake in params.yaml gets one line naming the key, the value and what is expected; nothing is written."""

import dataclasses
import math
import re
import shutil
import time
from pathlib import Path
from types import NoneType
from typing import get_args

import pytest
from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic.fields import FieldInfo
from ruamel.yaml import YAML

from pipeline.errors import PipelineError
from pipeline.params import (
    SECTIONS, DataParams, EvaluateParams, PredictParams, SynthesizeParams, TrainParams, load_params,
)
from workspace import ROOT, contents, error_line, isolate, run_in_process, stage

DELETE = object()


def edit_params(project: Path, section: str, changes: dict) -> None:
    """Set (or, with DELETE, remove) keys of one section of params.yaml."""
    yaml = YAML()
    path = project / "params.yaml"
    document = yaml.load(path)
    for key, value in changes.items():
        if value is DELETE:
            del document[section][key]
        else:
            document[section][key] = value
    yaml.dump(document, path)


CASES = [
    # (stage, section, changes to it, what the line must say)
    ("train", "train", {"lr": DELETE}, ["params.yaml: train.lr is missing", "expected a number > 0"]),
    ("train", "train", {"lr": DELETE, "lrr": 0.05}, ["train.lrr = 0.05", "unknown key (did you mean lr?)"]),
    ("train", "train", {"lr": "0.1"}, ["train.lr = '0.1'", "expected a number > 0"]),
    ("train", "train", {"epochs": True}, ["train.epochs = true", "expected an integer"]),
    ("train", "train", {"epochs": 100.0}, ["train.epochs = 100.0", "expected an integer"]),
    ("train", "train", {"lr": math.nan}, ["train.lr = nan", "finite"]),
    ("train", "train", {"lr": math.inf}, ["train.lr = inf", "finite"]),
    ("train", "train", {"lr": 0.0}, ["train.lr = 0.0", "expected a number > 0"]),
    ("train", "train", {"epochs": 0}, ["train.epochs = 0", "expected an integer from 1"]),
    ("train", "train", {"seed": -1}, ["train.seed = -1", "expected an integer from 0"]),
    ("train", "train", {"optimizer": "sdg"}, ["train.optimizer = 'sdg' (did you mean sgd?)",
                                              "expected one of sgd, adam, lbfgs"]),
    ("train", "train", {"dtype": "float16"}, ["train.dtype = 'float16'", "expected one of float32, float64"]),
    ("train", "train", {"batch_size": 0}, ["train.batch_size = 0", "expected null for the full batch, or an integer"]),
    ("train", "train", {"standardize": "yes"}, ["train.standardize = 'yes'", "expected true or false"]),
    ("train", "train", {"optimizer": "lbfgs", "batch_size": 32},
     ["train.batch_size = 32 with train.optimizer = 'lbfgs'", "expected null (L-BFGS needs the full batch)"]),
    ("train", "train", {"optimizer": "adam", "momentum": 0.9},
     ["train.momentum = 0.9 with train.optimizer = 'adam'", "expected 0 (momentum is a setting of sgd)"]),
    ("train", "train", {"tolerance": 0.0}, ["train.tolerance = 0.0", "expected a number > 0 and at most 1"]),
    ("evaluate", "train", {"tolerance": 2.0}, ["train.tolerance = 2.0", "expected a number > 0 and at most 1"]),
    ("train", "data", {"source": "/tmp/points.csv"},
     ["data.source = '/tmp/points.csv'", "expected a relative path inside the repository"]),
    ("evaluate", "data", {"source": "../points.csv"}, ["data.source = '../points.csv'", "without '..'"]),
    ("visualize", "data", {"target": ""}, ["data.target = ''", "expected a column name"]),
    ("train", "data", {"features": []}, ["data.features = a list []", "expected all, or a list of 1 to 1000 column names"]),
    ("train", "data", {"missing": "skip"}, ["data.missing = 'skip'", "expected one of error, drop"]),
    ("evaluate", "data", {"missing": DELETE}, ["data.missing is missing: expected one of error, drop"]),
    ("train", "data", {"features": "x"}, ["data.features = 'x'", "expected all, or a list of 1 to 1000 column names"]),
    ("train", "data", {"features": "al"}, ["data.features = 'al' (did you mean all?)", "expected all, or a list"]),
    ("train", "data", {"features": ["x", "epoch"]},
     ["data.features = a list ['x', 'epoch']: 'epoch' is a name the history and metrics use for themselves"]),
    ("evaluate", "data", {"test_fraction": 1.0}, ["data.test_fraction = 1.0", "expected a number from 0 to 0.9"]),
    ("visualize", "data", {"split_seed": 2**32}, ["data.split_seed = 4294967296", "expected an integer from 0"]),
    ("synthesize", "synthesize", {"n_points": 1}, ["synthesize.n_points = 1", "expected an integer from 2"]),
    ("synthesize", "synthesize", {"noise": -0.5}, ["synthesize.noise = -0.5", "expected a number from 0"]),
    ("synthesize", "synthesize", {"x_min": 5.0, "x_max": 5.0},
     ["synthesize.x_min = 5.0", "synthesize.x_max = 5.0", "expected x_min < x_max"]),
    ("synthesize", "synthesize", {"m": "2.5"}, ["synthesize.m = '2.5'", "null to draw it, or a list of 1 to 1000"]),
    ("synthesize", "synthesize", {"m": []},
     ["synthesize.m = a list []", "or a list of 1 to 1000 numbers from -1e6 to 1e6", "(list should have at least 1"]),
    ("synthesize", "synthesize", {"m": [1.0, "2"]}, ["synthesize.m = a list [1.0, '2']", "from -1e6 to 1e6"]),
    ("synthesize", "synthesize", {"c": 1e9}, ["synthesize.c = 1000000000.0", "from -1e6 to 1e6"]),
    ("visualize", "visualize", {"dpi": 0}, ["visualize.dpi = 0", "expected an integer from 10"]),
    ("visualize", "visualize", {"max_points": 0}, ["visualize.max_points = 0", "expected an integer from 1"]),
    ("visualize", "visualize", {"colour": "red"}, ["visualize.colour = 'red'", "unknown key"]),
]


@pytest.mark.parametrize("stage_name, section, changes, fragments", CASES, ids=[case[3][0] for case in CASES])
def test_a_bad_param_stops_the_stage_with_one_line_and_writes_nothing(reproduced_template, tmp_path, stage_name,
                                                                      section, changes, fragments):
    folder = isolate(reproduced_template, tmp_path, stage_name)
    edit_params(folder, section, changes)
    before = contents(folder)
    line = error_line(run_in_process(folder, stage_name))
    assert line.startswith("error: params.yaml: ")
    for fragment in fragments:
        assert fragment in line
    assert contents(folder) == before


@pytest.mark.parametrize("stage_name, section, changes, fragment", [
    ("train", "train", {"epochs": 0}, "error: params.yaml: train.epochs = 0: expected an integer from 1"),
    ("visualize", "data", {"source": "/data/points.csv"}, "error: params.yaml: data.source = '/data/points.csv'"),
])
def test_a_bad_param_is_one_line_from_the_real_stage_process_too(reproduced_template, tmp_path, stage_name, section,
                                                                 changes, fragment):
    folder = isolate(reproduced_template, tmp_path, stage_name)
    edit_params(folder, section, changes)
    before = contents(folder)
    assert error_line(stage(folder, stage_name, PYTHONDONTWRITEBYTECODE="1")).startswith(fragment)
    assert contents(folder) == before


def test_every_problem_is_listed_each_once_an_unknown_key_first(tmp_path):
    message = message_for(tmp_path, TrainParams, {"lr": DELETE, "lrr": 0.05, "epochs": 0, "dtype": "float16"})
    assert message.split("; ") == [
        "train.lrr = 0.05: unknown key (did you mean lr?), expected only " + ", ".join(TrainParams.model_fields),
        "train.lr is missing: expected a number > 0 and at most 1e6",
        "train.epochs = 0: expected an integer from 1 to 1000000 (input should be greater than or equal to 1)",
        "train.dtype = 'float16' (did you mean float64?): expected one of float32, float64 (input should be 'float32' "
        "or 'float64')",
    ]
    assert "more problem" not in message


@pytest.mark.parametrize("value", ["error", "drop"])
def test_data_missing_is_error_or_drop_and_the_committed_one_is_error(tmp_path, value):
    assert load_params(DataParams, ROOT / "params.yaml").missing == "error"
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    edit_params(tmp_path, "data", {"missing": value})
    assert load_params(DataParams, tmp_path / "params.yaml").missing == value


def test_the_committed_params_are_valid():
    path = ROOT / "params.yaml"
    for model in SECTIONS:
        assert isinstance(load_params(model, path), model)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_null_m_and_c_mean_draw_them_a_list_of_slopes_is_accepted_and_integers_are_numbers(tmp_path):
    path = write(tmp_path, "synthesize: {m: null, c: null, noise: 1, n_points: 10, x_min: -1, x_max: 1, seed: 3}\n")
    params = load_params(SynthesizeParams, path)
    assert params.m is None and params.c is None
    assert params.noise == 1.0 and isinstance(params.noise, float)
    path = write(tmp_path, "synthesize: {m: [1, -2.5], c: 0, noise: 1, n_points: 10, x_min: -1, x_max: 1, seed: 3}\n")
    params = load_params(SynthesizeParams, path)
    assert params.m == [1.0, -2.5] and params.feature_names == ("x1", "x2")


def test_numbers_are_read_as_dvc_reads_them(tmp_path):
    # YAML 1.2, as `dvc exp run -S train.lr=1e-2` writes it; PyYAML would read the string '1e-2'.
    text, replaced = re.subn(r"(?m)^  lr: \S+", "  lr: 1e-2", (ROOT / "params.yaml").read_text())
    assert replaced == 1
    assert load_params(TrainParams, write(tmp_path, text)).lr == 0.01


@pytest.mark.parametrize("text, fragment", [
    ("train: {lr: 0.1\n", "not valid YAML"),
    ("", "is empty"),
    ("- 1\n- 2\n", "holds a list"),
])
def test_a_params_file_that_is_not_a_mapping_is_named(tmp_path, text, fragment):
    with pytest.raises(PipelineError, match=fragment) as raised:
        load_params(TrainParams, write(tmp_path, text))
    assert str(raised.value).startswith(str(tmp_path / "params.yaml"))
    assert "\n" not in str(raised.value)


# Each "expected …" is read from the field's type and bounds -------------------------------------------------

def message_for(tmp_path: Path, model, changes: dict) -> str:
    """The error loading `model` gives for the project's params.yaml with these changes, without the path."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    edit_params(tmp_path, model.section, changes)
    with pytest.raises(PipelineError) as raised:
        load_params(model, tmp_path / "params.yaml")
    return str(raised.value).removeprefix(f"{tmp_path / 'params.yaml'}: ")


@pytest.mark.parametrize("model, changes, message", [
    (TrainParams, {"epochs": DELETE}, "train.epochs is missing: expected an integer from 1 to 1000000"),
    (TrainParams, {"epochs": 0},
     "train.epochs = 0: expected an integer from 1 to 1000000 (input should be greater than or equal to 1)"),
    (TrainParams, {"lr": "0.1"},
     "train.lr = '0.1': expected a number > 0 and at most 1e6 (input should be a valid number)"),
    (TrainParams, {"tolerance": 2.0},
     "train.tolerance = 2.0: expected a number > 0 and at most 1 (input should be less than or equal to 1)"),
    (TrainParams, {"momentum": 1.0},
     "train.momentum = 1.0: expected a number from 0 to below 1 (sgd only) (input should be less than 1)"),
    (TrainParams, {"optimizer": "adamw"}, "train.optimizer = 'adamw' (did you mean adam?): expected one of sgd, adam, "
                                          "lbfgs (input should be 'sgd', 'adam' or 'lbfgs')"),
    (TrainParams, {"standardize": "yes"}, "train.standardize = 'yes': expected true or false "
                                          "(input should be a valid boolean)"),
    (TrainParams, {"batch_size": 0}, "train.batch_size = 0: expected null for the full batch, or an integer from 1 "
                                     "to 100000000 (input should be greater than or equal to 1)"),
    (SynthesizeParams, {"c": "1"},
     "synthesize.c = '1': expected a number from -1e6 to 1e6, or null to draw it (input should be a valid number)"),
    (SynthesizeParams, {"m": []}, "synthesize.m = a list []: expected a number from -1e6 to 1e6, null to draw it, or a "
                                  "list of 1 to 1000 numbers from -1e6 to 1e6 (list should have at least 1 item after "
                                  "validation, not 0)"),
    (SynthesizeParams, {"n_points": 2_000_000_001}, "synthesize.n_points = 2000000001: expected an integer from 2 to "
                                                    "2000000000 (input should be less than or equal to 2000000000)"),
    (SynthesizeParams, {"seed": 2**32}, "synthesize.seed = 4294967296: expected an integer from 0 to 4294967295 "
                                        "(input should be less than or equal to 4294967295)"),
    (DataParams, {"test_fraction": 0.95},
     "data.test_fraction = 0.95: expected a number from 0 to 0.9 (input should be less than or equal to 0.9)"),
    (DataParams, {"features": []}, "data.features = a list []: expected all, or a list of 1 to 1000 column names "
                                   "(list should have at least 1 item after validation, not 0)"),
])
def test_the_message_says_the_type_and_bounds_of_the_field(tmp_path, model, changes, message):
    assert message_for(tmp_path, model, changes) == message


def numeric_bounds(field: FieldInfo) -> list:
    """The bounds of a field's numbers and list lengths, in the order its type names them (a union's choices, a
    list's length then its items); a string's length is left to pydantic's reason ("should have at most …")."""
    if field.annotation is str:
        return []
    bounds = (Ge, Gt, Le, Lt, MinLen, MaxLen)
    found = [dataclasses.astuple(item)[0] for item in field.metadata if isinstance(item, bounds)]
    for inner in get_args(field.annotation):
        if inner is not NoneType and not isinstance(inner, str):  # a Literal's choices are strings
            found += numeric_bounds(FieldInfo.from_annotation(inner))
    return found


NUMBER = re.compile(r"(?<![\w.-])-?\d+(?:\.\d+)?(?:e-?\d+)?(?![\w.])")


@pytest.mark.parametrize("model, key", [(model, key) for model in SECTIONS for key in model.model_fields],
                         ids=[f"{model.section}.{key}" for model in SECTIONS for key in model.model_fields])
def test_the_expected_text_names_each_bound_of_the_field_as_yaml_reads_it(tmp_path, model, key):
    message = message_for(tmp_path, model, {key: DELETE})
    prefix = f"{model.section}.{key} is missing: expected "
    assert message.startswith(prefix) and len(message) > len(prefix)
    written = [YAML(typ="safe").load(number) for number in NUMBER.findall(message.removeprefix(prefix))]
    assert written == numeric_bounds(model.model_fields[key])


@pytest.mark.parametrize("section, model", [("evaluate", EvaluateParams), ("predict", PredictParams)])
def test_a_level_whose_quantile_is_infinite_in_float64_is_refused_from_the_params_alone(tmp_path, section, model):
    from scipy.special import stdtrit

    text = (ROOT / "params.yaml").read_text()
    for level in (0.9999999999999999, 0.9999999999999998):
        edited = re.sub(rf"(?ms)^({section}:.*?^  level: )\S+", rf"\g<1>{level!r}", text)
        if level == 0.9999999999999999:
            with pytest.raises(PipelineError, match=rf"^.*: {section}\.level = 0\.9999999999999999: expected at most "
                                                    r"0\.9999999999999998 \(.*quantile is infinite in float64\)$"):
                load_params(model, write(tmp_path, edited))
        else:  # the largest level accepted has a finite quantile even on one degree of freedom
            assert load_params(model, write(tmp_path, edited)).level == level
            assert math.isfinite(stdtrit(1, 1 - (1 - level) / 2))


def alias_bomb() -> str:
    """a: 9 strings; b: 9 times a; …; i: 9 times h: 9^9 strings once expanded, a few lines as written."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for below, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{', '.join(['*' + below] * 9)}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_or_a_huge_value_is_cut_before_it_is_rendered(tmp_path):
    """A YAML alias bomb reads fast (shared lists), and its message must not render its 9^9 strings."""
    text = alias_bomb() + re.sub(r"(?m)^  features:\n  - x\n", "  features: *i\n", (ROOT / "params.yaml").read_text())
    assert "features: *i" in text
    started = time.perf_counter()
    with pytest.raises(PipelineError, match=r"data\.features = a list \[\[\[") as raised:
        load_params(DataParams, write(tmp_path, text))
    assert time.perf_counter() - started < 5 and len(str(raised.value)) < 500
    huge = re.sub(r"(?m)^  target: y", "  target: " + "q" * 1_000_000, (ROOT / "params.yaml").read_text())
    with pytest.raises(PipelineError, match=r"data\.target = 'q+\.\.\.q+': expected a column name") as raised:
        load_params(DataParams, write(tmp_path, huge))
    assert len(str(raised.value)) < 500


@pytest.mark.parametrize("edit, said", [
    (lambda text: re.sub(r"(?m)^  lr: \S+", "  lr: " + "9" * 5000, text), "holds an integer of more than 4300 digits"),
    (lambda text: text.replace("  features:\n  - x\n", "  features: " + "[" * 2000 + "]" * 2000 + "\n"),
     "nests lists or mappings too deep to read"),
    (lambda text: text.replace("  source: data/points.parquet  # synth", "  source: " + "q" * 100_000 + "  # synth"),
     r"data\.source = 'q+\.\.\.q+': expected a path .* \(string should have at most 4096 characters\)"),
])
def test_a_number_too_long_a_nesting_too_deep_or_a_path_too_long_is_one_short_line(tmp_path, edit, said):
    text = edit((ROOT / "params.yaml").read_text())
    with pytest.raises(PipelineError, match=said) as raised:
        load_params(DataParams if "data" in said else TrainParams, write(tmp_path, text))
    assert len(str(raised.value)) < 500
