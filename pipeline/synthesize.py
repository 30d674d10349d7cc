"""Stage synthesize: draw points y = m·x + c + N(0, noise²), each feature uniform in [x_min, x_max]."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.errors import run_stage_process
from pipeline.files import POINTS, TRUTH, TableWriter, write_json
from pipeline.guard import prepare_outputs
from pipeline.linear import LinearModel
from pipeline.params import SynthesizeParams, load_params

# Where m or c is null, it is drawn uniformly from this range, as the tutorial drew them at random.
DRAWN_RANGE = (-5.0, 5.0)

# Rows drawn at a time: memory holds a few arrays of this many rows (times the features), whatever n_points.
CHUNK_ROWS = 1 << 16


def true_line(params: SynthesizeParams) -> LinearModel:
    """The line the points are drawn from: m and c as given, or drawn from the seed where null."""
    line_stream, _, _ = _streams(params)
    m_drawn, c_drawn = line_stream.uniform(*DRAWN_RANGE, size=2)
    slopes = params.m if isinstance(params.m, list) else [float(m_drawn) if params.m is None else params.m]
    return LinearModel(params.feature_names, tuple(slopes), float(c_drawn) if params.c is None else params.c)


def draw_points(params: SynthesizeParams, chunk_rows: int = CHUNK_ROWS) -> Iterator[dict[str, np.ndarray]]:
    """The columns (features, then y), `chunk_rows` rows at a time (the last chunk shorter).

    Generator.uniform and .normal draw one value after another, so k rows and then k more are the same
    values as 2k rows at once: the points do not depend on `chunk_rows`.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows = {chunk_rows}: expected at least 1")
    line = true_line(params)
    _, x_stream, noise_stream = _streams(params)
    n_features = len(line.features)
    for start in range(0, params.n_points, chunk_rows):
        n_rows = min(chunk_rows, params.n_points - start)
        # One feature draws x exactly as the tutorial did; d features draw an (n, d) block from the same stream.
        shape = n_rows if n_features == 1 else (n_rows, n_features)
        features = x_stream.uniform(params.x_min, params.x_max, size=shape).reshape(n_rows, n_features)
        y = line.predict(features) + noise_stream.normal(0.0, params.noise, size=n_rows)
        yield {**{name: features[:, column] for column, name in enumerate(line.features)}, "y": y}


def write_points(path: Path, params: SynthesizeParams, chunk_rows: int = CHUNK_ROWS,
                 group_rows: int | None = None) -> None:
    """Stream the points to a Parquet file: memory holds one chunk and one row group, whatever n_points."""
    with TableWriter(path, (*params.feature_names, "y"), group_rows) as points:
        for columns in draw_points(params, chunk_rows):
            points.write(columns)


def _streams(params: SynthesizeParams) -> tuple[np.random.Generator, ...]:
    # Separate streams for the line, x and the noise, so that fixing m or c to the value once drawn leaves
    # x and the noise unchanged.
    return tuple(np.random.default_rng(seed) for seed in np.random.SeedSequence(params.seed).spawn(3))


def main() -> None:
    params = load_params(SynthesizeParams)
    prepare_outputs([POINTS, TRUTH])
    line = true_line(params)
    write_points(POINTS, params)
    write_json(TRUTH, line.as_dict())
    terms = " ".join(f"{coefficient:+.6g}·{name}" for name, coefficient in zip(line.features, line.coefficients))
    print(f"{params.n_points} points on y = {terms} {line.intercept:+.6g} with noise {params.noise:g}")


if __name__ == "__main__":
    run_stage_process(main)
