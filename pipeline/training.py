"""The training loop: torch.nn.Linear(d, 1) fitted to the training rows with the MSE loss and a torch.optim
optimiser, a step an epoch on every row or on each shuffled mini-batch, its history kept epoch by epoch.

The rows stream from data.source a chunk at a time (pipeline/feed.py). Within a process, chunks of rows are
worked on by as many threads as torch is given, with the same bits whatever their number; with
train.processes > 1 each process takes a share of the rows of every step (pipeline/distributed.py). The stage
is pipeline/train.py.
"""

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from tqdm import tqdm

from pipeline.split import Split
from pipeline.distributed import SOLO, Team
from pipeline.errors import PipelineError
from pipeline.feed import Batch, Scaling, feeds, shuffled_batches
from pipeline.linear import INTERCEPT, LinearModel
from pipeline.convergence import convergence, Tolerances
from pipeline.least_squares import LeastSquares
from pipeline.factoring import fit_least_squares
from pipeline.optimizers import make_optimizer
from pipeline.params import TrainParams
from pipeline.workers import SERIAL, Workers, workers

DTYPES = {"float32": torch.float32, "float64": torch.float64}
LBFGS_OBJECTIVE_SCALE = 1e6


def squared_error(model: torch.nn.Linear, batches: Iterable[Batch], n: int, team: Team,
                  chunk_workers: Workers = SERIAL, gradient_scale: float | None = None) -> torch.Tensor:
    """The MSE of `model` over all processes' `batches` (n rows in all); with gradient_scale, also set the
    weights' .grad to gradient_scale × its gradient, summed over the processes.

    Chunks keep every temporary small enough to stay in cache (one pass over 10⁷ rows at once spends most
    of its time in page faults), and their fixed size keeps the bits independent of n. The workers' threads
    take a chunk each; every chunk's loss and gradient are kept apart and added up in chunk order, so the
    bits do not depend on the number of threads either.
    """
    parameters = list(model.parameters())
    weight = 1.0 / n

    def chunk_sums(batch: Batch) -> tuple[float, tuple[torch.Tensor, ...]]:
        loss, gradient = summed_loss(model, batch, None if gradient_scale is None else gradient_scale * weight)
        # A float, not a tensor: thousands of small tensors kept through a pass over a large table
        # scatter glibc's heap so that it only grows (888 MiB against 489 MiB at 10^8 points).
        return loss.item(), gradient

    parts, gradient = [], ()
    for loss, chunk_gradient in chunk_workers.in_order(chunk_sums, batches):
        parts.append(loss)
        gradient = tuple(map(torch.add, gradient, chunk_gradient)) if gradient else chunk_gradient
    for parameter, total in zip(parameters, gradient):
        parameter.grad = team.total_tensor(total)
    value = parameters[0]
    return team.total_tensor(torch.tensor(parts, dtype=value.dtype, device=value.device).sum()) * weight


def summed_loss(model: torch.nn.Linear, batch: Batch, gradient_scale: float | None = None,
                with_loss: bool = True) -> tuple[torch.Tensor | None, tuple[torch.Tensor, ...]]:
    """The sum of the squared errors of `model` on `batch` (None without with_loss); with gradient_scale, also
    gradient_scale × its gradient with respect to each of the model's parameters.

    The loss and gradient are those of mse_loss and torch.autograd.grad(loss × gradient_scale, parameters) bit for
    bit (tests/unit/test_train.py compares them), without recording a graph: a step on 65,536 rows took 0.15 ms
    against 0.30 ms. The elementwise work is mse_loss's and its backward's on one tensor of differences, in place
    where it can: a chunk of 262,144 rows took 1.2 ms against 1.5-1.7 ms with their three fresh tensors.
    """
    with torch.no_grad():
        inputs = batch.columns.T
        # nn.Linear's forward, without the module call around it (153 steps: 3 ms): addmm(bias, inputs, weightᵀ),
        # or mm without a bias.
        residual = torch.nn.functional.linear(inputs, model.weight, model.bias).sub_(batch.target)
        # mse_loss squares each difference, then sums with torch.sum's kernel.
        loss = residual.square().sum() if with_loss else None
        if gradient_scale is None:
            return loss, ()
        # MseLossBackward0 scales each difference by 2, then by the gradient it is given: here gradient_scale in
        # the dtype. Both factors at once round the same, since doubling is exact.
        slope = residual.mul_(residual.new_full((), gradient_scale) * 2)
        # AddmmBackward0 (MmBackward0) for the weight, whose transpose is column-major: slopeᵀ · inputs; the
        # bias's, the slopes summed over the rows it was broadcast to.
        gradient = (slope.t().mm(inputs),)
        if model.bias is not None:
            gradient += (slope.sum(0),)
    return loss, gradient


@contextmanager
def chunk_threads(device: torch.device) -> Iterator[Workers]:
    """Workers with as many threads as torch is given (OMP_NUM_THREADS), each running its kernels on one:
    torch's own threads would split a chunk's sums where their number says. On CUDA one thread drives the
    device, its kernels deterministic (distributed.configure_device)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # for this thread, and for every thread that starts from now on
    try:
        with workers(threads if device.type == "cpu" else 1) as chunk_workers:
            yield chunk_workers
    finally:
        torch.set_num_threads(threads)


def fit(split: Split, features: tuple[str, ...], params: TrainParams, team: Team = SOLO,
        baseline: LeastSquares | None = None) -> tuple[LinearModel, dict[str, np.ndarray]]:
    """Train a new model; return it in the data's units and the history: row k holds the coefficients,
    the intercept and their losses after k epochs (row 0: the initial weights). The least-squares
    `baseline` (found here if not given) whitens the features (train.standardize) and says when to stop
    (train.stop_when_converged: after the first epoch whose model evaluate would call converged)."""
    if baseline is None:
        baseline = fit_least_squares(split.train, features, params.fit_intercept, split.source)
    device = torch.device(params.device)
    with chunk_threads(device) as chunk_workers, gather_thread(chunk_workers) as gather_workers:
        return _fit(split, features, params, team, baseline, device, chunk_workers, gather_workers)


@contextmanager
def gather_thread(chunk_workers: Workers) -> Iterator[Workers]:
    """What joins a mini-batch epoch's windows and gathers their batches while the caller steps: one thread (the
    epoch is one generator, feed.gathered_spans), two gathers ahead, where the chunks have threads (SERIAL, the
    caller, where they have none). The steps are one thread's work; a second gatherer only took a core and the
    interpreter from them (153 batches, interleaved: 54-58 ms an epoch
    against 63-75 ms; again once the steps recorded no graph, 80-86 ms against 90-101 ms; the same bits)."""
    if chunk_workers.pool is None:
        yield SERIAL
        return
    with workers(1, ahead=2) as gathering:
        yield gathering


def _fit(split: Split, features: tuple[str, ...], params: TrainParams, team: Team, baseline: LeastSquares,
         device: torch.device, chunk_workers: Workers,
         gather_workers: Workers) -> tuple[LinearModel, dict[str, np.ndarray]]:
    scaling = Scaling.of(baseline, params)
    dtype = DTYPES[params.dtype]
    n_train = len(split.train)
    # The full batch: each process its share of the rows. Mini-batches: every process shuffles all the
    # rows the same way, and takes its share of each batch.
    mini_batches = params.batch_size is not None
    parts = [split.train] if split.test is None else [split.train, split.test]
    train_feed, *tests = feeds(parts, scaling, dtype, device, [(0, 1) if mini_batches else team.share, team.share])
    test_feed = tests[0] if tests else None
    torch.manual_seed(params.seed)
    model = torch.nn.Linear(len(features), 1, bias=params.fit_intercept, dtype=dtype, device=device)
    optimizer = make_optimizer(model, params)
    # torch's L-BFGS keeps a curvature pair only when sᵀy > 1e-10, an absolute threshold: near the optimum
    # of standardised data the steps get that small and it stalls. The same loss times a constant has the
    # same minimiser and keeps its pairs long enough to reach float64 precision.
    objective_scale = LBFGS_OBJECTIVE_SCALE if params.optimizer == "lbfgs" else 1.0

    def train_chunks() -> Iterator[Batch]:
        # With mini-batches every process holds all the rows: each measures the loss on its share of chunks.
        return train_feed.chunks(team.share if mini_batches else (0, 1))

    def step_on(batches: Callable[[], Iterable[Batch]], n: int) -> float:
        """One optimiser step on the rows of `batches` (n rows over all processes); the loss before it."""
        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            return squared_error(model, batches(), n, team, chunk_workers, objective_scale) * objective_scale

        return optimizer.step(closure).item() / objective_scale

    def step_on_batch(batch: Batch) -> None:
        """One optimiser step on a mini-batch, each process on its share of the rows. The batch is one chunk and
        its loss goes unrecorded (the epoch's pass over all rows is), so the step computes the gradient alone, and
        skips squared_error's sums: 153 steps took 35 ms against 41 ms with them (the same bits)."""
        share = batch.slice(*team.share_of(len(batch)))

        def closure() -> None:
            optimizer.zero_grad()
            _, gradient = summed_loss(model, share, 1.0 / len(batch), with_loss=False)  # lbfgs takes no batches
            for parameter, total in zip(model.parameters(), gradient):
                parameter.grad = team.total_tensor(total)

        optimizer.step(closure)

    rows = params.epochs + 1
    value_type = np.dtype(params.dtype)
    # Losses in float64 whatever the dtype: in the data's units, the loss on held-out rows far from the
    # training rows can exceed what float32 holds.
    history = {"epoch": np.arange(rows, dtype=np.int64), "train_loss": np.empty(rows)}
    if test_feed is not None:
        history["test_loss"] = np.empty(rows)
    for name in (*features, INTERCEPT):
        history[name] = np.empty(rows, dtype=value_type)
    loss_unit = scaling.y_scale**2  # losses are recorded in the data's units, as evaluate measures them
    tolerances = Tolerances(params.dtype, params.tolerance, params.coefficient_tolerance)

    # disable=None: a progress bar only when stderr is a terminal, never in logs; on the first process only.
    for epoch in tqdm(range(rows), desc="train", unit="epoch", disable=None if team.rank == 0 else True):
        learnt = current_model(model, scaling, features, value_type)
        for name, value in learnt.as_dict().items():
            history[name][epoch] = value
        # The bound of the prediction gap never says converged where evaluate's exact gap would not; every
        # process holds the same weights, so all stop at the same epoch.
        stop = params.stop_when_converged and convergence(learnt, baseline, baseline.gap_bound(learnt),
                                                          tolerances).converged
        if test_feed is not None:
            test_loss = squared_error(model, test_feed.chunks(), len(split.test), team, chunk_workers).item()
            history["test_loss"][epoch] = test_loss * loss_unit
        if epoch < params.epochs and not mini_batches and not stop:
            train_loss = step_on(train_chunks, n_train)
        else:
            stepping = epoch < params.epochs and not stop

            def epoch_batches() -> Iterator[Batch]:
                return shuffled_batches(train_feed, params.batch_size, params.seed, epoch, gather_workers)

            # Rows kept on the device are only read: their batches are gathered from now on, while the loss is
            # measured too. Rows read from the file each pass are read by one thread at a time.
            early = epoch_batches() if stepping and train_feed.cached is not None else None
            train_loss = squared_error(model, train_chunks(), n_train, team, chunk_workers).item()
            if stepping:
                for batch in early or epoch_batches():
                    # Stepped on here while the batches ahead are gathered: handed to a worker and waited for,
                    # 153 steps alone took 70-80 ms against 40-55 ms here (the same bits either way).
                    step_on_batch(batch)
        history["train_loss"][epoch] = train_loss * loss_unit
        if not math.isfinite(train_loss):
            raise PipelineError(diverged(train_loss, epoch, params))
        if stop:
            return learnt, {name: column[:epoch + 1] for name, column in history.items()}
    return learnt, history


def current_model(model: torch.nn.Linear, scaling: Scaling, features: tuple[str, ...],
                  value_type: np.dtype) -> LinearModel:
    """The model's weights in the data's units, rounded to the training dtype as they are saved."""
    weight = model.weight.detach().to("cpu", torch.float64).numpy()[0]
    bias = model.bias.item() if model.bias is not None else 0.0
    coefficients, intercept = scaling.to_data_units(weight, bias)
    return LinearModel(features, tuple(float(value_type.type(value)) for value in coefficients),
                       float(value_type.type(intercept)))


# An lr that does not diverge on standardised features, whatever their number and correlation (docs/training.md).
SAFE_LR = {"sgd": 0.1, "adam": 0.1, "lbfgs": 1.0}


def diverged(loss: float, epoch: int, params: TrainParams) -> str:
    """What happened and what will work (tests/stages/test_training_failures.py runs each remedy on the case that
    gives it). On raw features no lr is safe for every table (a smaller one, lbfgs or adam may diverge as
    well): standardize is. On standardised features, SAFE_LR is."""
    safe = SAFE_LR[params.optimizer]
    if not params.standardize:  # with the lr that is safe there: a tiny one (the raw features' 1e-10) never gets far
        remedies = [f"train.standardize: true{f' with train.lr: {safe:g}' if params.lr != safe else ''}"]
    elif params.lr > safe:
        remedies = [f"train.lr: {safe:g}, which is safe with train.standardize: true"]
    elif params.optimizer != "lbfgs" and params.batch_size is None:
        remedies = [f"train.optimizer: lbfgs with train.lr: {SAFE_LR['lbfgs']:g}"]
    else:
        remedies = [f"train.optimizer: adam with train.lr: {SAFE_LR['adam']:g}"]
    return (f"training diverged: train loss = {loss} at epoch {epoch} with train.optimizer = {params.optimizer}, "
            f"train.lr = {params.lr!r}: try {', or '.join(remedies)}")
