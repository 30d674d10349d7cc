"""Stage train: fit torch.nn.Linear(d, 1) to the training rows with the MSE loss and a torch.optim optimiser."""

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from pipeline.dataset import Split, load_split
from pipeline.errors import PipelineError, run_stage
from pipeline.files import HISTORY, MODEL, write_history
from pipeline.linear import INTERCEPT, LinearModel, least_squares, prediction_gap, save_weights
from pipeline.params import DataParams, TrainParams, load_params

DTYPES = {"float32": torch.float32, "float64": torch.float64}
LBFGS_OBJECTIVE_SCALE = 1e6
CHUNK_ROWS = 1 << 18  # fixed, so that the sums' order, and so the bits, never depend on n or the machine


@dataclass(frozen=True)
class Scaling:
    """The affine maps between the data's units and the units the optimiser sees."""

    x_shift: np.ndarray
    x_scale: np.ndarray
    y_shift: float
    y_scale: float

    @classmethod
    def of(cls, features: np.ndarray, target: np.ndarray, params: TrainParams) -> "Scaling":
        """Mean 0 and sd 1 from the training rows; without an intercept nothing can be shifted, so the
        scale is the root mean square; standardize: false keeps the data as it is (the tutorial)."""
        d = features.shape[1]
        if not params.standardize:
            return cls(np.zeros(d), np.ones(d), 0.0, 1.0)
        if params.fit_intercept:
            x_shift, y_shift = features.mean(axis=0), float(target.mean())
        else:
            x_shift, y_shift = np.zeros(d), 0.0
        x_scale = np.sqrt(((features - x_shift) ** 2).mean(axis=0))
        y_scale = math.sqrt(float(((target - y_shift) ** 2).mean()))
        # A constant target (or an all-zero one) has nothing to scale.
        return cls(x_shift, np.where(x_scale > 0, x_scale, 1.0), y_shift, y_scale or 1.0)

    def features(self, features: np.ndarray) -> np.ndarray:
        return (features - self.x_shift) / self.x_scale

    def target(self, target: np.ndarray) -> np.ndarray:
        return (target - self.y_shift) / self.y_scale

    def to_data_units(self, weight: np.ndarray, bias: float) -> tuple[np.ndarray, float]:
        """Coefficients and intercept in the data's units of a model with `weight`, `bias` in scaled units."""
        coefficients = self.y_scale * weight / self.x_scale
        intercept = self.y_shift + self.y_scale * bias - float(np.sum(coefficients * self.x_shift))
        return coefficients, intercept


def make_optimizer(model: torch.nn.Linear, params: TrainParams) -> torch.optim.Optimizer:
    if params.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=params.lr, momentum=params.momentum)
    if params.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=params.lr)
    # One epoch is one L-BFGS iteration: a quasi-Newton step whose length a strong-Wolfe line search
    # chooses, over the full batch. No early stop: the epochs are the budget.
    return torch.optim.LBFGS(model.parameters(), lr=params.lr, max_iter=1, max_eval=25, history_size=20,
                             tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")


class Rows:
    """A set of rows as tensors laid out for fast passes: features as (d, n), target as (n, 1)."""

    def __init__(self, columns: torch.Tensor, target: torch.Tensor):
        self.columns, self.target = columns, target

    @classmethod
    def of(cls, features: np.ndarray, target: np.ndarray, dtype: torch.dtype) -> "Rows":
        columns = torch.from_numpy(np.ascontiguousarray(features.T)).to(dtype)
        return cls(columns, torch.from_numpy(target).to(dtype).unsqueeze(1))

    def __len__(self) -> int:
        return len(self.target)

    def slices(self, size: int) -> Iterator["Rows"]:
        for start in range(0, len(self), size):
            yield Rows(self.columns[:, start:start + size], self.target[start:start + size])

    def shuffled(self, generator: torch.Generator) -> "Rows":
        order = torch.randperm(len(self), generator=generator)
        # The target gathered as a flat vector: the same values, three times faster than along (n, 1).
        return Rows(self.columns.index_select(1, order), self.target.view(-1).index_select(0, order).unsqueeze(1))


def mean_squared_error(model: torch.nn.Linear, rows: Rows, gradient_scale: float | None = None) -> torch.Tensor:
    """The MSE of `model` on `rows`, a fixed number of rows at a time; with gradient_scale, also add
    gradient_scale × its gradient to the weights' .grad.

    Chunks keep every temporary small enough to stay in cache (one pass over 10⁷ rows at once spends most
    of its time in page faults), and their fixed size keeps the bits independent of n.
    """
    inverse_n = 1.0 / len(rows)
    parts = []
    with torch.set_grad_enabled(gradient_scale is not None):
        for chunk in rows.slices(CHUNK_ROWS):
            # (chunk, d) as a transposed view of (d, chunk): the layout whose weight gradient is fastest.
            loss = torch.nn.functional.mse_loss(model(chunk.columns.T), chunk.target, reduction="sum")
            if gradient_scale is not None:
                loss.backward(torch.tensor(gradient_scale * inverse_n, dtype=loss.dtype))
            parts.append(loss.detach())
    return torch.stack(parts).sum() * inverse_n


@contextmanager
def one_thread() -> Iterator[None]:
    """Above 32768 rows torch splits a sum between threads, so its bits would depend on the machine's
    cores; on one thread they are the same everywhere (make bench records what that costs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fit(split: Split, features: tuple[str, ...], params: TrainParams) -> tuple[LinearModel, dict[str, np.ndarray]]:
    """Train a new model; return it in the data's units and the history: row k holds the coefficients,
    the intercept and their losses after k epochs (row 0: the initial weights)."""
    with one_thread():
        return _fit(split, features, params)


def _fit(split: Split, features: tuple[str, ...], params: TrainParams) -> tuple[LinearModel, dict[str, np.ndarray]]:
    scaling = Scaling.of(split.train.features, split.train.target, params)
    dtype = DTYPES[params.dtype]

    def rows_of(table) -> Rows:
        return Rows.of(scaling.features(table.features), scaling.target(table.target), dtype)

    train_rows = rows_of(split.train)
    test_rows = rows_of(split.test) if split.test is not None else None
    torch.manual_seed(params.seed)
    model = torch.nn.Linear(len(features), 1, bias=params.fit_intercept, dtype=dtype)
    optimizer = make_optimizer(model, params)
    shuffling = torch.Generator().manual_seed(params.seed)
    # torch's L-BFGS keeps a curvature pair only when sᵀy > 1e-10, an absolute threshold: near the optimum
    # of standardised data the steps get that small and it stalls. The same loss times a constant has the
    # same minimiser and keeps its pairs long enough to reach float64 precision.
    objective_scale = LBFGS_OBJECTIVE_SCALE if params.optimizer == "lbfgs" else 1.0

    def step_on(rows: Rows) -> float:
        """One optimiser step on `rows`; the loss before it."""
        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            return mean_squared_error(model, rows, gradient_scale=objective_scale) * objective_scale

        return optimizer.step(closure).item() / objective_scale

    rows = params.epochs + 1
    value_type = np.dtype(params.dtype)
    # Losses in float64 whatever the dtype: in the data's units, the loss on held-out rows far from the
    # training rows can exceed what float32 holds.
    history = {"epoch": np.arange(rows, dtype=np.int64), "train_loss": np.empty(rows)}
    if test_rows is not None:
        history["test_loss"] = np.empty(rows)
    for name in (*features, INTERCEPT):
        history[name] = np.empty(rows, dtype=value_type)
    loss_unit = scaling.y_scale**2  # losses are recorded in the data's units, as evaluate measures them

    # disable=None: a progress bar only when stderr is a terminal, never in logs.
    for epoch in tqdm(range(rows), desc="train", unit="epoch", disable=None):
        learnt = current_model(model, scaling, features, value_type)
        for name, value in learnt.as_dict().items():
            history[name][epoch] = value
        if test_rows is not None:
            history["test_loss"][epoch] = mean_squared_error(model, test_rows).item() * loss_unit
        if epoch < params.epochs and params.batch_size is None:
            train_loss = step_on(train_rows)
        else:
            train_loss = mean_squared_error(model, train_rows).item()
            if epoch < params.epochs:
                for batch in train_rows.shuffled(shuffling).slices(params.batch_size):
                    step_on(batch)
        history["train_loss"][epoch] = train_loss * loss_unit
        if not math.isfinite(train_loss):
            raise PipelineError(diverged(train_loss, epoch, params))
    return learnt, history


def current_model(model: torch.nn.Linear, scaling: Scaling, features: tuple[str, ...],
                  value_type: np.dtype) -> LinearModel:
    """The model's weights in the data's units, rounded to the training dtype as they are saved."""
    weight = model.weight.detach().to(torch.float64).numpy()[0]
    bias = model.bias.item() if model.bias is not None else 0.0
    coefficients, intercept = scaling.to_data_units(weight, bias)
    return LinearModel(features, tuple(float(value_type.type(value)) for value in coefficients),
                       float(value_type.type(intercept)))


def diverged(loss: float, epoch: int, params: TrainParams) -> str:
    """What happened and what to try, most likely remedy first."""
    remedies = []
    if not params.standardize:
        remedies.append("train.standardize: true")
    remedies.append(f"a smaller train.lr (now {params.lr!r})")
    if params.optimizer != "lbfgs" and params.batch_size is None:
        remedies.append("train.optimizer: lbfgs")
    elif params.optimizer != "adam":
        remedies.append("train.optimizer: adam")
    return (f"training diverged: train loss = {loss} at epoch {epoch} with train.optimizer = {params.optimizer}, "
            f"train.lr = {params.lr!r}: try {', or '.join(remedies)}")


def main() -> None:
    data = load_params(DataParams)
    params = load_params(TrainParams)
    split = load_split(data, params.fit_intercept)
    features = tuple(data.features)
    # Least squares first: features it cannot separate are refused before any training.
    baseline = least_squares(split.train.features, split.train.target, features, params.fit_intercept, split.source)
    require_representable(baseline, params.dtype, split.source)
    # No torch.use_deterministic_algorithms: the CPU kernels used here are deterministic already, and the
    # flag imports torch._inductor (1.4 s a run). What could vary, the threads' share of a sum, fit fixes.
    learnt, history = fit(split, features, params)
    gap = prediction_gap(learnt, baseline, split.train.features, split.train.target)
    print(f"after {params.epochs} epochs on {len(split.train.target)} training rows: "
          f"{describe(learnt)}, train loss {history['train_loss'][-1]:.6g}")
    print(f"least squares: {describe(baseline)}")
    verdict = "converged" if gap < params.tolerance else (
        "NOT converged: raise train.epochs, change train.lr, or try train.optimizer: lbfgs")
    print(f"largest prediction gap to least squares: {gap:.3g} × sd({data.target}) "
          f"(tolerance {params.tolerance:g}): {verdict}")
    save_weights(MODEL, learnt, params.dtype, params.fit_intercept)
    write_history(HISTORY, history)


def require_representable(baseline: LinearModel, dtype: str, source) -> None:
    """Weights the dtype cannot hold would be saved as inf: say which, and what to do, before training."""
    largest = float(np.finfo(dtype).max)
    for name, value in baseline.as_dict().items():
        if not abs(value) <= largest:
            what = "intercept" if name == INTERCEPT else f"coefficient of {name!r}"
            raise PipelineError(f"{source}: the least-squares {what} is {value:.3g}: expected at most {largest:.3g} "
                                f"in train.dtype = {dtype} (rescale that column, or set train.dtype: float64)")


def describe(model: LinearModel) -> str:
    return ", ".join(f"{name} = {value:.6g}" for name, value in model.as_dict().items())


if __name__ == "__main__":
    run_stage(main)
