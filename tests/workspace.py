"""Temporary copies of the project, and the real git, dvc and stage commands run inside them."""

import contextlib
import importlib
import io
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

from pipeline.errors import run_stage
import tools.commands
from tools.bytecode import copy_bytecode
from tools.project import ROOT, declared, set_params, stage_names
from tools.plots_page import write_page


STAGES = stage_names(ROOT)
# What each stage writes, as dvc.yaml declares it.
OUTS = {stage_name: tuple(declared(stage_name)["outs"]) for stage_name in STAGES}
ALL_OUTS = tuple(path for paths in OUTS.values() for path in paths)
# A train.lr too small for the committed train.epochs to reach least squares: training runs every epoch and
# stops at its own distance from it (conftest's lower_lr_template is the project reproduced with it).
LOWER_LR = 0.002


def environment(**extra: str) -> dict[str, str]:
    """The environment `make` gives (this interpreter's bin first on PATH), plus `extra`."""
    return {**tools.commands.environment(), "DVC_NO_ANALYTICS": "1", **extra}


def run(args: list[str], cwd: Path, check: bool = True, **extra_env: str) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=environment(**extra_env), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def dvc(project: Path, *args: str, check: bool = True, **extra_env: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], project, check=check, **extra_env)


def git(project: Path, *args: str) -> str:
    return run(["git", *args], project).stdout


def stage(project: Path, name: str, check: bool = False, **extra_env: str) -> subprocess.CompletedProcess:
    """Run one stage the way dvc.yaml does: `python -m pipeline.<name>` from the project root."""
    return run([sys.executable, "-m", f"pipeline.{name}"], project, check=check, **extra_env)


def project_files() -> list[str]:
    """The files a fresh clone has: tracked, plus new files not yet committed but not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    return sorted(name for name in listed.split("\0") if name and (ROOT / name).is_file())


def copy_project(destination: Path, *, with_git: bool = True) -> Path:
    """Copy the project's files into `destination`, set up as `make` does; with_git: as the first commit of a new
    repository."""
    for name in project_files():
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    write_page(destination)  # what `make` writes at set-up and git ignores: the page `dvc plots` fills
    copy_bytecode(ROOT, destination)  # and the stages' bytecode, which `make test` wrote here
    if with_git:
        git(destination, "init", "--quiet", "--initial-branch=main")
        git(destination, "config", "user.name", "Pipeline Tests")
        git(destination, "config", "user.email", "tests@example.invalid")
        commit(destination, "project")
    return destination


def ran(output: str) -> set[str]:
    """The stages a `dvc repro` actually executed."""
    return set(re.findall(r"Running stage '([^']+)'", output))


def restored(output: str) -> set[str]:
    """The stages a `dvc repro` restored from the run-cache instead of executing."""
    return set(re.findall(r"Stage '([^']+)' is cached - skipping run, checking out outputs", output))


def set_param(project: Path, key: str, value) -> None:
    """Set `section.name` in params.yaml, keeping its comments."""
    set_params(project, {key: value})


def read_outs(project: Path, paths=ALL_OUTS) -> dict[str, bytes]:
    return {path: (project / path).read_bytes() for path in paths}


def assert_pull_brings_every_output_and_repro_runs_nothing(origin: Path, clone: Path) -> None:
    """In a git clone of `origin` that can reach its remote: git brings no output, `dvc pull` brings
    them all, byte for byte, and `dvc repro` then has nothing to run or restore."""
    assert not any((clone / path).exists() for path in ALL_OUTS)  # git holds no output, only dvc.lock
    dvc(clone, "pull")
    assert read_outs(clone) == read_outs(origin)
    output = dvc(clone, "repro").stdout
    assert ran(output) == set()
    assert restored(output) == set()
    assert "Data and pipelines are up to date." in output


def isolate(source: Path, destination: Path, stage_name: str) -> Path:
    """A folder holding only what dvc.yaml lets the stage see: its declared deps, taken from `source`
    (a reproduced project), and params.yaml."""
    for name in [*declared(stage_name, source)["deps"], "params.yaml"]:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target)
    return destination


def files_in(folder: Path) -> set[str]:
    """Every file below `folder`, as paths relative to it."""
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}


def contents(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` with its bytes."""
    return {name: (folder / name).read_bytes() for name in files_in(folder)}


def run_in_process(project: Path, name: str) -> subprocess.CompletedProcess:
    """Run stage `name` as `python -m pipeline.<name>` does (its main() under run_stage), but in this
    process, from `project`: much faster than a new process for tests that run a stage hundreds of times.

    stderr holds what the process would print there: run_stage's line, and the warnings Python shows by
    default. Any other exception propagates, as it would end the process with a traceback.
    """
    main = importlib.import_module(f"pipeline.{name}").main
    stdout, stderr = io.StringIO(), io.StringIO()
    returncode = 0
    with contextlib.chdir(project), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), \
            warnings.catch_warnings(record=True) as shown:
        _default_warning_filters()
        try:
            run_stage(main)
        except SystemExit as stop:
            returncode = stop.code
    for warning in shown:
        stderr.write(warnings.formatwarning(warning.message, warning.category, warning.filename, warning.lineno))
    return subprocess.CompletedProcess([name], returncode, stdout.getvalue(), stderr.getvalue())


def _default_warning_filters() -> None:
    """The filters of a plain `python` process, instead of pytest's."""
    warnings.resetwarnings()
    warnings.simplefilter("default")
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category)


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one line a stage that refuses its input prints: exit 1, "error: …" on stderr, no traceback."""
    lines = result.stderr.splitlines()
    assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), (
        f"expected exit 1 and one line 'error: …' on stderr, got exit {result.returncode}:\n{result.stderr}"
    )
    return lines[0]


def commit(project: Path, message: str) -> None:
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--allow-empty", "--message", message)


def make(project: Path, target: str, *variables: str, **extra_env: str) -> subprocess.CompletedProcess:
    """Run a Makefile target in `project`. `-o` takes the venv stamp as made, so make installs nothing:
    a copy has no .venv, and this interpreter, first on PATH, has every requirement."""
    return run(["make", "--silent", "--no-print-directory", "-o", ".venv/.installed", target, *variables], project,
               check=False, **extra_env)
