"""Stage predict: apply the trained model to new rows (predict.source), each with a prediction interval for a
new observation from the least-squares fit to the training rows. The weights file says which columns it
needs, so predict reads no other params than its own. No torch."""

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.dataset import open_new_rows
from pipeline.errors import PipelineError, first_few, run_stage
from pipeline.files import MODEL, OLS, prepare_outputs, table_writer
from pipeline.linear import SHOWN_COEFFICIENTS, Description, LinearModel
from pipeline.least_squares import LeastSquares
from pipeline.params import PredictParams, load_params
from pipeline.repository import param, warn_if_untracked
from pipeline.rows import Rows, chunks

# The columns predict adds after the source's features (and target, if the source has it).
PREDICTION, LOWER, UPPER, RESIDUAL = "prediction", "lower", "upper", "residual"


def predict(rows: Rows, model: LinearModel, fit: LeastSquares, level: float,
            target: str | None) -> Iterator[dict[str, np.ndarray]]:
    """The output's columns, a chunk of rows at a time: the raw features, the target (if named), then the
    model's prediction, the interval [lower, upper] that holds a new observation with probability `level`
    (from the least-squares fit, around the model's prediction) and the residual (with a target)."""
    for chunk in chunks(rows):
        columns = model.columns_of(chunk.features)
        prediction = model.predict(columns)
        half_width = fit.interval_half_width(columns, level, new_observation=True)
        found = {name: chunk.features[:, j] for j, name in enumerate(model.raw_features)}
        if target is not None:
            found[target] = chunk.target
        found |= {PREDICTION: prediction, LOWER: prediction - half_width, UPPER: prediction + half_width}
        if target is not None:
            found[RESIDUAL] = chunk.target - prediction
        yield found


def output_names(model: LinearModel, target: str | None) -> tuple[str, ...]:
    return (*model.raw_features, *([target] if target else []), PREDICTION, LOWER, UPPER,
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


def data_source() -> list[Path]:
    """data.source as params.yaml spells it, if it does (predict reads no other section's params)."""
    value = param("data.source")
    return [Path(value)] if isinstance(value, str) and value else []


def main() -> None:
    params = load_params(PredictParams)
    source, output = Path(params.source), Path(params.output)
    # Refused before any work: an output over an input, a tracked file or a folder (pipeline/files.py: guard).
    prepare_outputs([output], inputs=[source, *data_source()], chosen_by="predict.output")
    model = LinearModel.load(MODEL)
    described = Description.load(MODEL)
    fit = LeastSquares.load(OLS)
    require_same_columns(model, described.fit_intercept, fit)
    try:
        rows, has_target = open_new_rows(source, model.raw_features, described.target)
    except PipelineError as error:
        if re.search(r"columns? .* (is|are) missing", str(error)):  # most often: data.source changed, not predict.source
            raise PipelineError(f"{error} (predict.source = {params.source!r}: the rows to predict need the "
                                f"model's feature columns {first_few(model.raw_features, SHOWN_COEFFICIENTS)})") from None
        raise
    warn_if_untracked(source)
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
