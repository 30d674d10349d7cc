"""Running git and dvc from the tools: output captured, a failure told in one line."""

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.errors import PipelineError

# dvc from this interpreter, so that the tools work with or without `make` putting .venv/bin on PATH.
DVC = (sys.executable, "-m", "dvc")


def environment() -> dict[str, str]:
    """This environment, with this interpreter first on PATH so that dvc.yaml's `python` is ours too.

    Everything else (OMP_NUM_THREADS, ATEN_CPU_CAPABILITY, …) passes through unchanged.
    """
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def run(args: Sequence[str], cwd: Path) -> str:
    """Run a command and return what it printed; on failure show its stderr, then raise one line."""
    result = subprocess.run(args, cwd=cwd, env=environment(), capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        shown = " ".join(args).replace(" ".join(DVC), "dvc")
        raise PipelineError(f"`{shown}` exited {result.returncode} in {cwd}")
    return result.stdout
