"""Stage synthesize: draw points y = m·x + c + N(0, noise²), each feature uniform in [x_min, x_max]."""

import numpy as np

from pipeline.errors import run_stage
from pipeline.files import POINTS, TRUTH, write_json, write_table
from pipeline.linear import LinearModel
from pipeline.params import SynthesizeParams, load_params

# Where m or c is null, it is drawn uniformly from this range, as the tutorial drew them at random.
DRAWN_RANGE = (-5.0, 5.0)


def synthesize(params: SynthesizeParams) -> tuple[dict[str, np.ndarray], LinearModel]:
    """The columns (features, then y) and the true line they were drawn from."""
    # Separate streams for the line and for the points, so that fixing m or c to the value once drawn
    # leaves x and the noise unchanged.
    line_stream, x_stream, noise_stream = (
        np.random.default_rng(seed) for seed in np.random.SeedSequence(params.seed).spawn(3)
    )
    m_drawn, c_drawn = line_stream.uniform(*DRAWN_RANGE, size=2)
    slopes = params.m if isinstance(params.m, list) else [float(m_drawn) if params.m is None else params.m]
    true_line = LinearModel(params.feature_names, tuple(slopes), float(c_drawn) if params.c is None else params.c)
    # One feature draws x exactly as the tutorial did; d features draw an (n, d) block from the same stream.
    shape = params.n_points if len(slopes) == 1 else (params.n_points, len(slopes))
    features = x_stream.uniform(params.x_min, params.x_max, size=shape).reshape(params.n_points, len(slopes))
    y = true_line.predict(features) + noise_stream.normal(0.0, params.noise, size=params.n_points)
    columns = {name: features[:, column] for column, name in enumerate(true_line.features)}
    return {**columns, "y": y}, true_line


def main() -> None:
    params = load_params(SynthesizeParams)
    columns, true_line = synthesize(params)
    write_table(POINTS, columns)
    write_json(TRUTH, true_line.as_dict())
    terms = " ".join(f"{coefficient:+.6g}·{name}" for name, coefficient in zip(true_line.features,
                                                                                true_line.coefficients))
    print(f"{params.n_points} points on y = {terms} {true_line.intercept:+.6g} with noise {params.noise:g}")


if __name__ == "__main__":
    run_stage(main)
