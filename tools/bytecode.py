"""Python's bytecode cache of the stages' modules, written at set-up (`make repro`, `make test`).

Where PYTHONDONTWRITEBYTECODE is set, as in many containers, Python compiles every project module a stage
imports from its source each time the stage starts, and keeps nothing: about 55 ms a stage (80 ms for all
of pipeline/), a quarter of a second over the five stages of the tutorial's run. Python still reads a cache
that is there and matches its source, so set-up writes it. compileall skips the modules whose cache is
current; a module edited after set-up is compiled in memory until the next `make`, as before. The cache is
git-ignored, and no stage depends on it.
"""

import compileall
import shutil
import sys
from pathlib import Path

PACKAGES = ("pipeline",)  # what `dvc repro` runs


def write_bytecode(root: Path) -> bool:
    """Compile the packages' modules under `root` where their cache is missing or stale; False on a syntax error."""
    return all(compileall.compile_dir(root / package, quiet=1) for package in PACKAGES)


def copy_bytecode(source: Path, destination: Path) -> None:
    """The cache of `source`'s packages into a copy of the project whose modules kept their modification times
    (shutil.copy2): Python uses it there as it is, and passes over a stale one."""
    for package in PACKAGES:
        cache = source / package / "__pycache__"
        if cache.is_dir():
            shutil.copytree(cache, destination / package / "__pycache__", dirs_exist_ok=True)


if __name__ == "__main__":
    sys.exit(0 if write_bytecode(Path.cwd()) else 1)  # make runs every target from the project root
