"""Each stage as a process: what it prints, what it imports, and its progress bar."""

import contextlib
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest

from exact import exact_least_squares
from pipeline.dataset import gather
from pipeline.split import load_split
from pipeline.files import HISTORY, read_history
from pipeline.params import DataParams, TrainParams, load_params
from workspace import environment, stage


@pytest.mark.parametrize("name", ["synthesize", "visualize"])
def test_synthesize_and_visualize_never_import_torch(reproduced, name):
    check = f"import sys\nfrom pipeline import {name}\n{name}.main()\nprint('torch' in sys.modules)\n"
    result = subprocess.run([sys.executable, "-c", check], cwd=reproduced, env=environment(),
                            capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "False"


def test_train_prints_the_learnt_model_least_squares_and_the_gap_between_them(reproduced):
    output = stage(reproduced, "train", check=True).stdout.splitlines()
    assert len(output) == 6, output
    epochs = load_params(TrainParams, reproduced / "params.yaml").epochs
    run = len(read_history(reproduced / HISTORY, ("epoch",))["epoch"]) - 1
    assert 0 < run < epochs  # the committed params converge long before train.epochs
    assert output[5] == (f"stopped after epoch {run} of train.epochs = {epochs}: converged "
                         "(train.stop_when_converged: false runs every epoch)")
    learnt = re.fullmatch(
        rf"after {run} epochs on 800 training rows: x = (\S+), intercept = (\S+), train loss (\S+)", output[0])
    assert learnt, output[0]
    history = read_history(reproduced / HISTORY, ("x", "intercept", "train_loss"))
    # Six significant digits of the last row of the history: the model train saved.
    assert [float(value) for value in learnt.groups()] == pytest.approx(
        [history["x"][-1], history["intercept"][-1], history["train_loss"][-1]], rel=5e-6)
    # The least-squares line on the same 800 rows (1000 points, 20% held out), solved exactly another way.
    data = load_params(DataParams, reproduced / "params.yaml")
    with contextlib.chdir(reproduced):
        train = gather(load_split(data, fit_intercept=True).train)
    intercept, slope = exact_least_squares(train.features, train.target)
    ols = re.fullmatch(r"least squares: x = (\S+), intercept = (\S+)", output[1])
    assert ols, output[1]
    assert [float(value) for value in ols.groups()] == pytest.approx([slope, intercept], rel=5e-6)
    gap = re.fullmatch(r"largest prediction gap to least squares: (\S+) × sd\(y\) \(tolerance 0\.0001\)", output[2])
    assert gap, output[2]
    coefficients = re.fullmatch(
        r"largest coefficient gap to least squares: (\S+) standard errors \(tolerance 0\.01\)", output[3])
    assert coefficients, output[3]
    assert output[4] == "converged"
    metrics = json.loads((reproduced / "metrics" / "metrics.json").read_text())
    assert float(gap[1]) == pytest.approx(metrics["gap"], rel=5e-3)  # three digits of evaluate's gaps
    assert float(coefficients[1]) == pytest.approx(metrics["coefficient_gap"], rel=5e-3)


def train_stderr(project, on_a_terminal: bool) -> str:
    if not on_a_terminal:
        return stage(project, "train", check=True).stderr
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # a new pty is 0 columns wide
    process = subprocess.Popen([sys.executable, "-m", "pipeline.train"], cwd=project, env=environment(),
                               stdout=subprocess.DEVNULL, stderr=terminal)
    os.close(terminal)
    written = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closes when the process ends
            break
        if not chunk:
            break
        written += chunk
    assert process.wait() == 0
    os.close(controller)
    return written.decode(errors="replace")


def test_a_progress_bar_shows_the_epochs_only_when_stderr_is_a_terminal(reproduced):
    rows = load_params(TrainParams, reproduced / "params.yaml").epochs + 1  # the initial weights, then each epoch
    run = len(read_history(reproduced / HISTORY, ("epoch",))["epoch"]) - 1  # fewer: it stopped once converged
    assert f"{run}/{rows}" in train_stderr(reproduced, on_a_terminal=True)
    assert "epoch" not in train_stderr(reproduced, on_a_terminal=False)


# Loaded at startup by every process with its folder on PYTHONPATH: each garbage collection's generation, whether
# numpy is imported yet, and how many objects were frozen (gc.freeze) then, one line each, written at once (a stage
# ends with os._exit).
COLLECTIONS_SEEN = """
import gc, os, sys

def seen(phase, info):
    if phase == "start":
        line = f"{info['generation']} {'numpy' in sys.modules} {gc.get_freeze_count()}\\n"
        with open(os.environ["COLLECTIONS_FILE"], "a") as file:
            file.write(line)

gc.callbacks.append(seen)
"""


def test_a_stage_collects_garbage_only_among_the_objects_made_after_its_imports(reproduced, tmp_path):
    """The imports (numpy's and on) make objects that live as long as the process; no garbage collection walks
    them: none runs while they are imported, and they are frozen before the stage's work, whose own garbage is
    collected as usual."""
    (tmp_path / "hook" / "sitecustomize.py").parent.mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(COLLECTIONS_SEEN)
    for name in ("synthesize", "train", "evaluate", "visualize", "predict"):
        seen = tmp_path / f"{name}.txt"
        stage(reproduced, name, check=True, PYTHONPATH=str(tmp_path / "hook"), COLLECTIONS_FILE=str(seen))
        collections = [line.split() for line in seen.read_text().splitlines()]
        after_imports = [(generation, int(frozen)) for generation, numpy_seen, frozen in collections
                         if numpy_seen == "True"]
        assert after_imports, f"{name}: no garbage collection once its imports were done"
        assert min(frozen for _, frozen in after_imports) > 10_000, (name, collections)  # numpy alone makes more
