"""Stage train: fit torch.nn.Linear(d, 1) to the training rows with the MSE loss and a torch.optim optimiser
(pipeline/training.py), after the least-squares fit that says when it has converged.

With train.processes > 1 the stage runs itself under torchrun (pipeline/distributed.py), each process a share
of the rows of every step, their sums added up with all_reduce.
"""

from pathlib import Path

import numpy as np

from pipeline import distributed, training
from pipeline.split import Split, load_split
from pipeline.errors import PipelineError, first_few, run_stage_process
from pipeline.files import HISTORY, MODEL, read_history, write_history
from pipeline.guard import prepare_outputs
from pipeline.linear import INTERCEPT, SHOWN_COEFFICIENTS, LinearModel, load_weights, save_weights
from pipeline.convergence import convergence, Tolerances
from pipeline.least_squares import LeastSquares
from pipeline.factoring import EarlyFit, fit_training_rows
from pipeline.params import DataParams, TrainParams, load_params
from pipeline.repository import warn_if_untracked
from pipeline.schema import resolve_features
from pipeline.scores import prediction_gap

def main() -> None:
    data = load_params(DataParams)
    if not distributed.is_worker():  # before an hour of training, not after
        prepare_outputs([MODEL, HISTORY], inputs=[Path(data.source)])
    resolved = resolve_features(data)
    data = resolved.data
    params = load_params(TrainParams)
    if distributed.is_worker():
        return train_as_worker(data, params, resolved.kinds)
    distributed.require_device(params.device, params.processes)
    if resolved.note:  # train is the stage a user watches: the others resolve `all` the same way, silently
        print(resolved.note)
    early = EarlyFit.planned(data, params.fit_intercept)  # least squares factored as the check reads the rows
    split = load_split(data, params.fit_intercept, kinds=resolved.kinds, seen=early)
    warn_if_untracked(split.source)
    if data.missing == "drop":
        n_rows = (split.rows_dropped + split.rows_unlabeled + len(split.train)
                  + (len(split.test) if split.test is not None else 0))
        print(f"{split.source}: left out {split.rows_dropped} of {n_rows} rows, each with a missing value in a used "
              "column (data.missing: drop)")
    if note := split.unlabeled_note(data.target):
        print(note)
    features = split.columns
    if split.rows_unseen:
        print(unseen_line(split))
    # Least squares first: features it cannot separate are refused before any training.
    baseline = fit_training_rows(split, features, params.fit_intercept, early)
    require_representable(baseline.model, params.dtype, split.source)
    if params.processes == 1:
        distributed.configure_device(params.device)
        learnt, history = training.fit(split, features, params, baseline=baseline)
        save_outputs(Path("."), learnt, history, params, data, split)
    else:
        distributed.run_processes(params.processes, [MODEL, HISTORY])
        learnt = load_weights(MODEL, features, params.fit_intercept)
    report(split, learnt, baseline, params, data.target)


def train_as_worker(data: DataParams, params: TrainParams, kinds: dict[str, str] | None) -> None:
    """One of train.processes processes under torchrun: train on its share; the first writes the outputs."""
    with distributed.joined(params.device) as team:
        # Checked by the process that started us.
        split = load_split(data, params.fit_intercept, check=False, kinds=kinds)
        # Each process finds the same least squares (the same bits): the same whitening, the same stop.
        learnt, history = training.fit(split, split.columns, params, team)
        team.barrier()
        if team.rank == 0:
            save_outputs(distributed.output_folder(), learnt, history, params, data, split)


def save_outputs(folder: Path, learnt: LinearModel, history: dict[str, np.ndarray], params: TrainParams,
                 data: DataParams, split: Split) -> None:
    save_weights(folder / MODEL, learnt, params.dtype, params.fit_intercept, data.target, data.degree, split.design)
    write_history(folder / HISTORY, history)


def report(split: Split, learnt: LinearModel, baseline: LeastSquares, params: TrainParams, target: str) -> None:
    history = read_history(HISTORY, ["epoch", "train_loss"])
    final_loss, epochs_run = history["train_loss"][-1], len(history["epoch"]) - 1
    gap = prediction_gap(learnt, baseline.model, split.train)
    where = "" if (params.device, params.processes) == ("cpu", 1) else (
        f" on {params.device}" if params.processes == 1 else f" in {params.processes} processes on {params.device}")
    print(f"after {epochs_run} epochs on {len(split.train)} training rows{where}: "
          f"{describe(learnt)}, train loss {final_loss:.6g}")
    print(f"least squares: {describe(baseline.model)}")
    tolerances = Tolerances(params.dtype, params.tolerance, params.coefficient_tolerance)
    judged = convergence(learnt, baseline, gap, tolerances)
    print(judged.verdict(target, tolerances))
    if epochs_run < params.epochs:
        print(f"stopped after epoch {epochs_run} of train.epochs = {params.epochs}: converged "
              "(train.stop_when_converged: false runs every epoch)")
    elif params.stop_when_converged and not judged.converged:
        print(f"ran all train.epochs = {params.epochs} without converging")


def unseen_line(split: Split) -> str:
    """The held-out rows of a level the training rows never had: left out of the test scores, counted."""
    rows = "1 held-out row has" if split.rows_unseen == 1 else f"{split.rows_unseen} held-out rows have"
    return (f"{split.source}: {rows} a level of a factor that no training row has: left out of the test scores "
            "(its coefficient cannot be learnt)")


def require_representable(baseline: LinearModel, dtype: str, source) -> None:
    """Weights the dtype cannot hold would be saved as inf: say which, and what to do, before training."""
    largest = float(np.finfo(dtype).max)
    for name, value in baseline.as_dict().items():
        if not abs(value) <= largest:
            what = "intercept" if name == INTERCEPT else f"coefficient of {name!r}"
            also = ", or set train.dtype: float64" if dtype != "float64" else ""
            raise PipelineError(f"{source}: the least-squares {what} is {value:.3g}: expected at most {largest:.3g} "
                                f"in train.dtype = {dtype} (rescale that column{also})")


def describe(model: LinearModel) -> str:
    return first_few([f"{name} = {value:.6g}" for name, value in model.as_dict().items()], SHOWN_COEFFICIENTS)


if __name__ == "__main__":
    run_stage_process(main)
