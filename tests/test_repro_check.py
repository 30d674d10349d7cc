"""`make repro-check`: a fresh clone of HEAD, `dvc repro` with an empty cache, every output compared with
the committed dvc.lock, one line each; exit 0 only if all are identical."""

import re

import numpy as np
import pytest
from ruamel.yaml import YAML

from tools.repro_check import largest_differences, numbers
from workspace import ALL_OUTS, commit, dvc, git, make, read_outs, set_param

HISTORY = "metrics/history.csv"


def verdicts(output: str) -> dict[str, str]:
    """Each output's line of a repro-check: path → "identical" or "differs: …"."""
    found = {}
    for line in output.splitlines():
        path, _, verdict = line.partition(" ")
        if path in ALL_OUTS:
            found[path] = verdict.strip()
    return found


def recorded_md5(project, path: str) -> str:
    lock = YAML(typ="safe").load(project / "dvc.lock")
    return next(out["md5"] for stage in lock["stages"].values() for out in stage["outs"] if out["path"] == path)


@pytest.mark.parametrize("threads", ["1", "2"])
def test_repro_check_passes_with_one_or_two_threads_and_leaves_the_project_untouched(reproduced, threads):
    before = read_outs(reproduced)
    result = make(reproduced, "repro-check", OMP_NUM_THREADS=threads)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"threads {threads})" in result.stdout.splitlines()[0]  # the variable reached torch in the clone
    assert verdicts(result.stdout) == {path: "identical" for path in ALL_OUTS}
    assert result.stdout.splitlines()[-1] == f"all {len(ALL_OUTS)} outputs identical to the committed dvc.lock"
    assert read_outs(reproduced) == before
    assert git(reproduced, "status", "--porcelain") == ""


def test_a_wrong_hash_for_the_model_in_the_lock_fails_and_names_models_model_pt(reproduced):
    lock = reproduced / "dvc.lock"
    right = recorded_md5(reproduced, "models/model.pt")
    wrong = "0123456789abcdef" * 2  # a well-formed md5, not the model's
    lock.write_text(lock.read_text().replace(right, wrong))
    commit(reproduced, "a dvc.lock with a wrong hash for models/model.pt")
    result = make(reproduced, "repro-check")
    assert result.returncode != 0
    found = verdicts(result.stdout)
    assert found.pop("models/model.pt") == f"differs: md5 {right}, the committed dvc.lock records {wrong}"
    assert found == {path: "identical" for path in ALL_OUTS if path != "models/model.pt"}
    assert f"1 of {len(ALL_OUTS)} outputs differ from the committed dvc.lock" in result.stdout


def test_a_real_change_shows_the_largest_difference_of_the_history_from_the_committed_version_in_the_cache(
        reproduced, reproduced_template):
    # Commit the lock of lr = 0.02 with params.yaml still at 0.05: a fresh clone then reproduces lr = 0.05.
    set_param(reproduced, "train.lr", 0.02)
    dvc(reproduced, "repro")
    git(reproduced, "checkout", "--", "params.yaml")
    commit(reproduced, "a dvc.lock that params.yaml does not produce")
    # The committed metrics.json is no longer in the local cache; the committed history.csv still is.
    metrics_md5 = recorded_md5(reproduced, "metrics/metrics.json")
    (reproduced / ".dvc" / "cache" / "files" / "md5" / metrics_md5[:2] / metrics_md5[2:]).unlink()

    result = make(reproduced, "repro-check")
    assert result.returncode != 0
    found = verdicts(result.stdout)
    committed = np.loadtxt(reproduced / HISTORY, delimiter=",", skiprows=1)
    fresh = np.loadtxt(reproduced_template / HISTORY, delimiter=",", skiprows=1)
    assert f"largest absolute difference {np.abs(fresh - committed).max():.3g} (" in found[HISTORY]
    assert "largest relative difference" in found[HISTORY]
    assert found["metrics/metrics.json"].endswith(
        f"its numbers cannot be compared: the committed version is not in the local DVC cache {reproduced / '.dvc' / 'cache'}"
    )
    assert found["data/points.parquet"] == found["data/truth.json"] == found["plots/data.png"] == "identical"


def test_without_vector_instructions_at_most_the_history_differs_and_only_by_float_noise(reproduced):
    result = make(reproduced, "repro-check", ATEN_CPU_CAPABILITY="default")
    assert "(torch CPU capability DEFAULT," in result.stdout.splitlines()[0]
    found = verdicts(result.stdout)
    # Without vector instructions torch sums in another order: last bits of the float32 history can move.
    history = found.pop(HISTORY)
    assert found == {path: "identical" for path in ALL_OUTS if path != HISTORY}
    if history != "identical":
        relative = float(re.search(r"largest relative difference (\S+) ", history).group(1))
        assert relative < 1e-5, history


def test_the_largest_absolute_and_relative_differences_may_stand_at_different_numbers():
    committed, reproduced = {"loss": 100.0, "c": 1e-8, "m": 2.5}, {"loss": 100.001, "c": 2e-8, "m": 2.5}
    assert largest_differences(committed, reproduced) == (
        "largest absolute difference 0.001 (loss), largest relative difference 0.5 (c)"
    )
    assert largest_differences({"m": 2.5}, {"m": 2.5, "c": 1.0}) == (
        "the numbers both versions hold are equal; 1 number(s) in only one of the two versions"
    )


def test_numbers_are_named_by_their_json_key_or_csv_column_and_line(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,loss,m,c\n0,58.1,-0.0074,0.53\n1,40.7,0.42,0.50\n")
    (tmp_path / "metrics.json").write_text('{"m_learnt": 2.5, "nested": {"r2": 0.98}, "flag": true}')
    assert numbers(tmp_path / "history.csv", ".csv")["c on line 3"] == 0.50
    assert numbers(tmp_path / "metrics.json", ".json") == {"m_learnt": 2.5, "nested.r2": 0.98}
