"""Temporary copies of the project, and the real git, dvc and stage commands run inside them."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("synthesize", "train", "evaluate", "visualize")

# What each stage writes, as dvc.yaml declares it.
OUTS = {
    "synthesize": ("data/points.parquet", "data/truth.json"),
    "train": ("models/model.pt", "metrics/history.csv"),
    "evaluate": ("metrics/metrics.json",),
    "visualize": ("plots/data.png", "plots/loss.png", "plots/fit.png", "plots/parameters.png"),
}
ALL_OUTS = tuple(path for paths in OUTS.values() for path in paths)


def environment(**extra: str) -> dict[str, str]:
    """The environment `make` gives: this interpreter's bin first on PATH, so dvc runs our python."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env.update(extra)
    return env


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
    """Copy the project's files into `destination`; with_git: as the first commit of a new repository."""
    for name in project_files():
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    if with_git:
        git(destination, "init", "--quiet", "--initial-branch=main")
        git(destination, "config", "user.name", "Pipeline Tests")
        git(destination, "config", "user.email", "tests@example.invalid")
        git(destination, "add", "--all")
        git(destination, "commit", "--quiet", "--message", "project")
    return destination


def ran(output: str) -> set[str]:
    """The stages a `dvc repro` actually executed."""
    return set(re.findall(r"Running stage '([^']+)'", output))


def restored(output: str) -> set[str]:
    """The stages a `dvc repro` restored from the run-cache instead of executing."""
    return set(re.findall(r"Stage '([^']+)' is cached - skipping run, checking out outputs", output))


def set_param(project: Path, key: str, value) -> None:
    """Set `section.name` in params.yaml, keeping its comments."""
    yaml = YAML()  # round-trip mode keeps comments and order
    path = project / "params.yaml"
    document = yaml.load(path)
    section, name = key.split(".")
    document[section][name] = value
    yaml.dump(document, path)


def read_outs(project: Path, paths=ALL_OUTS) -> dict[str, bytes]:
    return {path: (project / path).read_bytes() for path in paths}
