"""What the benchmarks share: a clean clone of the project, and the machine they ran on."""

import os
import platform
import subprocess
import tempfile
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("synthesize", "train", "evaluate", "visualize")


def clone_head() -> Path:
    """A fresh clone of the committed project in a new temporary folder; the caller removes it."""
    folder = Path(tempfile.mkdtemp(prefix="bench-"))
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(folder / "project")], check=True)
    return folder / "project"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def set_points(project: Path, n_points: int) -> dict:
    """Set synthesize.n_points in the clone's params.yaml; return all params."""
    yaml = YAML()
    params = yaml.load(project / "params.yaml")
    params["synthesize"]["n_points"] = n_points
    yaml.dump(params, project / "params.yaml")
    return params
