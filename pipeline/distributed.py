"""Where train runs: the device, and with train.processes > 1 a team of processes under torchrun.

The stage starts its processes as `torchrun --standalone --nproc-per-node N -m pipeline.train` would
(torch.distributed's elastic launcher, which torchrun is a command line for), over gloo on CPU or nccl on
CUDA: each process sums the loss and gradient over its share of the rows, and all_reduce adds up the sums.
They write into a folder of their own; the outputs move into place only when every process has finished,
so a process that dies leaves nothing behind.
"""

import logging
import os
import shutil
import signal
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import torch
import torch.distributed as dist

from pipeline.errors import PipelineError, Stopped
from pipeline.files import move_into_place
from pipeline.rows import share_of

OUTPUTS_FLAG = "--outputs"  # the folder the first process writes into; absent, the working directory
# What torch's elastic launcher handles while its processes run (its TORCHELASTIC_SIGNALS_TO_HANDLE default).
LAUNCHER_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


@dataclass(frozen=True)
class Team:
    """This process's place among the processes training together: rank of size; one process alone by default."""

    rank: int = 0
    size: int = 1
    device: str = "cpu"

    @property
    def share(self) -> tuple[int, int]:
        return self.rank, self.size

    def share_of(self, n: int) -> tuple[int, int]:
        """This process's rows [start, stop) of n rows split between the team."""
        return share_of(n, self.share)

    def total(self, values: np.ndarray) -> np.ndarray:
        """The sum of `values` (float64) over the team."""
        if self.size == 1:
            return values
        tensor = torch.from_numpy(np.asarray(values, dtype=np.float64)).to(self.device)
        dist.all_reduce(tensor)
        return tensor.cpu().numpy()

    def total_tensor(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of `tensor` over the team, on its device."""
        if self.size == 1:
            return tensor
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


SOLO = Team()


def require_device(device: str, processes: int) -> None:
    """train.device must exist here, one GPU per process."""
    if device != "cuda":
        return
    if not torch.cuda.is_available():
        why = (f"this torch ({torch.__version__}) is built without CUDA" if torch.version.cuda is None
               else "no CUDA device is visible")
        raise PipelineError(f"params.yaml: train.device = 'cuda': {why}: expected train.device: cpu, or a machine "
                            "with an NVIDIA GPU and a CUDA build of torch")
    if processes > torch.cuda.device_count():
        raise PipelineError(f"params.yaml: train.processes = {processes} with train.device = 'cuda': "
                            f"{torch.cuda.device_count()} GPU(s) here: expected at most one process per GPU")


def configure_device(device: str) -> None:
    """The same bits from the same run: on CUDA, deterministic kernels and a fixed cuBLAS workspace (set
    before cuBLAS starts). CPU kernels are deterministic already; fit runs each on one thread."""
    if device == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def is_worker() -> bool:
    """Started by torchrun (or by run_processes) as one of several processes."""
    return "TORCHELASTIC_RUN_ID" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def output_folder() -> Path:
    if OUTPUTS_FLAG in sys.argv:
        return Path(sys.argv[sys.argv.index(OUTPUTS_FLAG) + 1])
    return Path(".")


@contextmanager
def joined(device: str) -> Iterator[Team]:
    """Join the team torchrun started: gloo on CPU, nccl on CUDA (one GPU per process)."""
    configure_device(device)
    if device == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    try:
        where = f"cuda:{os.environ['LOCAL_RANK']}" if device == "cuda" else "cpu"
        yield Team(dist.get_rank(), dist.get_world_size(), where)
    finally:
        dist.destroy_process_group()


def run_processes(processes: int, outputs: list[Path]) -> None:
    """Run `python -m pipeline.train` as `processes` processes on this machine, then move their outputs
    into place; one line, and nothing written, when any of them fails."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, SignalException, Std
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    staging = Path(f".train.{os.getpid()}.tmp")  # .gitignore ignores .*.tmp
    shutil.rmtree(staging, ignore_errors=True)
    logs = staging / "logs"
    logs.mkdir(parents=True)
    # The launcher's own log lines would bury the one line that matters. Its modules give each of their loggers a
    # level of its own (LOGLEVEL, or WARNING), so each is quietened, not only their parent.
    for name in [*logging.root.manager.loggerDict]:
        if name == "torch.distributed" or name.startswith("torch.distributed."):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=processes, run_id=uuid.uuid4().hex,
        rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1,
        logs_specs=DefaultLogsSpecs(log_dir=str(logs), redirects=Std.ERR),
    )
    # The launcher turns these signals into a SignalException, and passes each on to the processes (which end
    # as any stage does on Ctrl-C); this process's own handlers come back when it returns.
    handlers = {number: signal.getsignal(number) for number in LAUNCHER_SIGNALS}
    # The cores shared out between the processes, each training on as many threads (the torchrun command
    # would give each 1); the bits do not depend on it. A thread count set by the user stands.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, torch.get_num_threads() // processes)))
    try:
        try:
            elastic_launch(config, sys.executable)("-m", "pipeline.train", OUTPUTS_FLAG, str(staging))
        except ChildFailedError as error:
            rank, failure = error.get_first_failure()
            raise PipelineError(failed(rank, failure.exitcode, processes, logs)) from None
        except SignalException as error:
            if error.sigval == signal.SIGINT:
                raise KeyboardInterrupt from None
            raise Stopped(error.sigval) from None
        finally:
            for number, handler in handlers.items():
                signal.signal(number, handler)
            end_leftover_processes()
        for path in outputs:
            move_into_place(staging / path, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def end_leftover_processes() -> None:
    """Kill any process the launcher left running. A signal that comes while it starts them ends the launcher
    before it holds them all (torch 2.13 then stops none), and each would train on alone."""
    leftovers = psutil.Process().children(recursive=True)
    for process in leftovers:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(leftovers)


def failed(rank: int, exitcode: int, processes: int, logs: Path) -> str:
    """The first failed process's own one-line error, or how it ended."""
    for log in sorted(logs.rglob("stderr.log")):
        if log.parent.name == str(rank):
            errors = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("error: ")]
            if errors:
                return errors[-1].removeprefix("error: ")
    if exitcode < 0:
        how = f"was killed by {signal.Signals(-exitcode).name}"
    else:
        how = f"exited with code {exitcode}"
    return (f"train.processes = {processes}: process {rank} of {processes} {how} before training finished: "
            "nothing written")
