"""Stage predict: apply the trained model to new rows (predict.source), each with a prediction interval for a
new observation from the least-squares fit to the training rows. The weights file says which columns it
needs, so predict reads no other params than its own. No torch."""

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.dataset import open_new_rows
from pipeline.errors import PipelineError, first_few, run_stage
from pipeline.files import MODEL, OLS, table_writer
from pipeline.linear import SHOWN_COEFFICIENTS, Description, LinearModel
from pipeline.least_squares import LeastSquares
from pipeline.params import PredictParams, load_params
from pipeline.rows import Rows, chunks
from pipeline.levels import coders_for
from pipeline.terms import NUMBER

# The columns predict adds after the source's features (and target, if the source has it).
PREDICTION, LOWER, UPPER, RESIDUAL = "prediction", "lower", "upper", "residual"


def predict(rows: Rows, model: LinearModel, fit: LeastSquares, level: float,
            target: str | None) -> Iterator[dict[str, np.ndarray]]:
    """The output's columns, a chunk of rows at a time: the raw features, the target (if named), then the
    model's prediction, the interval [lower, upper] that holds a new observation with probability `level`
    (from the least-squares fit, around the model's prediction) and the residual (with a target)."""
    offset = 0
    for chunk in chunks(rows):
        if model.design is not None:
            model.design.check_domain(chunk.features, offset, "predict.source")
            offset += len(chunk)
            unseen = model.design.first_unseen(chunk.features)
            if unseen:
                raise PipelineError(f"predict.source: {unseen}")
        columns = model.columns_of(chunk.features)
        prediction = model.predict_columns(columns)
        half_width = fit.interval_half_width(columns, level, new_observation=True)
        found = {name: chunk.features[:, j] for j, name in enumerate(model.raw_features)
                 if name in written_features(model)}
        if target is not None:
            found[target] = chunk.target
        found |= {PREDICTION: prediction, LOWER: prediction - half_width, UPPER: prediction + half_width}
        if target is not None:
            found[RESIDUAL] = chunk.target - prediction
        yield found


def written_features(model: LinearModel) -> tuple[str, ...]:
    """The raw features the output repeats: the numeric ones (the writers write numbers; a factor's codes are
    not what the user wrote)."""
    if model.design is None:
        return model.raw_features
    return tuple(name for name in model.raw_features if model.design.kinds[name] == NUMBER)


def output_names(model: LinearModel, target: str | None) -> tuple[str, ...]:
    return (*written_features(model), *([target] if target else []), PREDICTION, LOWER, UPPER,
            *([RESIDUAL] if target else []))


def require_same_columns(model: LinearModel, fit_intercept: bool, fit: LeastSquares) -> None:
    """The least-squares fit must be of the trained model's columns: both come from the same params."""
    if fit.model.features != model.features or fit.fit_intercept != fit_intercept:
        raise PipelineError(
            f"{OLS}: the least-squares fit of columns {list(fit.model.features)} "
            f"{'with' if fit.fit_intercept else 'without'} an intercept: expected that of {MODEL}, "
            f"columns {list(model.features)} {'with' if fit_intercept else 'without'} (run `dvc repro`)")


def require_distinct_names(source: Path, model: LinearModel, target: str | None) -> None:
    added = {PREDICTION, LOWER, UPPER, RESIDUAL}
    for name in (*model.raw_features, *([target] if target else [])):
        if name in added:
            raise PipelineError(f"{source}: column {name!r} has the name of a column predict adds: expected none "
                                f"of {', '.join(sorted(added))} (rename it)")


def main() -> None:
    params = load_params(PredictParams)
    model = LinearModel.load(MODEL)
    described = Description.load(MODEL)
    fit = LeastSquares.load(OLS)
    require_same_columns(model, described.fit_intercept, fit)
    source, output = Path(params.source), Path(params.output)
    try:
        coders = {} if model.design is None else coders_for(model.design.raw, model.design.kinds,
                                                            model.design.levels, strict=True, where=str(source))
        rows, has_target = open_new_rows(source, model.raw_features, described.target, coders)
    except PipelineError as error:
        if re.search(r"columns? .* (is|are) missing", str(error)):  # most often: data.source changed, not predict.source
            raise PipelineError(f"{error} (predict.source = {params.source!r}: the rows to predict need the "
                                f"model's feature columns {first_few(model.raw_features, SHOWN_COEFFICIENTS)})") from None
        raise
    target = described.target if has_target else None
    require_distinct_names(source, model, target)
    with table_writer(output, output_names(model, target)) as writer:
        for columns in predict(rows, model, fit, params.level, target):
            writer.write(columns)
    residual = f", {RESIDUAL} (of {target})" if target else ""
    print(f"predicted {len(rows)} rows of {source} into {output}: {PREDICTION}, {LOWER} and {UPPER} "
          f"(its {params.level * 100:g}% prediction interval){residual}")


if __name__ == "__main__":
    run_stage(main)
