"""Each stage as a process: what it prints, what it imports, and its progress bar."""

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest

from pipeline.files import HISTORY, read_history
from workspace import environment, stage


@pytest.mark.parametrize("name", ["synthesize", "visualize"])
def test_synthesize_and_visualize_never_import_torch(reproduced, name):
    check = f"import sys\nfrom pipeline import {name}\n{name}.main()\nprint('torch' in sys.modules)\n"
    result = subprocess.run([sys.executable, "-c", check], cwd=reproduced, env=environment(),
                            capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "False"


def test_train_prints_the_model_and_its_initial_parameters(reproduced):
    output = stage(reproduced, "train", check=True).stdout
    assert "Linear(in_features=1, out_features=1, bias=True)" in output
    m_initial, c_initial = re.search(r"initial m = (\S+), c = (\S+)", output).groups()
    history = read_history(reproduced / HISTORY)
    assert (float(m_initial), float(c_initial)) == pytest.approx((history["m"][0], history["c"][0]), rel=1e-5)


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
    assert "301/301" in train_stderr(reproduced, on_a_terminal=True)
    assert "epoch" not in train_stderr(reproduced, on_a_terminal=False)
