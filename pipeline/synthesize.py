"""Stage synthesize: draw points y = m·x + c + N(0, noise²), x uniform in [x_min, x_max]."""

from dataclasses import dataclass

import numpy as np

from pipeline.errors import run_stage
from pipeline.files import POINTS, TRUTH, write_json, write_points
from pipeline.params import SynthesizeParams, load_params

# Where m or c is null, it is drawn uniformly from this range, as the tutorial drew them at random.
DRAWN_RANGE = (-5.0, 5.0)


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray
    y: np.ndarray
    m_true: float
    c_true: float


def synthesize(params: SynthesizeParams) -> Dataset:
    # Separate streams for the line and for the points, so that fixing m or c to the value once drawn
    # leaves x and the noise unchanged.
    line_stream, x_stream, noise_stream = (
        np.random.default_rng(seed) for seed in np.random.SeedSequence(params.seed).spawn(3)
    )
    m_drawn, c_drawn = line_stream.uniform(*DRAWN_RANGE, size=2)
    m_true = float(m_drawn) if params.m is None else params.m
    c_true = float(c_drawn) if params.c is None else params.c
    x = x_stream.uniform(params.x_min, params.x_max, size=params.n_points)
    y = m_true * x + c_true + noise_stream.normal(0.0, params.noise, size=params.n_points)
    return Dataset(x=x, y=y, m_true=m_true, c_true=c_true)


def main() -> None:
    params = load_params(SynthesizeParams)
    dataset = synthesize(params)
    write_points(POINTS, dataset.x, dataset.y)
    write_json(TRUTH, {"m_true": dataset.m_true, "c_true": dataset.c_true})
    print(f"{params.n_points} points on y = {dataset.m_true:.6g}·x {dataset.c_true:+.6g} with noise {params.noise:g}")


if __name__ == "__main__":
    run_stage(main)
