"""train.device: cuda, where a GPU is lent (the tool library's device entry), skipped with a reason elsewhere:
deterministic on CUDA (the same run twice gives the same bytes), and the CPU's answer to the last bits.

Self-contained (no dvc, no plots page), so that it runs on a GPU machine with only train's requirements.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from pipeline.files import HISTORY, MODEL
from tools.project import set_params

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device here: run where a GPU is lent (see docs/scale.md, A GPU)")
SETTINGS = {  # name: train settings
    "full batch float32": {"dtype": "float32", "epochs": 200},
    "mini-batches float32": {"dtype": "float32", "epochs": 5, "batch_size": 4096},
    "lbfgs float64": {"dtype": "float64", "epochs": 30, "optimizer": "lbfgs", "lr": 1.0},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The pipeline and 300,000 synthetic points: more than one chunk of rows."""
    folder = tmp_path_factory.mktemp("cuda") / "project"
    shutil.copytree(ROOT / "pipeline", folder / "pipeline")
    shutil.copy(ROOT / "params.yaml", folder)
    set_params(folder, {"synthesize.n_points": 300_000})
    subprocess.run([sys.executable, "-m", "pipeline.synthesize"], cwd=folder, check=True, capture_output=True)
    return folder


def train(project: Path, device: str, settings: dict) -> tuple[bytes, bytes, str]:
    shutil.copy(ROOT / "params.yaml", project)
    changes = {f"train.{key}": value for key, value in settings.items()}
    set_params(project, {"synthesize.n_points": 300_000, "train.device": device, **changes})
    result = subprocess.run([sys.executable, "-m", "pipeline.train"], cwd=project, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return (project / MODEL).read_bytes(), (project / HISTORY).read_bytes(), result.stdout


@pytest.mark.parametrize("name", SETTINGS)
def test_the_same_run_on_cuda_twice_gives_the_same_bytes(project, name):
    first, again = train(project, "cuda", SETTINGS[name]), train(project, "cuda", SETTINGS[name])
    assert first[:2] == again[:2]
    assert " on cuda: " in first[2]


@pytest.mark.parametrize("name", SETTINGS)
def test_cuda_and_cpu_differ_at_most_in_the_last_bits(project, name):
    cuda, cpu = train(project, "cuda", SETTINGS[name]), train(project, "cpu", SETTINGS[name])
    (project / MODEL).write_bytes(cuda[0])
    on_cuda = load_file(project / MODEL)
    (project / MODEL).write_bytes(cpu[0])
    on_cpu = load_file(project / MODEL)
    relative = max(float(np.max(np.abs(on_cuda[key].astype(np.float64) - on_cpu[key]) / np.abs(on_cpu[key])))
                   for key in on_cpu)
    print(f"\n{name}: weights identical on CUDA and CPU: {cuda[0] == cpu[0]}; "
          f"largest relative difference {relative:.3g}; {torch.cuda.get_device_name()}")
    assert relative <= (1e-5 if SETTINGS[name]["dtype"] == "float32" else 1e-12)
