"""Stage predict: the trained model's prediction for the rows of data.source (predict.rows: fitted, each with
its split) or of predict.source (new), each with the standard error of the fitted mean and an interval from
the least-squares fit to the training rows; with predict.influence, the training rows' influence. The
weights file says which columns the rows need. No torch."""

import re
import sys
from contextlib import suppress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.cell_checks import row_kinds
from pipeline.dataset import open_every_row, open_rows_to_predict, rows_in_footer
from pipeline.errors import PipelineError, first_few, run_stage_process
from pipeline.files import MODEL, OLS, CsvWriter, TableWriter, table_writer
from pipeline.guard import prepare_outputs
from pipeline.influence import LargestCooks, influence
from pipeline.linear import RESTORE, SHOWN_COEFFICIENTS, Description, LinearModel
from pipeline.least_squares import LeastSquares
from pipeline.params import DataParams, PredictParams, load_params
from pipeline.repository import warn_if_untracked
from pipeline.split import read_while_drawing
from pipeline.holdout import held_out
from pipeline.rows import ChunksAsRead, Rows, Table, chunks
from pipeline.levels import coders_for
from pipeline.terms import NUMBER

# The columns predict adds after the source's features (and target, if the source has it).
SPLIT = "split"
PREDICTION, LOWER, UPPER, SE_FIT, RESIDUAL = "prediction", "lower", "upper", "se_fit", "residual"
INFLUENCE = ("leverage", "studentized_residual", "cooks_distance")

# A row's status, the index of its label in the split column. Each status after UNLABELED has no prediction:
# a new one (a row that cannot be encoded, say) goes at the end.
SPLITS = ("train", "test", "unlabeled", "dropped")
TRAIN, TEST, UNLABELED, DROPPED = range(len(SPLITS))


@dataclass(frozen=True)
class SplitOf:
    """Which rows of data.source load_split trains on and holds out: the labeled rows (every used value there)
    are split as load_split splits them; a row missing only its target is unlabeled; the others were dropped."""

    n_labeled: int
    test_fraction: float
    seed: int

    def statuses(self, chunk: Table, labeled_before: int) -> np.ndarray:
        """Each row's status; `labeled_before`: the labeled rows of the source before this chunk."""
        labeled, unlabeled = row_kinds(chunk.features, chunk.target)
        status = np.where(unlabeled, UNLABELED, DROPPED).astype(np.int8)
        count = int(np.count_nonzero(labeled))
        held = held_out(self.n_labeled, self.test_fraction, self.seed, labeled_before, labeled_before + count)
        status[labeled] = np.where(held, TEST, TRAIN)
        return status


@dataclass(frozen=True)
class Output:
    """What predict writes: the raw features, the target (if the rows have it), the split (rows of
    data.source), then the computed columns."""

    model: LinearModel
    target: str | None
    fitted: bool  # the rows of data.source, each with its split
    with_influence: bool = False

    def names(self) -> tuple[str, ...]:
        return (*self.model.raw_features, *([self.target] if self.target else []), *([SPLIT] if self.fitted else []),
                PREDICTION, LOWER, UPPER, SE_FIT, *([RESIDUAL] if self.target else []),
                *(INFLUENCE if self.with_influence else ()))


def predict(rows: Rows, model: LinearModel, fit: LeastSquares, level: float, target: str | None,
            confidence: bool = False, where: str = "predict.source") -> Iterator[dict[str, np.ndarray]]:
    """The output's columns for new rows, a chunk at a time (Output(model, target, False).names())."""
    first_row = 0
    for chunk in chunks(rows):
        if model.design is not None:
            model.design.check_domain(chunk.features, first_row, where)
            unseen = model.design.first_unseen(chunk.features)
            if unseen:
                raise PipelineError(f"{where}: {unseen}")
        found, _ = predicted(chunk, model, fit, level, target, confidence)
        require_finite(found, first_row, where)
        first_row += len(chunk)
        yield found


def predicted(chunk: Table, model: LinearModel, fit: LeastSquares, level: float, target: str | None,
              confidence: bool = False) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The raw features, the target (if named), then the model's prediction, the interval [lower, upper] at
    `level` around it (for a new observation, or with `confidence` for the mean) with least squares' half
    width, se_fit (least squares'), and the residual of the model (empty where the target is)."""
    if model.design is None:
        columns, known = model.columns_of(chunk.features), np.ones(len(chunk), dtype=bool)
    else:  # a row of a level training never saw has NaN columns (fitted rows: empty computed columns)
        columns, known = model.design.encode(chunk.features)
    prediction = model.predict_columns(columns)
    leverage = fit.leverage(columns)
    se_fit = fit.residual_sd * np.sqrt(leverage)
    half_width = fit.half_width_at(leverage, level, new_observation=not confidence)
    texts = text_columns(model)
    # A text column's codes index its levels; -1 (an empty cell, or a level training never saw) is written empty.
    found = {name: np.where(chunk.features[:, j] >= 0, chunk.features[:, j], -1) if name in texts
             else chunk.features[:, j] for j, name in enumerate(model.raw_features)}
    if target is not None:
        found[target] = chunk.target
    found |= {PREDICTION: prediction, LOWER: prediction - half_width, UPPER: prediction + half_width, SE_FIT: se_fit}
    if target is not None:
        found[RESIDUAL] = chunk.target - prediction
    return found, known


def predict_fitted(rows: Rows, split: SplitOf, model: LinearModel, fit: LeastSquares, level: float, target: str,
                   confidence: bool = False, cooks: LargestCooks | None = None) -> Iterator[dict[str, np.ndarray]]:
    """The output's columns for every row of data.source, in order, with its split (codes into SPLITS): the
    computed columns empty where a row has no prediction; with `cooks`, the training rows' influence too,
    whose largest Cook's distances it gathers."""
    fitted = FittedRows(split, model, fit, level, target, confidence, cooks)
    return map(fitted.columns, chunks(rows))


@dataclass
class FittedRows:
    """predict_fitted's columns, a chunk of data.source at a time, in order."""

    split: SplitOf
    model: LinearModel
    fit: LeastSquares
    level: float
    target: str
    confidence: bool = False
    cooks: LargestCooks | None = None
    labeled_before: int = 0
    row_before: int = 0

    def columns(self, chunk: Table) -> dict[str, np.ndarray]:
        status = self.split.statuses(chunk, self.labeled_before)
        self.labeled_before += int(np.count_nonzero(status <= TEST))  # before any later status takes a labeled row
        found, known = predicted(chunk, self.model, self.fit, self.level, self.target, self.confidence)
        for name in (PREDICTION, LOWER, UPPER, SE_FIT, RESIDUAL):
            found[name][status > UNLABELED] = np.nan  # NaN already for a missing feature; any later status too
        require_finite(found, self.row_before, "data.source", (status <= UNLABELED) & known)
        found[SPLIT] = status
        if self.cooks is not None:
            model, training = self.model, np.flatnonzero(status == TRAIN)
            training_columns = (model.columns_of(chunk.features[training]) if model.design is None
                                else model.design.encode(chunk.features[training])[0])
            chunk_influence = influence(self.fit, training_columns, chunk.target[training])
            for name, values in zip(INFLUENCE, (chunk_influence.leverage, chunk_influence.studentized_residual,
                                                chunk_influence.cooks_distance)):
                found[name] = np.full(len(chunk), np.nan)
                found[name][training] = values
            self.cooks.add(chunk_influence, self.row_before + training)
        self.row_before += len(chunk)
        return found


class Streamed(ChunksAsRead):
    """predict_fitted's columns for each row group of a Parquet file as the check reads it (open_source's
    `seen`), handed to the writer at once: the writes, most of predict's time, then run beside the read rather
    than after it. It plans for every row the footer counts to be labeled, which SplitOf then splits as
    load_split does; kept() says whether the read bore that out. Where it did not (a row dropped or unlabeled)
    or the plan failed (ChunksAsRead; here also a chunk's error, or the writer's), the stage writes every row
    again as it does without a plan: the same bytes, and the same first error."""

    failures = (PipelineError, OSError, FloatingPointError)

    def __init__(self, writer: "TableWriter | CsvWriter", n_rows: int, fitted: FittedRows) -> None:
        super().__init__(n_rows)
        self.writer, self.fitted = writer, fitted
        self.counts = np.zeros(len(SPLITS), dtype=np.int64)

    def take(self, chunk: Table) -> None:
        columns = self.fitted.columns(chunk)
        self.counts += np.bincount(columns[SPLIT], minlength=len(SPLITS))
        self.writer.write(columns)

    def kept(self, n_labeled: int) -> bool:
        """Whether every row was seen and labeled, and written: the last chunk then too."""
        return n_labeled == self.n_rows and self.finished()


class _WriteAgain(Exception):
    """The streamed plan failed: its file is dropped, and the rows are written again."""


def require_finite(found: dict[str, np.ndarray], first_row: int, where: str,
                   predicted_rows: np.ndarray | None = None) -> None:
    """A prediction or a bound beyond float64 (weights too large for a row's values) is one line, never a file
    of ±inf; `predicted_rows`: the rows that have a prediction (all by default)."""
    finite = np.isfinite(found[PREDICTION]) & np.isfinite(found[LOWER]) & np.isfinite(found[UPPER])
    if predicted_rows is not None:
        finite |= ~predicted_rows
    if not finite.all():
        at = int(np.argmin(finite))
        raise PipelineError(
            f"{where} row {first_row + at} (from 0): prediction {found[PREDICTION][at]:.6g} in "
            f"[{found[LOWER][at]:.6g}, {found[UPPER][at]:.6g}]: expected finite numbers: the weights in {MODEL.parent}/ "
            f"are too large for this row's values in float64 (if they are damaged, {RESTORE})")


def text_columns(model: LinearModel) -> list[str]:
    """The text and true/false columns of a model of terms, which the rows are read as level codes."""
    if model.design is None:
        return []
    return [name for name in model.raw_features if model.design.kinds[name] != NUMBER]


def text_labels(model: LinearModel) -> dict[str, list[str]]:
    """The levels of each text or true/false column: the output writes such a column as its level names."""
    return {name: [str(level) for level in model.design.levels[name]] for name in text_columns(model)}


def require_same_columns(model: LinearModel, fit_intercept: bool, fit: LeastSquares) -> None:
    """The least-squares fit must be of the trained model's columns: both come from the same params."""
    if fit.model.features != model.features or fit.fit_intercept != fit_intercept:
        raise PipelineError(
            f"{OLS}: the least-squares fit of columns {first_few(fit.model.features, SHOWN_COEFFICIENTS)} "
            f"{'with' if fit.fit_intercept else 'without'} an intercept: expected that of {MODEL}, columns "
            f"{first_few(model.features, SHOWN_COEFFICIENTS)} {'with' if fit_intercept else 'without'} (run `dvc repro`)")


def clashes(output: Output) -> list[str]:
    """The model's columns that have the name of a column predict adds."""
    added = set(output.names()) - {*output.model.raw_features, output.target}
    return [name for name in (*output.model.raw_features, *([output.target] if output.target else []))
            if name in added]


def require_distinct_names(source: Path, output: Output) -> None:
    added = set(output.names()) - {*output.model.raw_features, output.target}
    for name in clashes(output):
        raise PipelineError(f"{source}: column {name!r} has the name of a column predict adds: expected none "
                            f"of {', '.join(sorted(added))} (rename it)")


def open_new(source: Path, model: LinearModel, target: str, missing: str) -> tuple[Rows, bool, int]:
    """predict.source's rows, with a hint when the model's columns are not there."""
    try:
        coders = {} if model.design is None else coders_for(model.design.raw, model.design.kinds, model.design.levels,
                                                            strict=True, where=str(source))
        return open_rows_to_predict(source, model.raw_features, target, missing, coders)
    except PipelineError as error:
        if re.search(r"columns? .* (is|are) missing", str(error)):  # most often: data.source changed, not predict.source
            raise PipelineError(f"{error} (predict.source = {str(source)!r}: the rows to predict need the model's "
                                f"feature columns {first_few(model.raw_features, SHOWN_COEFFICIENTS)}; "
                                "predict.rows: fitted predicts data.source's rows)") from None
        raise


def main() -> None:
    params = load_params(PredictParams)
    data = load_params(DataParams)
    # Refused before any work: an output over an input, a tracked file or a folder (pipeline/guard.py).
    prepare_outputs([Path(params.output)], inputs=[Path(params.source), Path(data.source)], chosen_by="predict.output")
    model = LinearModel.load(MODEL)
    described = Description.load(MODEL)
    fit = LeastSquares.load(OLS)
    require_same_columns(model, described.fit_intercept, fit)
    if params.rows == "fitted":
        write_fitted(Path(data.source), data.missing, (data.test_fraction, data.split_seed), model, described.target,
                     fit, params)
    else:
        write_new(Path(params.source), data.missing, model, described.target, fit, params)


def write_fitted(source: Path, missing: str, held_out: tuple[float, int], model: LinearModel, target: str,
                 fit: LeastSquares, params: PredictParams) -> None:
    """Every row of data.source, with its split (held_out: data.test_fraction and data.split_seed), into
    predict.output; with predict.influence, the rows of large Cook's distance named."""
    # Not strict: a held-out row of a level training never saw gets empty computed columns.
    coders = {} if model.design is None else coders_for(model.design.raw, model.design.kinds, model.design.levels)
    output = Output(model, target, True, params.influence)
    names, labels = output.names(), {SPLIT: SPLITS} | text_labels(model)
    confidence = params.interval == "confidence"

    def read(seen: Streamed | None = None) -> tuple[Rows, int]:
        return read_while_drawing(source, *held_out, lambda: open_every_row(
            source, model.raw_features, target, missing, coders, seen), lambda opened: opened[1])

    # Written as the rows are read where the plan can hold (Streamed): not with influence, which the rows decide
    # after the read, nor where names clash, which is said after the read as it is without a plan.
    planned = 0 if params.influence or clashes(output) else rows_in_footer(source)
    rows = counts = cooks = None
    if planned:
        with suppress(_WriteAgain), table_writer(Path(params.output), names, labels) as writer:
            streamed = Streamed(writer, planned, FittedRows(SplitOf(planned, *held_out), model, fit, params.level,
                                                            target, confidence))
            rows, n_labeled = read(streamed)
            if not streamed.kept(n_labeled):
                raise _WriteAgain  # the file is dropped, unrenamed
            counts = streamed.counts
    if counts is None:
        if rows is None:
            rows, n_labeled = read()
        require_distinct_names(source, output)
        cooks = LargestCooks(fit.n) if params.influence else None
        counts = np.zeros(len(SPLITS), dtype=np.int64)
        with table_writer(Path(params.output), names, labels) as writer:
            for columns in predict_fitted(rows, SplitOf(n_labeled, *held_out), model, fit, params.level, target,
                                          confidence, cooks):
                counts += np.bincount(columns[SPLIT], minlength=len(SPLITS))
                writer.write(columns)
    splits = ", ".join(f"{count} {name}" for name, count in zip(SPLITS, counts) if count)
    extra = ", and the training rows' influence" if cooks is not None else ""
    print(f"predicted the {len(rows)} rows of {source} ({splits}) into {params.output}: {PREDICTION}, {LOWER} and "
          f"{UPPER} ({interval_words(params)}), {SE_FIT}, {RESIDUAL} (of {target}){extra}")
    if cooks is not None:
        print(cooks.line())
        if cooks.warning():
            print(cooks.warning(), file=sys.stderr)


def write_new(source: Path, missing: str, model: LinearModel, target: str, fit: LeastSquares,
              params: PredictParams) -> None:
    """The rows of predict.source into predict.output."""
    rows, has_target, rows_dropped = open_new(source, model, target, missing)
    warn_if_untracked(source)
    output = Output(model, target if has_target else None, False)
    require_distinct_names(source, output)
    with table_writer(Path(params.output), output.names(), text_labels(model)) as writer:
        for columns in predict(rows, model, fit, params.level, output.target, params.interval == "confidence"):
            writer.write(columns)
    residual = f", {RESIDUAL} (of {output.target})" if output.target else ""
    dropped = f" (left out {rows_dropped} with a missing feature: data.missing: drop)" if rows_dropped else ""
    print(f"predicted {len(rows)} rows of {source}{dropped} into {params.output}: {PREDICTION}, {LOWER} and {UPPER} "
          f"({interval_words(params)}), {SE_FIT}{residual}")


def interval_words(params: PredictParams) -> str:
    return f"its {percent(params.level)} {params.interval} interval"


def percent(level: float) -> str:
    """95%, or all the digits where %g would round a level below 1 to 100%."""
    shown = f"{level * 100:g}"
    return f"{shown if float(shown) < 100 else repr(level * 100)}%"


if __name__ == "__main__":
    run_stage_process(main)
