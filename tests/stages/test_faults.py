"""Faults: a stage killed in the middle, two `dvc repro` at once, a stage that fails. None of them may
leave a half-written output, a corrupted dvc.lock, or a file that `git add --all` would commit.

The fault is set off inside the real stage process, at the moment it moves its first finished output
into place (see tests/faults/sitecustomize.py), so that each test hits the same point every time.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import files
from workspace import (
    ALL_OUTS, OUTS, ROOT, STAGES, copy_project, dvc, environment, files_in, git, read_outs, run,
    set_param,
)

FAULTS = ROOT / "tests" / "faults"


def repro_only(stage_name: str) -> tuple[str, ...]:
    """`dvc repro` that runs this one stage again, even though nothing changed."""
    return "repro", "--force", "--single-item", stage_name


def fault(stage_name: str, kind: str, **extra: str) -> dict[str, str]:
    return {"PYTHONPATH": str(FAULTS), "FAULT_STAGE": stage_name, "FAULT": kind, **extra}


def untracked_or_changed(project: Path) -> str:
    """What `git add --all` would commit."""
    return git(project, "status", "--porcelain", "--untracked-files=all")


def assert_intact(project: Path, committed_outs: dict[str, bytes]) -> None:
    """Every output is either gone or exactly what was committed: none is half-written."""
    for path, content in committed_outs.items():
        assert not (project / path).exists() or (project / path).read_bytes() == content, f"{path} is half-written"


@pytest.mark.parametrize("stage_name", STAGES)
def test_a_stage_killed_mid_run_leaves_no_half_written_output_and_the_next_repro_restores_the_committed_lock(
        reproduced, stage_name):
    committed_outs = read_outs(reproduced)
    killed = dvc(reproduced, *repro_only(stage_name), check=False, **fault(stage_name, "kill"))
    # The fault fires as the stage moves its first finished output from a temporary file into place.
    assert killed.returncode != 0, f"{stage_name} never renamed a temporary file: does it still write atomically?"
    assert [path for out in OUTS[stage_name] for path in (reproduced / out).parent.glob(".*.tmp")]
    assert_intact(reproduced, committed_outs)
    assert untracked_or_changed(reproduced) == ""

    dvc(reproduced, "repro")
    assert (reproduced / "dvc.lock").read_text() == git(reproduced, "show", "HEAD:dvc.lock")
    assert read_outs(reproduced) == committed_outs
    assert untracked_or_changed(reproduced) == ""


def test_a_write_that_fails_halfway_leaves_the_previous_file_and_no_temporary_one(tmp_path):
    path = tmp_path / "models" / "model.safetensors"
    path.parent.mkdir()
    path.write_bytes(b"previous model")
    with pytest.raises(OSError), files.atomic_output(path) as temporary:
        temporary.write_bytes(b"half a mo")
        raise OSError("disk full")
    assert path.read_bytes() == b"previous model"
    assert files_in(tmp_path) == {"models/model.safetensors"}


def test_a_second_repro_while_one_runs_stops_with_dvcs_lock_message_and_the_first_completes(reproduced, tmp_path):
    # While a stage's command runs, DVC holds no repository lock but locks the stage's deps and outs
    # (.dvc/tmp/rwlock): a second repro stops on those, naming the process that holds them.
    committed_outs = read_outs(reproduced)
    fifo = tmp_path / "release"
    os.mkfifo(fifo)
    first = subprocess.Popen(
        [sys.executable, "-m", "dvc", *repro_only("train")], cwd=reproduced, text=True,
        env=environment(**fault("train", "pause", FAULT_FIFO=str(fifo))),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        # Reads until train, inside the first repro, has paused (or the first repro has ended).
        assert "paused\n" in iter(first.stderr.readline, ""), "train never paused"
        second = dvc(reproduced, "repro", check=False)
        assert second.returncode != 0
        assert f"is busy, it is being blocked by:\n  (PID {first.pid}): " in second.stderr, second.stderr
        fifo.write_text("go on")
        stdout, stderr = first.communicate()
        assert first.returncode == 0, stdout + stderr
    finally:
        if first.poll() is None:  # the test failed with the first repro still paused: end it
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    assert (reproduced / "dvc.lock").read_text() == git(reproduced, "show", "HEAD:dvc.lock")
    assert read_outs(reproduced) == committed_outs
    assert "up to date" in dvc(reproduced, "status").stdout
    assert untracked_or_changed(reproduced) == ""


def test_after_a_failed_stage_every_output_dvc_tracks_is_still_git_ignored(tmp_path):
    project = copy_project(tmp_path / "project")  # a fresh clone: no output exists yet
    set_param(project, "train.lr", 10.0)
    failed = dvc(project, "repro", check=False)
    assert failed.returncode != 0 and "error: training diverged" in failed.stderr
    assert (project / "data/points.parquet").exists()  # synthesize ran before train failed
    # Only files git tracks changed: the edited params.yaml, and dvc.lock if DVC recorded synthesize.
    changed = {line[3:] for line in untracked_or_changed(project).splitlines() if not line.startswith("??")}
    assert untracked_or_changed(project).splitlines() == [f" M {name}" for name in sorted(changed)]
    assert "params.yaml" in changed and changed <= {"params.yaml", "dvc.lock"}
    matches = run(["git", "check-ignore", "--verbose", "--non-matching", *ALL_OUTS], project, check=False).stdout
    assert [line for line in matches.splitlines() if line.startswith("::")] == []


@pytest.mark.parametrize(("signum", "said"), [(signal.SIGTERM, "stopped by SIGTERM"), (signal.SIGHUP, "stopped by SIGHUP")])
def test_sigterm_or_sighup_in_one_process_ends_as_ctrl_c_does(tmp_path, signum, said):
    """One line, exit 128 + the signal, no temporary file: the stage is paused as it renames its first output
    (FAULT=pause, waiting on a FIFO that is never written), so the signal comes while a finished temporary file
    waits."""
    project = copy_project(tmp_path / "project", with_git=False)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    running = subprocess.Popen([sys.executable, "-m", "pipeline.synthesize"], cwd=project,
                               env=environment(**fault("synthesize", "pause", FAULT_FIFO=str(fifo))),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert running.stderr.readline() == "paused\n"
    running.send_signal(signum)
    stdout, stderr = running.communicate(timeout=60)
    assert (running.returncode, stderr) == (128 + signum, f"error: {said}: nothing written\n")
    assert files_in(project / "data") == {".gitignore"}
