"""Only train imports torch (over a second to import): evaluate and visualize read the safetensors weights
with NumPy, and synthesize draws with NumPy."""

import re
import sys

import pytest

from workspace import STAGES, run


def modules_imported(project, stage_name: str) -> set[str]:
    """The top-level packages `python -X importtime -m pipeline.<stage>` imported while it ran."""
    result = run([sys.executable, "-X", "importtime", "-m", f"pipeline.{stage_name}"], project)
    return set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w]+)", result.stderr, flags=re.MULTILINE))


@pytest.mark.parametrize("stage_name", [name for name in STAGES if name != "train"])
def test_a_stage_other_than_train_never_imports_torch(reproduced, stage_name):
    imported = modules_imported(reproduced, stage_name)
    assert "numpy" in imported  # the check sees the stage's imports at all
    assert "torch" not in imported


def test_train_does_import_torch(reproduced):
    assert "torch" in modules_imported(reproduced, "train")
