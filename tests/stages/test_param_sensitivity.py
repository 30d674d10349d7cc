"""Each stage reads exactly the params dvc.yaml declares for it, a whole section or single keys of one
(evaluate declares train.fit_intercept, train.tolerance, train.device and train.processes): changing a key it declares changes what it
does, and changing any other key leaves its outputs byte-identical, so `dvc repro` reruns it exactly when
it must."""

import numpy as np
import pytest
from ruamel.yaml import YAML

from pipeline.params import SECTIONS
from workspace import STAGES, declared, error_line, isolate, read_outs, run_in_process, set_param, set_params

TABLE = "data/table.csv"  # a user's table, with more columns than synthesize's x and y

# A new value for every key of params.yaml, each one where it must change what a stage that reads it does.
CHANGES = {
    "synthesize.m": -1.5,
    "synthesize.c": 3.0,
    "synthesize.noise": 0.5,
    "synthesize.n_points": 500,
    "synthesize.x_min": -4.0,
    "synthesize.x_max": 6.0,
    "synthesize.seed": 7,
    "data.source": TABLE,
    "data.features": ["z"],
    "data.target": "w",
    "data.missing": "drop",
    "data.degree": 2,
    "data.test_fraction": 0.5,
    "data.split_seed": 1,
    "data.max_levels": 2,  # below the text column's 3 levels: features: all leaves it out
    "train.optimizer": "adam",
    "train.lr": 0.02,
    "train.momentum": 0.5,
    "train.epochs": 20,  # fewer than the committed params need to converge, where train stops
    "train.batch_size": 100,
    "train.dtype": "float64",
    "train.standardize": False,
    "train.fit_intercept": False,
    "train.tolerance": 1e-9,  # below what float32 weights can reach: evaluate's verdict turns to not converged
    "train.coefficient_tolerance": 1e-6,  # below the float32 weights' distance: not converged
    "train.stop_when_converged": False,
    "train.seed": 1,
    "train.device": "cuda",  # without a GPU train refuses it with one line; evaluate records it
    "train.processes": 2,
    "evaluate.level": 0.9,
    "evaluate.cov_type": "HC3",
    "visualize.dpi": 72,
    "visualize.max_points": 100,
    "visualize.seed": 7,
    "predict.rows": "new",
    "predict.source": TABLE,
    "predict.output": "data/predictions.csv",
    "predict.level": 0.5,
    "predict.interval": "confidence",
    "predict.influence": True,
}
# What a key needs set first to matter: the sample's seed only counts when there are more points than the
# scatter shows (the default data has 1000); synthesize's points have no other columns to choose.
SETTING_FIRST = {
    "data.missing": {"data.source": "data/with_gap.csv"},
    "data.max_levels": {"data.source": "data/with_text.csv", "data.features": "all"},
    "visualize.seed": {"visualize.max_points": 100},
    "data.features": {"data.source": TABLE},
    "data.target": {"data.source": TABLE},
    "predict.source": {"predict.rows": "new"},  # predict.rows: fitted reads data.source instead
}
# visualize draws what train and evaluate computed; train.fit_intercept only decides whether the training
# rows are enough to draw: two rows fit a line through the origin, not one with an intercept.
SETTING_FIRST_FOR = {
    ("visualize", "train.fit_intercept"): {"data.source": "data/two_rows.csv", "data.test_fraction": 0.0},
}
# Keys that say where a stage writes: a change shows as the file it names.
OUTPUT_PATHS = {"predict.output"}
# Only sgd has momentum: changed in a run of its own, since train.optimizer changes too.
APART = {"train.momentum"}


def keys(section: str) -> list[str]:
    return [key for key in CHANGES if key.startswith(f"{section}.")]


def declares(stage_name: str, key: str) -> bool:
    """dvc.yaml declares the key for the stage, alone or with its whole section."""
    return any(key == entry or key.startswith(f"{entry}.") for entry in declared(stage_name)["params"])


def write_tables(folder) -> None:
    rng = np.random.default_rng(3)
    x, z = rng.uniform(-5, 5, (2, 200))
    columns = {"x": x, "z": z, "y": 2 * x - z + rng.normal(0, 1, 200), "w": -x + rng.normal(0, 1, 200)}
    rows = "".join(",".join(repr(float(value)) for value in row) + "\n" for row in zip(*columns.values()))
    (folder / TABLE).parent.mkdir(exist_ok=True)
    (folder / TABLE).write_text(",".join(columns) + "\n" + rows)
    (folder / "data/two_rows.csv").write_text("x,y\n1,3\n2,5\n")
    # The points with one row's x missing: refused with data.missing: error, fitted without it with drop.
    with_gap = "x,y\n" + "".join(f"{'' if k == 5 else k % 17},{2.0 * (k % 17) + (k % 3)}\n" for k in range(200))
    (folder / "data/with_gap.csv").write_text(with_gap)
    # A text column of 3 levels, a factor under features: all while data.max_levels allows it.
    with_text = "x,group,y\n" + "".join(f"{k % 13},{'abc'[k % 3]},{1.5 * (k % 13) + (k % 3) + (k % 5) / 7}\n"
                                         for k in range(200))
    (folder / "data/with_text.csv").write_text(with_text)


def outcome(folder, stage_name: str) -> dict[str, bytes] | str:
    """What the stage wrote, or the line with which it refused."""
    result = run_in_process(folder, stage_name)
    if result.returncode == 0:
        assert result.stderr == ""
        return read_outs(folder, declared(stage_name)["outs"])
    return error_line(result)


def run(folder, stage_name: str) -> dict[str, bytes]:
    result = run_in_process(folder, stage_name)
    assert result.returncode == 0, result.stderr
    return read_outs(folder, declared(stage_name)["outs"])


def test_the_changes_below_cover_every_key_of_params_yaml(reproduced_template):
    document = YAML(typ="safe").load(reproduced_template / "params.yaml")
    assert set(document) == {model.section for model in SECTIONS}
    assert set(CHANGES) == {f"{section}.{key}" for section in document for key in document[section]}
    assert all(document[key.split(".")[0]][key.split(".")[1]] != value for key, value in CHANGES.items())


@pytest.mark.parametrize("stage_name, key", [
    (stage_name, key) for stage_name in STAGES for key in CHANGES if declares(stage_name, key)
])
def test_changing_a_key_a_stage_declares_changes_what_it_does(reproduced_template, tmp_path, stage_name, key):
    folder = isolate(reproduced_template, tmp_path, stage_name)
    write_tables(folder)
    set_params(folder, SETTING_FIRST.get(key, {}) | SETTING_FIRST_FOR.get((stage_name, key), {}))
    before = outcome(folder, stage_name)
    set_param(folder, key, CHANGES[key])
    after = outcome(folder, stage_name)
    assert isinstance(before, dict) or isinstance(after, dict), (before, after)  # it ran at least once
    if key in OUTPUT_PATHS:
        assert (folder / CHANGES[key]).is_file()
    else:  # train stops on its tolerances too, so no key a stage declares is only printed
        assert after != before


def other_keys(stage_name: str) -> list[list[str]]:
    """The keys a stage does not declare, by section, in groups that params.yaml accepts together."""
    groups = []
    for model in SECTIONS:
        undeclared = [key for key in keys(model.section) if not declares(stage_name, key)]
        groups += [group for group in ([key for key in undeclared if key not in APART],
                                       [key for key in undeclared if key in APART]) if group]
    return groups


@pytest.mark.parametrize("stage_name, changed", [
    (stage_name, changed) for stage_name in STAGES for changed in other_keys(stage_name)
], ids=lambda value: ",".join(value) if isinstance(value, list) else value)
def test_keys_a_stage_does_not_declare_leave_its_outputs_byte_identical(reproduced_template, tmp_path, stage_name,
                                                                        changed):
    folder = isolate(reproduced_template, tmp_path, stage_name)
    set_params(folder, {key: CHANGES[key] for key in changed})
    assert run(folder, stage_name) == read_outs(reproduced_template, declared(stage_name)["outs"])


@pytest.mark.parametrize("stage_name, section", [
    (stage_name, model.section) for stage_name in STAGES for model in SECTIONS
    if not any(declares(stage_name, key) for key in keys(model.section))
])
def test_an_unknown_key_in_a_section_a_stage_does_not_read_is_left_to_the_stage_that_does(
        reproduced_template, tmp_path, stage_name, section):
    # A stage that reads some keys of a section validates the whole of it (evaluate refuses a misspelt
    # train key), as train, which reads all of it, refuses it first.
    folder = isolate(reproduced_template, tmp_path, stage_name)
    set_param(folder, f"{section}.unknown_key", "?")
    assert run(folder, stage_name) == read_outs(reproduced_template, declared(stage_name)["outs"])
