"""A mistake in params.yaml gets one line naming the key, the value and what is expected; nothing is written."""

import math
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from pipeline.errors import PipelineError
from pipeline.params import SynthesizeParams, TrainParams, VisualizeParams, load_params
from workspace import OUTS, ROOT, error_line, stage

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


def assert_one_clean_line(result, *fragments: str) -> None:
    line = error_line(result)
    for fragment in fragments:
        assert fragment in line


CASES = [
    # (stage, changes to its own section, what the line must say)
    ("train", {"lr": DELETE}, ["params.yaml: train.lr is missing", "expected a number > 0"]),
    ("train", {"lr": DELETE, "lrr": 0.05}, ["train.lrr = 0.05", "unknown key (did you mean lr?)"]),
    ("train", {"lr": "0.1"}, ["train.lr = '0.1'", "expected a number > 0"]),
    ("train", {"epochs": True}, ["train.epochs = true", "expected an integer"]),
    ("train", {"epochs": 100.0}, ["train.epochs = 100.0", "expected an integer"]),
    ("train", {"lr": math.nan}, ["train.lr = nan", "finite"]),
    ("train", {"lr": math.inf}, ["train.lr = inf", "finite"]),
    ("train", {"lr": 0.0}, ["train.lr = 0.0", "expected a number > 0"]),
    ("train", {"epochs": 0}, ["train.epochs = 0", "expected an integer from 1"]),
    ("train", {"seed": -1}, ["train.seed = -1", "expected an integer from 0"]),
    ("synthesize", {"n_points": 1}, ["synthesize.n_points = 1", "expected an integer from 2"]),
    ("synthesize", {"noise": -0.5}, ["synthesize.noise = -0.5", "expected a number from 0"]),
    ("synthesize", {"x_min": 5.0, "x_max": 5.0},
     ["synthesize.x_min = 5.0", "synthesize.x_max = 5.0", "expected x_min < x_max"]),
    ("synthesize", {"m": "2.5"}, ["synthesize.m = '2.5'", "or null"]),
    ("synthesize", {"c": 1e9}, ["synthesize.c = 1000000000.0", "from -1e6 to 1e6"]),
    ("visualize", {"dpi": 0}, ["visualize.dpi = 0", "expected an integer from 10"]),
    ("visualize", {"max_points": 0}, ["visualize.max_points = 0", "expected an integer from 1"]),
    ("visualize", {"colour": "red"}, ["visualize.colour = 'red'", "unknown key"]),
]


@pytest.mark.parametrize("stage_name, changes, fragments", CASES, ids=[case[2][0] for case in CASES])
def test_a_bad_param_stops_the_stage_with_one_line_and_writes_nothing(reproduced, stage_name, changes, fragments):
    edit_params(reproduced, stage_name, changes)
    for path in OUTS[stage_name]:
        (reproduced / path).unlink()
    assert_one_clean_line(stage(reproduced, stage_name), *fragments)
    assert not any((reproduced / path).exists() for path in OUTS[stage_name])


def test_the_committed_params_are_valid():
    path = ROOT / "params.yaml"
    for model in (SynthesizeParams, TrainParams, VisualizeParams):
        assert isinstance(load_params(model, path), model)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_null_m_and_c_mean_draw_them_and_integers_are_numbers(tmp_path):
    path = write(tmp_path, "synthesize: {m: null, c: null, noise: 1, n_points: 10, x_min: -1, x_max: 1, seed: 3}\n")
    params = load_params(SynthesizeParams, path)
    assert params.m is None and params.c is None
    assert params.noise == 1.0 and isinstance(params.noise, float)


def test_numbers_are_read_as_dvc_reads_them(tmp_path):
    # YAML 1.2, as `dvc exp run -S train.lr=1e-2` writes it; PyYAML would read the string '1e-2'.
    path = write(tmp_path, "train: {lr: 1e-2, epochs: 10, seed: 0}\n")
    assert load_params(TrainParams, path).lr == 0.01


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
