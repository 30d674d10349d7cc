"""Each stage reads exactly the params section dvc.yaml declares for it: every key of that section changes
its outputs, and no key of another section does."""

import pytest
from ruamel.yaml import YAML

from workspace import STAGES, declared, isolate, read_outs, run_in_process, set_param

# A new value for every key of params.yaml, each one where it must change what its stage writes.
CHANGES = {
    "synthesize.m": -1.5,
    "synthesize.c": 3.0,
    "synthesize.noise": 0.5,
    "synthesize.n_points": 500,
    "synthesize.x_min": -4.0,
    "synthesize.x_max": 6.0,
    "synthesize.seed": 7,
    "train.lr": 0.02,
    "train.epochs": 120,
    "train.seed": 1,
    "visualize.dpi": 72,
    "visualize.max_points": 100,
    "visualize.seed": 7,
}
# What a key needs set first to matter: the sample's seed only counts when there are more points than
# the scatter shows (the default data has 1000).
SETTING_FIRST = {"visualize.seed": {"visualize.max_points": 100}}
SECTIONS = ("synthesize", "train", "visualize")


def stage_reading(section: str) -> str:
    (stage_name,) = [stage_name for stage_name in STAGES if section in declared(stage_name)["params"]]
    return stage_name


def run(folder, stage_name: str) -> dict[str, bytes]:
    result = run_in_process(folder, stage_name)
    assert result.returncode == 0, result.stderr
    return read_outs(folder, declared(stage_name)["outs"])


def test_the_changes_below_cover_every_key_of_params_yaml(reproduced_template):
    document = YAML(typ="safe").load(reproduced_template / "params.yaml")
    assert set(CHANGES) == {f"{section}.{key}" for section in SECTIONS for key in document[section]}
    assert set(document) == set(SECTIONS)


@pytest.mark.parametrize("key", CHANGES)
def test_changing_a_key_changes_the_outputs_of_the_stage_that_declares_its_section(reproduced_template, tmp_path, key):
    stage_name = stage_reading(key.split(".")[0])
    folder = isolate(reproduced_template, tmp_path, stage_name)
    for setting, value in SETTING_FIRST.get(key, {}).items():
        set_param(folder, setting, value)
    before = run(folder, stage_name)
    set_param(folder, key, CHANGES[key])
    assert run(folder, stage_name) != before


@pytest.mark.parametrize("stage_name, section", [
    (stage_name, section)
    for stage_name in STAGES for section in SECTIONS if section not in declared(stage_name)["params"]
])
@pytest.mark.parametrize("edit", ["every key changed", "an unknown key added"])
def test_another_sections_keys_leave_a_stages_outputs_byte_identical(reproduced_template, tmp_path, stage_name,
                                                                     section, edit):
    folder = isolate(reproduced_template, tmp_path, stage_name)
    if edit == "every key changed":
        for key, value in CHANGES.items():
            if key.startswith(f"{section}."):
                set_param(folder, key, value)
    else:  # that section is now invalid, which only the stage that reads it may notice
        set_param(folder, f"{section}.unknown_key", "?")
    assert run(folder, stage_name) == read_outs(reproduced_template, declared(stage_name)["outs"])
