"""A full disk, a read-only folder, a folder where a file goes: one line that names the path and what to do, a
nonzero exit, no temporary file left, the earlier outputs intact; and found before a long run, not after it.
Real file systems: a small tmpfs, a read-only bind mount (where this machine lets the test mount them)."""

import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.files import TableWriter
from workspace import contents, error_line, run_in_process, set_params, stage

# Training that would run for hours: a refusal must come before it.
ENDLESS = {"train.epochs": 1_000_000, "train.stop_when_converged": False}


def mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True) if shutil.which("mount") else None
    if result is None or result.returncode != 0:
        reason = result.stderr.strip() if result is not None else "no mount command"
        pytest.skip(f"cannot mount a file system here ({reason}): the test needs root or CAP_SYS_ADMIN")


@contextmanager
def small_disk(folder: Path, size: str, fill: bool = False):
    """`folder` on a tmpfs of `size`, holding the files it held; with fill, not one byte free."""
    kept = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
    try:
        for name, data in kept.items():
            (folder / name).write_bytes(data)
        if fill:
            try:
                with open(folder / "filler", "wb") as filler:
                    while True:
                        filler.write(bytes(4096))
            except OSError:
                pass
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


@contextmanager
def read_only(folder: Path):
    mount("--bind", str(folder), str(folder))
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def temporaries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.glob(".*.tmp"))


class TestFullDisk:
    def test_a_disk_that_fills_while_a_stage_writes_is_one_line_and_the_earlier_file_stays(self, reproduced):
        set_params(reproduced, {"synthesize.n_points": 200_000})
        data = reproduced / "data"
        with small_disk(data, "256k"):
            before = contents(data)
            line = error_line(run_in_process(reproduced, "synthesize"))
            assert line == ("error: data/points.parquet: cannot write it (No space left on device): free space on "
                            "its disk, then run the stage again; data/points.parquet left as it was")
            assert contents(data) == before and temporaries(data) == []

    def test_a_full_disk_is_found_before_training(self, reproduced):
        set_params(reproduced, ENDLESS)
        metrics = reproduced / "metrics"
        with small_disk(metrics, "64k", fill=True):
            before = contents(reproduced / "models"), (metrics / "history.csv").read_bytes()
            started = time.monotonic()
            line = error_line(run_in_process(reproduced, "train"))
            assert time.monotonic() - started < 60
            assert line.startswith("error: metrics/history.csv: cannot write it (No space left on device): ")
            assert (contents(reproduced / "models"), (metrics / "history.csv").read_bytes()) == before


class TestReadOnlyFolder:
    def test_a_read_only_metrics_folder_is_found_before_training_not_after(self, reproduced):
        set_params(reproduced, ENDLESS)
        before = contents(reproduced / "models")
        with read_only(reproduced / "metrics"):
            started = time.monotonic()
            line = error_line(stage(reproduced, "train"))
            assert time.monotonic() - started < 60
        assert line == ("error: metrics/history.csv: cannot write it (Read-only file system): its file system is "
                        "read-only: run the stage where it can write; nothing written")
        assert contents(reproduced / "models") == before

    @pytest.mark.parametrize(("stage_name", "folder"), [("evaluate", "models"), ("visualize", "plots"),
                                                        ("predict", "data")])
    def test_every_stage_says_which_file_it_cannot_write(self, reproduced, stage_name, folder):
        before = contents(reproduced)
        with read_only(reproduced / folder):
            line = error_line(run_in_process(reproduced, stage_name))
        assert line.startswith(f"error: {folder}/") and "(Read-only file system)" in line
        assert contents(reproduced) == before


class TestFolderWhereAFileGoes:
    def test_a_folder_as_an_output_is_one_line(self, reproduced):
        (reproduced / "metrics" / "metrics.json").unlink()
        (reproduced / "metrics" / "metrics.json").mkdir()
        line = error_line(run_in_process(reproduced, "evaluate"))
        assert line == "error: metrics/metrics.json: is a folder: expected a file to write; nothing written"

    def test_a_file_where_an_outputs_folder_goes_is_one_line(self, reproduced):
        shutil.rmtree(reproduced / "plots")
        (reproduced / "plots").write_text("not a folder\n", encoding="utf-8")
        line = error_line(run_in_process(reproduced, "visualize"))
        assert line.startswith("error: plots/data.png: cannot write it (File exists): a file stands where its folder")


def test_a_disk_that_fills_while_a_group_is_written_behind_the_caller_is_one_line_and_nothing_is_left(tmp_path,
                                                                                                    monkeypatch):
    """TableWriter writes a group on a thread of its own while the caller fills the next: the error of a write
    that fails there is raised to the caller, as a write of its own would be."""
    monkeypatch.chdir(tmp_path)
    folder = Path("out")
    folder.mkdir()
    values = np.random.default_rng(0).normal(size=200_000)  # 1.6 MB against 256 kB: groups 8 and on cannot fit
    with small_disk(folder, "256k"):
        with pytest.raises(PipelineError) as raised, TableWriter(folder / "t.parquet", ("a",), group_rows=4096) as writer:
            for start in range(0, len(values), 1000):
                writer.write({"a": values[start:start + 1000]})
        assert str(raised.value) == ("out/t.parquet: cannot write it (No space left on device): free space on its "
                                     "disk, then run the stage again; out/t.parquet left as it was")
        assert list(folder.iterdir()) == []
