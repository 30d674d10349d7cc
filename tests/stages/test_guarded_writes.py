"""Nothing lost, nothing leaked: an input path stays in the repository (or DVC's cache), links included, and no
output is ever written over an input, another stage's file, a tracked file or a folder. Stages run by hand, as
the docs show (`python -m pipeline.<stage>`), mostly in this process on the reproduced project."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workspace import (
    ALL_OUTS, ROOT, STAGES, contents, declared, dvc, error_line, git, run_in_process, set_param, set_params,
)

SECRET = "TOPSECRET-line-of-a-file-outside"
# Every path dvc.yaml names as a dep or an out of any stage, as DVC resolves it, but predict's own output.
DECLARED = sorted({path for name in STAGES for field in ("deps", "outs") for path in declared(name)[field]}
                  - set(declared("predict")["outs"]))


@pytest.fixture(scope="module")
def shared(reproduced_template, tmp_path_factory) -> Path:
    """One copy of the reproduced project for tests that change nothing in it (each refusal writes nothing)."""
    return Path(shutil.copytree(reproduced_template, tmp_path_factory.mktemp("guarded") / "project", symlinks=True))


def outside_file(tmp_path: Path) -> Path:
    outside = tmp_path / "outside" / "secret.csv"
    outside.parent.mkdir()
    outside.write_text(f"x,y\n{SECRET},1\n1,2\n", encoding="utf-8")
    return outside


class TestInputPathsStayInTheRepository:
    @pytest.mark.parametrize(("key", "stage_name"), [("data.source", "train"), ("data.source", "evaluate"),
                                                     ("predict.source", "predict")])
    def test_a_link_out_of_the_repository_is_one_line_and_nothing_read_or_quoted(self, reproduced, tmp_path,
                                                                                   key, stage_name):
        (reproduced / "data" / "mine.csv").symlink_to(outside_file(tmp_path))
        (reproduced / "far").symlink_to(tmp_path / "outside")  # a linked folder on the way: the same
        for value in ("data/mine.csv", "far/secret.csv"):
            set_param(reproduced, key, value)
            before = contents(reproduced / "metrics"), contents(reproduced / "models"), contents(reproduced / "data")
            result = run_in_process(reproduced, stage_name)
            line = error_line(result)
            assert line.startswith(f"error: params.yaml: {key} = {value!r}: ")
            assert "leads outside the repository: expected a file inside the repository or DVC's cache" in line
            assert SECRET not in result.stderr + result.stdout
            assert (contents(reproduced / "metrics"), contents(reproduced / "models"),
                    contents(reproduced / "data")) == before

    def test_a_link_into_dvcs_cache_set_outside_the_repository_is_read(self, reproduced, tmp_path):
        """DVC's cache.type symlink links an added file into cache.dir, wherever config.local puts it."""
        dvc(reproduced, "config", "--local", "cache.dir", str(tmp_path / "cache"))
        dvc(reproduced, "config", "--local", "cache.type", "symlink")
        shutil.copy(reproduced / "data" / "points.parquet", reproduced / "data" / "rows.parquet")
        dvc(reproduced, "add", "data/rows.parquet")
        assert (reproduced / "data" / "rows.parquet").resolve().is_relative_to(tmp_path / "cache")
        set_params(reproduced, {"predict.rows": "new", "predict.source": "data/rows.parquet",
                               "predict.output": "data/rows-predicted.csv"})
        result = run_in_process(reproduced, "predict")
        assert result.returncode == 0, result.stderr
        assert "tracked by neither" not in result.stderr
        assert (reproduced / "data" / "rows-predicted.csv").is_file()


class TestOutputsNeverOverwriteInputs:
    @pytest.mark.parametrize("path", DECLARED)
    def test_predict_output_at_any_dep_or_out_of_any_stage_is_refused_and_nothing_touched(self, shared, path):
        set_params(shared, {"predict.output": path, "predict.source": "examples/new_houses.csv"
                            if path == "data/points.parquet" else "data/points.parquet"})
        before = contents(shared / "data"), (shared / path).read_bytes()
        line = error_line(run_in_process(shared, "predict"))
        assert f"predict.output = {path!r}" in line
        assert (contents(shared / "data"), (shared / path).read_bytes()) == before

    @pytest.mark.parametrize("path", [path for path in ALL_OUTS if path.endswith(".csv")])
    def test_data_source_at_another_stages_table_is_refused_by_the_stage_that_writes_it(self, shared, path):
        writer = next(name for name in STAGES if path in declared(name)["outs"])
        set_params(shared, {"data.source": path})
        before = (shared / path).read_bytes()
        line = error_line(run_in_process(shared, writer))
        assert line.startswith(f"error: {path}: is also an input of this stage")
        assert (shared / path).read_bytes() == before
        set_params(shared, {"data.source": "data/points.parquet"})

    def test_a_git_tracked_or_dvc_tracked_file_a_folder_or_tilde_is_refused(self, reproduced, tmp_path, monkeypatch):
        shutil.copytree(reproduced / "examples", reproduced / "raw")
        dvc(reproduced, "add", "raw")
        (reproduced / "results" / "folder.csv").mkdir(parents=True)
        (reproduced / "alias").symlink_to("metrics")  # a linked folder inside the repository: where it lands counts
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        refusals = {
            "examples/houses.csv": "is a file git tracks",
            "raw/houses.csv": "is inside raw, tracked by DVC (raw.dvc)",
            "results/folder.csv": "predict.output = 'results/folder.csv': is a folder",
            "~/predictions.csv": "starts with '~'",
            ".dvc/predictions.csv": "git's or DVC's own folder",
            "alias/history.csv": "is metrics/history.csv, an output of stage 'train'",
        }
        before = contents(reproduced)
        for path, said in refusals.items():
            set_param(reproduced, "predict.output", path)
            assert said in error_line(run_in_process(reproduced, "predict")), path
        set_param(reproduced, "predict.output", "data/predictions.parquet")
        assert contents(reproduced) == {**before, "params.yaml": (reproduced / "params.yaml").read_bytes()}
        assert not (tmp_path / "home").exists() and not (reproduced / "~").exists()

    def test_an_existing_output_that_links_elsewhere_is_replaced_never_written_through(self, reproduced):
        """As DVC's symlink cache leaves an output: the link is replaced by the new file, its target untouched."""
        target = reproduced / "examples" / "new_houses.csv"
        before = target.read_bytes()
        output = reproduced / "data" / "predictions.parquet"
        output.unlink()
        output.symlink_to(target)
        assert run_in_process(reproduced, "predict").returncode == 0
        assert not output.is_symlink() and output.read_bytes()[:4] == b"PAR1"
        assert target.read_bytes() == before

    def test_through_dvc_a_git_tracked_output_is_refused_and_the_line_says_how_to_restore_it(self, reproduced):
        """DVC removes a stage's outs before its command: the file is gone, but no predictions take its place."""
        before = (reproduced / "examples" / "houses.csv").read_bytes()
        result = dvc(reproduced, "exp", "run", "-S", "predict.output=examples/houses.csv", check=False)
        assert result.returncode != 0
        assert ("error: predict.output = 'examples/houses.csv': is a file git tracks: expected a new file, so that it "
                "is not overwritten; nothing written (DVC removed it before running the stage: restore it with "
                "`git checkout -- examples/houses.csv`)") in result.stdout + result.stderr
        assert not (reproduced / "examples" / "houses.csv").exists()
        git(reproduced, "checkout", "--", "examples/houses.csv")
        assert (reproduced / "examples" / "houses.csv").read_bytes() == before


class TestUntrackedWarning:
    def test_predict_warns_of_an_untracked_source_as_train_does_and_neither_imports_dvc(self, reproduced):
        shutil.copy(reproduced / "data" / "points.parquet", reproduced / "data" / "rows.parquet")
        set_params(reproduced, {"predict.rows": "new", "predict.source": "data/rows.parquet",
                               "predict.output": "data/rows-predicted.csv"})
        result = run_in_process(reproduced, "predict")
        assert result.returncode == 0
        assert result.stderr == ("warning: data/rows.parquet is tracked by neither DVC nor git, so a clone cannot "
                                 "reproduce this run: run `dvc add data/rows.parquet`\n")
        dvc(reproduced, "add", "data/rows.parquet")
        assert run_in_process(reproduced, "predict").stderr == ""
        # Learnt from dvc.yaml, the .dvc files and git's index: DVC's import alone took 1.1 s.
        check = ("import sys; from pathlib import Path; from pipeline.repository import is_tracked; "
                 "assert [is_tracked(Path(p)) for p in ('data/points.parquet', 'data/rows.parquet', 'params.yaml', "
                 "'data/other.csv')] == [True, True, True, False]; assert 'dvc' not in sys.modules")
        subprocess.run([sys.executable, "-c", check], cwd=reproduced, check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
