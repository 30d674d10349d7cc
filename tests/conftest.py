import shutil
from pathlib import Path

import pytest

from workspace import commit, copy_project, dvc


@pytest.fixture(scope="session")
def reproduced_template(tmp_path_factory) -> Path:
    """A git + DVC copy of the project after one full `dvc repro`; copy it, never change it."""
    project = copy_project(tmp_path_factory.mktemp("template") / "project")
    dvc(project, "repro")
    commit(project, "repro")
    return project


@pytest.fixture
def reproduced(reproduced_template, tmp_path) -> Path:
    """A private copy of the reproduced project, DVC cache and git history included."""
    return Path(shutil.copytree(reproduced_template, tmp_path / "project", symlinks=True))
