"""models/ols.safetensors, evaluate's least-squares fit: the same bytes every time it is written, and read back whole."""

from pathlib import Path

import numpy as np

from pipeline.least_squares import LeastSquares
from pipeline.factoring import fit_least_squares
from pipeline.rows import Table


def test_the_least_squares_file_is_the_same_bytes_every_time_and_reads_back(tmp_path: Path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-5, 5, (50, 2))
    fit = fit_least_squares(Table(x, x @ [2.5, -1.0] + 3.0 + rng.normal(size=50)), ("a", "b"), True, "t.csv")
    written = set()
    for attempt in range(30):  # safetensors orders several metadata keys by a hash seeded anew for each file
        fit.save(tmp_path / f"{attempt}.safetensors")
        written.add((tmp_path / f"{attempt}.safetensors").read_bytes())
    assert len(written) == 1
    loaded = LeastSquares.load(tmp_path / "0.safetensors")
    assert (loaded.model, loaded.n, loaded.fit_intercept, loaded.y_mean, loaded.y_scale, loaded.rss) == \
        (fit.model, fit.n, fit.fit_intercept, fit.y_mean, fit.y_scale, fit.rss)
    for name in ("x_mean", "x_scale", "r_inverse"):
        assert np.array_equal(getattr(loaded, name), getattr(fit, name))
