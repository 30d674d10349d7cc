"""`dvc repro` does exactly the work a change calls for: tested with the real dvc CLI."""

import json

import pytest

from pipeline.files import HISTORY, read_history
from pipeline.params import TrainParams, load_params
from workspace import ALL_OUTS, STAGES, dvc, git, ran, read_outs, restored, set_param


def test_a_second_repro_runs_nothing(reproduced):
    output = dvc(reproduced, "repro").stdout
    assert ran(output) == set()
    assert restored(output) == set()


# Each change of synthesize, and the outputs it may leave as they were: the noise is not part of the true
# line; and a new c moves y by a constant, which standardised training never sees (it centres y), so the
# losses, and the loss plot drawn from them, may stay bit for bit the same; so may the standardised
# coefficients, their chart and their intervals, which a constant does not move either.
SYNTHESIZE_CHANGES = [("synthesize.m", -1.5, set()),
                      ("synthesize.c", 3.0, {"plots/loss.png", "plots/coefficients.csv", "plots/coefficients.png"}),
                      ("synthesize.noise", 0.25, {"data/truth.json"})]


@pytest.mark.parametrize("key, value, may_stay", SYNTHESIZE_CHANGES)
def test_changing_the_true_line_or_noise_reruns_every_stage_and_changes_what_depends_on_it(
        reproduced, key, value, may_stay):
    before, losses_before = read_outs(reproduced), losses(reproduced)
    set_param(reproduced, key, value)
    assert ran(dvc(reproduced, "repro").stdout) == set(STAGES)
    after = read_outs(reproduced)
    assert {path for path in ALL_OUTS if before[path] != after[path]} >= set(ALL_OUTS) - may_stay
    if key == "synthesize.c":
        assert losses(reproduced) == pytest.approx(losses_before, rel=1e-6)


def losses(project) -> list[float]:
    history = read_history(project / HISTORY, ("train_loss", "test_loss"))
    return [*history["train_loss"], *history["test_loss"]]


# Values that stop training short of least squares, so that the model moves.
def test_changing_lr_reruns_train_evaluate_visualize_and_predict(lower_lr_template):
    assert ran(lower_lr_template.output) == {"train", "evaluate", "visualize", "predict"}


def test_changing_epochs_reruns_train_evaluate_visualize_and_predict(reproduced):
    set_param(reproduced, "train.epochs", 20)
    assert ran(dvc(reproduced, "repro").stdout) == {"train", "evaluate", "visualize", "predict"}


def test_fewer_epochs_past_the_converged_one_rerun_train_alone_as_what_it_writes_is_the_same(reproduced):
    # train stops at the first converged epoch, well within half the committed epochs: the same model and
    # history, byte for byte, so DVC runs nothing after train.
    before = read_outs(reproduced)
    set_param(reproduced, "train.epochs", load_params(TrainParams, reproduced / "params.yaml").epochs // 2)
    assert ran(dvc(reproduced, "repro").stdout) == {"train"}
    assert read_outs(reproduced) == before


def test_running_every_epoch_trains_further_and_reruns_what_follows(reproduced):
    before = read_outs(reproduced)
    set_param(reproduced, "train.stop_when_converged", False)
    assert ran(dvc(reproduced, "repro").stdout) == {"train", "evaluate", "visualize", "predict"}
    after = read_outs(reproduced)
    epochs = load_params(TrainParams, reproduced / "params.yaml").epochs
    assert len(after[HISTORY.as_posix()].decode().splitlines()) == epochs + 2  # a header, then every epoch
    assert len(before[HISTORY.as_posix()].decode().splitlines()) < epochs // 10
    assert json.loads(after["metrics/metrics.json"])["epochs_run"] == epochs


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


def test_changing_lr_and_back_restores_every_output_from_the_run_cache(reproduced_template, lower_lr):
    before = read_outs(reproduced_template)
    assert read_outs(lower_lr) != before  # reproduced with LOWER_LR
    git(lower_lr, "checkout", "--", "params.yaml")
    output = dvc(lower_lr, "repro").stdout
    assert ran(output) == set()
    assert restored(output) == {"train", "evaluate", "visualize", "predict"}
    assert read_outs(lower_lr) == before
