"""Stage train: fit torch.nn.Linear(1, 1) to the points with MSE loss and full-batch SGD."""

import math

import numpy as np
import torch
from tqdm import tqdm

from pipeline.errors import PipelineError, run_stage
from pipeline.files import HISTORY, MODEL, POINTS, read_points, write_history
from pipeline.model import line_of, make_model, save_model
from pipeline.params import TrainParams, load_params


def init_model(seed: int) -> torch.nn.Linear:
    """A new line model whose initial m and c depend only on `seed`."""
    torch.manual_seed(seed)
    return make_model()


def fit(model: torch.nn.Linear, x: np.ndarray, y: np.ndarray, params: TrainParams) -> dict[str, np.ndarray]:
    """Train `model` in place; return the history: row k holds m, c and their loss after k epochs."""
    inputs = torch.from_numpy(x.astype(np.float32)).unsqueeze(1)
    targets = torch.from_numpy(y.astype(np.float32)).unsqueeze(1)
    loss_function = torch.nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=params.lr)
    rows = params.epochs + 1
    history = {
        "epoch": np.arange(rows, dtype=np.int64),
        "loss": np.empty(rows, dtype=np.float32),
        "m": np.empty(rows, dtype=np.float32),
        "c": np.empty(rows, dtype=np.float32),
    }
    # disable=None: a progress bar only when stderr is a terminal, never in logs.
    for epoch in tqdm(range(rows), desc="train", unit="epoch", disable=None):
        optimizer.zero_grad()
        loss = loss_function(model(inputs), targets)
        history["loss"][epoch] = loss_value = loss.item()
        history["m"][epoch], history["c"][epoch] = line_of(model)
        if not math.isfinite(loss_value):
            raise PipelineError(
                f"training diverged: loss = {loss_value} at epoch {epoch} with train.lr = {params.lr!r}; "
                "lower train.lr"
            )
        if epoch < params.epochs:  # the last row only measures the final m and c
            loss.backward()
            optimizer.step()
    return history


def main() -> None:
    params = load_params(TrainParams)
    x, y = read_points(POINTS)
    torch.use_deterministic_algorithms(True)
    model = init_model(params.seed)
    m_initial, c_initial = line_of(model)
    print(model)
    print(f"initial m = {m_initial:.6g}, c = {c_initial:.6g}")
    history = fit(model, x, y, params)
    m_learnt, c_learnt = line_of(model)
    print(f"after {params.epochs} epochs: m = {m_learnt:.6g}, c = {c_learnt:.6g}, loss = {history['loss'][-1]:.6g}")
    save_model(model, MODEL)
    write_history(HISTORY, history)


if __name__ == "__main__":
    run_stage(main)
