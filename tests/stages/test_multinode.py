"""Several machines: two torchrun nodes (here two commands on 127.0.0.1, each in its own copy of the
project, as two machines would be) meet through a c10d rendezvous and give one process's answer. Global
rank 0, on whichever node c10d puts it, writes the outputs in its own copy."""

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from pipeline.files import HISTORY, MODEL, read_history
from workspace import environment, set_params, stage


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_torchrun_nodes_give_the_one_process_answer_and_one_node_writes_the_outputs(reproduced, tmp_path):
    set_params(reproduced, {"train.dtype": "float64", "train.epochs": 150})
    stage(reproduced, "train", check=True)
    alone = load_file(reproduced / MODEL), read_history(reproduced / HISTORY, ("train_loss", "x", "intercept"))
    nodes = [Path(shutil.copytree(reproduced, tmp_path / f"node{k}", symlinks=True)) for k in range(2)]
    for node in nodes:
        (node / MODEL).unlink()
        (node / HISTORY).unlink()
    port = free_port()
    # The README's command, as each machine runs it: no --node-rank under c10d, which ignores it.
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "test",
               "-m", "pipeline.train"]
    started = [subprocess.Popen(command, cwd=node, env=environment(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for node in nodes]
    outputs = [process.communicate(timeout=300)[0] for process in started]
    assert [process.returncode for process in started] == [0, 0], outputs
    written = [node for node in nodes if (node / MODEL).exists()]
    assert len(written) == 1 and (written[0] / HISTORY).exists(), outputs  # rank 0's node alone
    weights = load_file(written[0] / MODEL)
    history = read_history(written[0] / HISTORY, ("train_loss", "x", "intercept"))
    for name in alone[0]:
        assert np.max(np.abs(weights[name] - alone[0][name])) <= 1e-12 * np.max(np.abs(alone[0][name]))
    for name in alone[1]:
        assert len(history[name]) == len(alone[1][name])
        assert np.max(np.abs(history[name] - alone[1][name])) <= 1e-12 * np.max(np.abs(alone[1][name]))
