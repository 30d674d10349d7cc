"""What the repository holds, read from DVC's and git's own files without DVC: its cache folder by DVC's config
rules, the paths dvc.yaml and .dvc files name, and where a link leads."""

import os
import subprocess
from pathlib import Path

import pytest

from pipeline import repository


@pytest.fixture
def bare(tmp_path, monkeypatch) -> Path:
    """An empty folder as the repository, DVC's system and global config folders empty beside it."""
    project = tmp_path / "project"
    (project / ".dvc").mkdir(parents=True)
    monkeypatch.setenv("DVC_SYSTEM_CONFIG_DIR", str(tmp_path / "system"))
    monkeypatch.setenv("DVC_GLOBAL_CONFIG_DIR", str(tmp_path / "global"))
    monkeypatch.chdir(project)
    return project


def config(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


class TestCacheFolder:
    def test_by_default_it_is_dot_dvc_cache(self, bare):
        assert repository.cache_folders() == ((bare / ".dvc" / "cache").resolve(),)

    def test_a_relative_cache_dir_is_taken_from_the_folder_of_its_config_file(self, bare, tmp_path):
        config(bare / ".dvc", "config", "[cache]\n    dir = ../../shared-cache\n")
        assert repository.cache_folders() == ((tmp_path / "shared-cache").resolve(),)
        config(tmp_path / "global", "config", "[cache]\n    dir = global-cache\n")  # lower priority: unchanged
        assert repository.cache_folders() == ((tmp_path / "shared-cache").resolve(),)

    def test_the_local_config_wins_and_quotes_and_tilde_are_read_as_dvc_reads_them(self, bare, tmp_path, monkeypatch):
        config(tmp_path / "system", "config", "[cache]\n    dir = /system-cache\n")
        assert repository.cache_folders() == (Path("/system-cache"),)
        config(bare / ".dvc", "config", "[cache]\n    dir = /repo-cache\n")
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        config(bare / ".dvc", "config.local", "[cache]\n    dir = '~/local cache'\n")
        assert repository.cache_folders() == ((tmp_path / "home" / "local cache").resolve(),)


class TestWhereItLeads:
    def test_a_link_out_of_the_repository_is_refused_and_one_into_the_cache_accepted(self, bare, tmp_path):
        (tmp_path / "outside.csv").write_text("x,y\n1,2\n")
        (bare / "out.csv").symlink_to(tmp_path / "outside.csv")
        assert "outside the repository" in repository.where_it_leads(Path("out.csv"))
        config(bare / ".dvc", "config", f"[cache]\n    dir = {tmp_path}\n")
        assert repository.where_it_leads(Path("out.csv")) is None

    def test_an_outputs_own_link_is_not_followed_but_its_folders_are(self, bare, tmp_path):
        (bare / "out.csv").symlink_to(tmp_path / "anywhere.csv")
        assert repository.where_it_leads(Path("out.csv"), follow_last=False) is None
        (bare / "far").symlink_to(tmp_path)
        assert "linked folder" in repository.where_it_leads(Path("far/new.csv"), follow_last=False)

    def test_tilde_and_loops_are_refused(self, bare):
        assert "'~'" in repository.where_it_leads(Path("~/x.csv"))
        (bare / "loop.csv").symlink_to("loop.csv")
        assert "loop" in repository.where_it_leads(Path("loop.csv"))


class TestEntries:
    def test_stage_paths_are_resolved_against_params_and_dvc_files_read(self, bare):
        subprocess.run(["git", "init", "--quiet"], check=True)
        (bare / "params.yaml").write_text("predict:\n  output: out/p.csv\n", encoding="utf-8")
        (bare / "dvc.yaml").write_text(
            "stages:\n  predict:\n    cmd: x\n    deps: [a.csv]\n    outs:\n      - ${predict.output}\n"
            "      - kept.json:\n          cache: false\n", encoding="utf-8")
        (bare / "raw").mkdir()
        (bare / "raw.dvc").write_text("outs:\n- md5: 0\n  path: raw\n", encoding="utf-8")
        found = {(str(entry.path), entry.kind, entry.chosen_by, entry.cached) for entry in repository.entries()}
        assert found == {("a.csv", "dep", "", True), ("out/p.csv", "out", "predict.output", True),
                         ("kept.json", "out", "", False), ("raw", "out", "", True)}
        assert repository.tracked_by(Path("raw/x/y.csv")).where == "raw.dvc"
        assert repository.tracked_by(Path("rawer.csv")) is None

    def test_git_index_and_is_tracked(self, bare):
        subprocess.run(["git", "init", "--quiet"], check=True)
        (bare / "mine.csv").write_text("x\n", encoding="utf-8")
        assert not repository.is_tracked(Path("mine.csv"))
        subprocess.run(["git", "add", "mine.csv"], check=True)
        os.remove(bare / "mine.csv")  # as DVC removes a stage's outs: the index still holds it
        assert repository.in_git_index(Path("mine.csv")) and repository.is_tracked(Path("mine.csv"))
