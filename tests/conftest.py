import ast
import fcntl
import functools
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
from xdist.scheduler import LoadScopeScheduling

from workspace import LOWER_LR, commit, copy_project, dvc, set_param


class Rerun(NamedTuple):
    project: Path
    output: str  # what its `dvc repro` printed


def built_once(tmp_path_factory, name: str, build: Callable[[Path], str]) -> tuple[Path, str]:
    """The folder `build` fills, and the text it returns: built once in a whole run, even by pytest-xdist's
    workers, which share the run's temporary folder; a worker that needs it while another builds it waits."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    folder, done = root / name, root / f"{name}.done"
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even if build fails
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a failed build left
            done.write_text(build(folder))
    return folder, done.read_text()


# Slowest first, so that two workers end together: end-to-end runs of dvc, then the tools that run it, then
# single stages, then the in-memory unit tests.
FOLDERS_BY_COST = ("e2e", "tooling", "stages", "unit")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def cost_rank(item: pytest.Item) -> int:
        folder = item.path.parent.name
        return FOLDERS_BY_COST.index(folder) if folder in FOLDERS_BY_COST else len(FOLDERS_BY_COST)

    items.sort(key=cost_rank)  # stable: each folder's tests keep their order


class ModuleFixturesOnOneWorker(LoadScopeScheduling):
    """`--dist loadgroup` (pyproject.toml) with its groups found here: the tests of a module that defines a
    module-scoped fixture (a project run through `dvc repro` or more) run on one worker, so that it is built
    once; every other test goes on its own, in the order above, to whichever worker is free. (pytest-xdist's
    own xdist_group marks do not reach its scheduler under pytest 9: it renames items by a field pytest no
    longer reads.)"""

    def _split_scope(self, nodeid: str) -> str:
        module = nodeid.split("::", 1)[0]
        return module if defines_module_fixture(self.config.rootpath / module) else nodeid


@functools.cache
def defines_module_fixture(path: Path) -> bool:
    """Whether the test file has a `@pytest.fixture(scope="module")`; read, not imported, by the scheduler."""
    return any(isinstance(node, ast.keyword) and node.arg == "scope" and isinstance(node.value, ast.Constant)
               and node.value.value == "module" for node in ast.walk(ast.parse(path.read_bytes())))


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log) -> LoadScopeScheduling | None:
    return ModuleFixturesOnOneWorker(config, log) if config.getvalue("dist") == "loadgroup" else None


@pytest.fixture(scope="session")
def reproduced_template(tmp_path_factory) -> Path:
    """A git + DVC copy of the project after one full `dvc repro`; copy it, never change it."""
    def build(folder: Path) -> str:
        project = copy_project(folder / "project")
        output = dvc(project, "repro").stdout
        commit(project, "repro")
        return output

    folder, _ = built_once(tmp_path_factory, "template", build)
    return folder / "project"


@pytest.fixture
def reproduced(reproduced_template, tmp_path) -> Path:
    """A private copy of the reproduced project, DVC cache and git history included."""
    return Path(shutil.copytree(reproduced_template, tmp_path / "project", symlinks=True))


@pytest.fixture(scope="session")
def lower_lr_template(reproduced_template, tmp_path_factory) -> Rerun:
    """The reproduced project after `train.lr: LOWER_LR` in params.yaml and a `dvc repro`, not committed,
    and what the repro printed; copy it, never change it."""
    def build(folder: Path) -> str:
        project = shutil.copytree(reproduced_template, folder / "project", symlinks=True)
        set_param(project, "train.lr", LOWER_LR)
        return dvc(project, "repro").stdout

    folder, output = built_once(tmp_path_factory, "lower_lr", build)
    return Rerun(folder / "project", output)


@pytest.fixture
def lower_lr(lower_lr_template, tmp_path) -> Path:
    """A private copy of `lower_lr_template`'s project."""
    return Path(shutil.copytree(lower_lr_template.project, tmp_path / "project", symlinks=True))
