"""train.processes > 1: the stage runs itself under torchrun (all_reduce over gloo on CPU), and
gives one process's answer; a process that dies fails the stage with one line and writes nothing."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from pipeline.files import HISTORY, MODEL, read_history
from pipeline.linear import Description
from workspace import environment, error_line, set_params, stage

COLUMNS = ("train_loss", "test_loss", "x", "intercept")


def trained(project: Path, **changes) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    set_params(project, {f"train.{key}": value for key, value in changes.items()})
    stage(project, "train", check=True)
    return load_file(project / MODEL), read_history(project / HISTORY, COLUMNS)


def largest_relative_difference(one: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> float:
    """Over the arrays of the same name: the largest difference relative to the largest magnitude of that
    array (a value crossing zero during training has no relative difference of its own)."""
    return max(float(np.max(np.abs(one[key].astype(np.float64) - other[key])) / np.max(np.abs(other[key])))
               for key in one)


@pytest.mark.parametrize(("dtype", "batch_size", "tolerance"), [
    ("float64", None, 1e-12), ("float32", None, 1e-6), ("float64", 64, 1e-12), ("float32", 64, 1e-6)])
def test_two_processes_give_one_process_answer(reproduced, dtype, batch_size, tolerance):
    alone = trained(reproduced, dtype=dtype, batch_size=batch_size, epochs=150, processes=1)
    together = trained(reproduced, dtype=dtype, batch_size=batch_size, epochs=150, processes=2)
    assert largest_relative_difference(together[0], alone[0]) <= tolerance
    assert largest_relative_difference(together[1], alone[1]) <= tolerance
    # Training happened: the same answer is not the initial weights'.
    assert alone[1]["train_loss"][0] > 2 * alone[1]["train_loss"][-1]


def train_processes(project: Path) -> dict[int, int]:
    """{rank: pid} of the processes torchrun started for the stage running in `project`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            variables = dict(item.split("=", 1) for item in (entry / "environ").read_text().split("\0") if "=" in item)
            if Path(os.readlink(entry / "cwd")) == project and "TORCHELASTIC_RUN_ID" in variables:
                found[int(variables["RANK"])] = int(entry.name)
        except (OSError, ValueError):
            continue
    return found


def test_a_killed_process_fails_the_stage_with_one_line_and_writes_nothing(reproduced):
    set_params(reproduced, {"train.processes": 2, "train.epochs": 1_000_000, "train.stop_when_converged": False})
    for path in (MODEL, HISTORY):
        (reproduced / path).unlink()
    running = subprocess.Popen([sys.executable, "-m", "pipeline.train"], cwd=reproduced, env=environment(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(processes := train_processes(reproduced.resolve())) < 2:
        assert running.poll() is None and time.monotonic() < deadline, "torchrun did not start 2 processes"
        time.sleep(0.1)
    time.sleep(2)  # well into training
    os.kill(processes[1], signal.SIGKILL)
    stdout, stderr = running.communicate(timeout=60)
    line = error_line(subprocess.CompletedProcess(running.args, running.returncode, stdout, stderr))
    assert line == ("error: train.processes = 2: process 1 of 2 was killed by SIGKILL before training finished: "
                    "nothing written")
    assert not (reproduced / MODEL).exists() and not (reproduced / HISTORY).exists()
    assert not list(reproduced.glob(".train.*")), "the processes' folder is left behind"
    assert not train_processes(reproduced.resolve()), "a process outlived the stage"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_under_torchrun_ends_with_one_line_and_writes_nothing(reproduced, signum):
    """As in one process: one line, exit 128 + the signal, the earlier outputs intact (a 28-line traceback
    before, for SIGTERM)."""
    set_params(reproduced, {"train.processes": 2, "train.epochs": 1_000_000, "train.stop_when_converged": False})
    before = {path: (reproduced / path).read_bytes() for path in (MODEL, HISTORY)}
    running = subprocess.Popen([sys.executable, "-m", "pipeline.train"], cwd=reproduced, env=environment(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(train_processes(reproduced.resolve())) < 2:
        assert running.poll() is None and time.monotonic() < deadline, "torchrun did not start 2 processes"
        time.sleep(0.1)
    time.sleep(2)  # well into training
    running.send_signal(signum)
    stdout, stderr = running.communicate(timeout=60)
    name = "interrupted (Ctrl-C)" if signum == signal.SIGINT else "stopped by SIGTERM"
    assert (running.returncode, stderr) == (128 + signum, f"error: {name}: nothing written\n")
    assert {path: (reproduced / path).read_bytes() for path in (MODEL, HISTORY)} == before
    assert not list(reproduced.glob(".train.*")), "the processes' folder is left behind"
    assert not train_processes(reproduced.resolve()), "a process outlived the stage"


def test_an_error_in_the_processes_is_their_one_line(reproduced):
    set_params(reproduced, {"train.standardize": False, "train.lr": 1000.0, "train.epochs": 50})
    alone = error_line(stage(reproduced, "train"))
    assert alone.startswith("error: training diverged")
    set_params(reproduced, {"train.processes": 2})
    assert error_line(stage(reproduced, "train")) == alone


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a CUDA device")
def test_cuda_without_a_gpu_stops_with_one_line(reproduced):
    (reproduced / MODEL).unlink()
    set_params(reproduced, {"train.device": "cuda"})
    line = error_line(stage(reproduced, "train"))
    assert line.startswith("error: params.yaml: train.device = 'cuda': ") and "expected train.device: cpu" in line
    assert not (reproduced / MODEL).exists()


def test_a_text_column_is_coded_alike_in_every_process(reproduced):
    """Each process finds the factor's levels among the same training rows: two processes learn the one
    process's model, its columns coded alike, for a model with a text column. The weights agree to float32
    rounding, not bit for bit: each process sums the gradient over its 24 of the 48 training rows, and
    whether two halves add up to the bits of one sum depends on the CPU's matrix-product kernel (an Intel
    CPU's MKL gives the same bits, an AMD one's the last bit of a weight apart: docs/reproducibility.md)."""
    rents = reproduced / "data" / "rents.csv"
    rents.write_bytes((reproduced / "examples" / "rents.csv").read_bytes())
    set_params(reproduced, {"data.source": "data/rents.csv", "data.features": ["area", "region"],
                            "data.target": "rent"})
    models = []
    for processes in (1, 2):
        set_params(reproduced, {"train.processes": processes})
        stage(reproduced, "train", check=True)
        models.append((Description.load(reproduced / MODEL), load_file(reproduced / MODEL)))
    (one, alone), (two, together) = models
    assert one == two  # the same columns, levels and names
    for name in ("weight", "bias"):  # measured: 3e-7 apart; a column coded otherwise moves a weight by far more
        np.testing.assert_allclose(together[name], alone[name], rtol=1e-5, atol=0)
    assert Description.load(reproduced / MODEL).features == ('region[T.U.S. "West"]', "region[T.east]", "region[T.north]",
                                                             "area")  # the factor's columns, by statsmodels' names
