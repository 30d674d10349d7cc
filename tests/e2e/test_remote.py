"""Sharing results through a DVC remote: push from one clone, pull in another, and nothing reruns."""

from workspace import ALL_OUTS, assert_pull_brings_every_output_and_repro_runs_nothing, commit, dvc, git


def test_after_dvc_pull_in_another_clone_dvc_repro_runs_nothing(reproduced, tmp_path):
    storage = tmp_path / "storage"
    dvc(reproduced, "remote", "add", "--default", "storage", str(storage))
    commit(reproduced, "a local-folder DVC remote")
    pushed = dvc(reproduced, "push").stdout
    assert f"{len(ALL_OUTS)} files pushed" in pushed, pushed

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "--quiet", str(reproduced), str(clone))
    assert_pull_brings_every_output_and_repro_runs_nothing(reproduced, clone)
