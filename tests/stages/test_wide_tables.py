"""Tables of 32 features and more: least squares by LAPACK's QR, whitening and leverage by BLAS (on one thread),
through every stage as its own process, with `data.features: all`."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet
from matplotlib.image import imread

from exact import exact_least_squares, relative_errors
from pipeline.qr import WIDE
from workspace import set_params, stage

READERS = ("train", "evaluate", "visualize", "predict")


def write_wide_table(path, rows: int, features: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Correlated features rounded to 3 decimals (exact in a CSV or by Fraction) and a noisy linear target."""
    generator = np.random.default_rng(seed)
    mixing = np.eye(features) + 0.5 * generator.standard_normal((features, features)) / np.sqrt(features)
    values = np.round(generator.standard_normal((rows, features)) @ mixing + generator.uniform(-3, 3, features), 3)
    target = np.round(values @ generator.uniform(-2, 2, features) + 4.0 + generator.standard_normal(rows), 3)
    columns = {f"f{k}": values[:, k] for k in range(features)} | {
        "note": pa.array([f"row {i}" for i in range(rows)]), "y": target}  # an identifier: all leaves it out
    pyarrow.parquet.write_table(pa.table(columns), path)
    return values, target


def test_a_wide_table_goes_through_every_stage_and_least_squares_is_the_exact_answer(reproduced):
    n_features = WIDE + 4  # above WIDE: the QR is LAPACK's
    features, target = write_wide_table(reproduced / "data" / "wide.parquet", 150, n_features)
    set_params(reproduced, {"data.source": "data/wide.parquet", "data.features": "all", "data.target": "y",
                            "data.test_fraction": 0.0, "predict.source": "data/wide.parquet"})
    results = {name: stage(reproduced, name, check=True) for name in READERS}
    assert ("data/wide.parquet: data.features = all: left out 'note', a text column of 150 levels"
            in results["train"].stdout)

    metrics = json.loads((reproduced / "metrics" / "metrics.json").read_text())
    names = [f"f{k}" for k in range(n_features)]
    exact = exact_least_squares(features, target)
    ols = [metrics["ols"]["intercept"]] + [metrics["ols"][name] for name in names]
    assert max(relative_errors(ols, exact)) < 1e-9
    assert metrics["converged"] and set(metrics["inference"]) == {*names, "intercept"}
    for picture in (reproduced / "plots").glob("*.png"):
        assert max(imread(picture).shape[:2]) <= 3000, picture.name
    predictions = pyarrow.parquet.read_table(reproduced / "data" / "predictions.parquet")
    assert predictions.num_rows == 150 and np.all(np.asarray(predictions["lower"]) < np.asarray(predictions["upper"]))


def test_a_wide_tables_outputs_are_the_same_bytes_whatever_the_number_of_threads(reproduced):
    # 20,000 rows × 120 features: large enough that OpenBLAS's own threads would change the QR's last bits.
    write_wide_table(reproduced / "data" / "wide.parquet", 20_000, 120, seed=1)
    set_params(reproduced, {"data.source": "data/wide.parquet", "data.features": "all", "data.target": "y"})
    outputs = ("models/model.safetensors", "metrics/history.csv", "metrics/metrics.json", "models/ols.safetensors")
    written = []
    for count in ("1", "2"):
        for name in ("train", "evaluate"):
            stage(reproduced, name, check=True, OMP_NUM_THREADS=count)
        written.append({path: (reproduced / path).read_bytes() for path in outputs})
    assert written[0] == written[1]
