"""`dvc repro` does exactly the work a change calls for: tested with the real dvc CLI."""

import pytest

from workspace import ALL_OUTS, STAGES, dvc, git, ran, read_outs, restored, set_param


def test_a_second_repro_runs_nothing(reproduced):
    output = dvc(reproduced, "repro").stdout
    assert ran(output) == set()
    assert restored(output) == set()


@pytest.mark.parametrize("key, value", [("synthesize.m", -1.5), ("synthesize.c", 3.0), ("synthesize.noise", 0.25)])
def test_changing_the_true_line_or_noise_reruns_all_four_stages(reproduced, key, value):
    before = read_outs(reproduced)
    set_param(reproduced, key, value)
    assert ran(dvc(reproduced, "repro").stdout) == set(STAGES)
    after = read_outs(reproduced)
    assert all(before[path] != after[path] for path in ALL_OUTS if path != "data/truth.json")


@pytest.mark.parametrize("key, value", [("train.lr", 0.02), ("train.epochs", 120)])
def test_changing_lr_or_epochs_reruns_train_evaluate_and_visualize(reproduced, key, value):
    set_param(reproduced, key, value)
    assert ran(dvc(reproduced, "repro").stdout) == {"train", "evaluate", "visualize"}


@pytest.mark.parametrize("key, value", [("visualize.dpi", 72), ("visualize.max_points", 100), ("visualize.seed", 7)])
def test_changing_a_visualize_key_reruns_only_visualize(reproduced, key, value):
    set_param(reproduced, key, value)
    assert ran(dvc(reproduced, "repro").stdout) == {"visualize"}


def test_a_comment_in_train_py_reruns_train_only_as_its_outputs_are_identical(reproduced):
    before = read_outs(reproduced)
    train_py = reproduced / "pipeline" / "train.py"
    train_py.write_text(train_py.read_text() + "\n# A comment changes the file's hash, not what it does.\n")
    assert ran(dvc(reproduced, "repro").stdout) == {"train"}
    assert read_outs(reproduced) == before


def test_changing_lr_and_back_restores_every_output_from_the_run_cache(reproduced):
    before = read_outs(reproduced)
    set_param(reproduced, "train.lr", 0.02)
    dvc(reproduced, "repro")
    assert read_outs(reproduced) != before
    git(reproduced, "checkout", "--", "params.yaml")
    output = dvc(reproduced, "repro").stdout
    assert ran(output) == set()
    assert restored(output) == {"train", "evaluate", "visualize"}
    assert read_outs(reproduced) == before
