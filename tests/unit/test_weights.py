"""The weights file describes itself: its metadata names the columns, the degree, the target, the intercept
and the dtype, so `LinearModel.load` predicts from raw features without params.yaml and without torch."""

import json
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pytest
from safetensors import safe_open
from safetensors.numpy import save

from pipeline.errors import PipelineError
from pipeline.linear import Description, LinearModel, load_weights, save_weights
from workspace import ROOT

COLUMNS = ("a", "b", "a^2", "b^2", "a^3", "b^3")  # data.columns of features [a, b], degree 3
MODEL = LinearModel(COLUMNS, (0.5, -2.0, 0.25, 1.0, -0.125, 0.0625), 3.0)


def saved(tmp_path, model=MODEL, degree=3, fit_intercept=True, dtype="float64", target="price"):
    path = tmp_path / "model.safetensors"
    save_weights(path, model, dtype, fit_intercept, target, degree)
    return path


def test_the_metadata_names_the_columns_the_raw_features_the_degree_the_target_the_intercept_and_the_dtype(
        tmp_path):
    with safe_open(saved(tmp_path, dtype="float32"), framework="numpy") as file:
        metadata = file.metadata()
    assert json.loads(metadata["linear_model"]) == {
        "features": list(COLUMNS), "raw_features": ["a", "b"], "degree": 3, "target": "price",
        "fit_intercept": True, "dtype": "float32"}
    assert Description.load(tmp_path / "model.safetensors") == Description(
        COLUMNS, ("a", "b"), 3, "price", True, "float32")


def test_the_same_model_gives_the_same_bytes(tmp_path):
    first = saved(tmp_path).read_bytes()
    (tmp_path / "model.safetensors").unlink()
    assert saved(tmp_path).read_bytes() == first


def exact_prediction(row: tuple[float, float]) -> float:
    """3 + Σ coefficient · a^k or b^k, in rational arithmetic, rounded once."""
    a, b = (Fraction(value) for value in row)
    values = (a, b, a**2, b**2, a**3, b**3)
    return float(Fraction(MODEL.intercept) + sum(Fraction(c) * v for c, v in zip(MODEL.coefficients, values)))


RAW = np.array([[1.0, 2.0], [-3.0, 0.5], [10.0, -4.0]])


def test_load_gives_a_model_that_predicts_from_raw_features_an_arrow_table_or_every_column(tmp_path):
    model = LinearModel.load(saved(tmp_path))
    assert (model.features, model.raw_features, model.degree) == (COLUMNS, ("a", "b"), 3)
    expected = [exact_prediction(tuple(row)) for row in RAW]
    assert model.predict(RAW).tolist() == pytest.approx(expected, rel=1e-15)
    table = pa.table({"b": RAW[:, 1], "other": ["x", "y", "z"], "a": RAW[:, 0].astype(np.int64)})
    assert model.predict(table).tolist() == model.predict(RAW).tolist()
    every_column = np.column_stack([RAW, RAW**2, RAW**3])
    assert model.predict(every_column).tolist() == model.predict(RAW).tolist()


def test_a_table_without_a_feature_or_an_array_of_another_width_is_refused(tmp_path):
    model = LinearModel.load(saved(tmp_path))
    with pytest.raises(ValueError, match=r"the table has no column 'b': expected \['a', 'b'\]"):
        model.predict(pa.table({"a": [1.0]}))
    with pytest.raises(ValueError, match=r"shape \(3, 3\): expected \(n, 2\)"):
        model.predict(np.zeros((3, 3)))


def test_load_works_from_a_fresh_python_without_torch(tmp_path):
    path = saved(tmp_path)
    script = (
        "import sys\n"
        "from pipeline.linear import LinearModel\n"
        f"model = LinearModel.load({str(path)!r})\n"
        "print(model.predict([[1.0, 2.0]])[0])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) == exact_prediction((1.0, 2.0))


def test_load_weights_still_reads_the_columns_params_name_and_refuses_others_in_one_line(tmp_path):
    path = saved(tmp_path)
    assert load_weights(path, COLUMNS, True) == MODEL
    with pytest.raises(PipelineError) as raised:
        load_weights(path, ("a", "b"), True)
    assert str(raised.value) == (
        f"{path}: holds the weights of columns ['a', 'b', 'a^2', 'b^2', 'a^3', 'b^3']: expected ['a', 'b'], "
        "as data.features and data.degree say (run `dvc repro`)")


def test_weights_without_metadata_are_read_by_load_weights_but_not_by_load(tmp_path):
    path = tmp_path / "old.safetensors"
    path.write_bytes(save({"weight": np.array([[2.0]]), "bias": np.array([1.0])}))
    assert load_weights(path, ("x",), True) == LinearModel(("x",), (2.0,), 1.0)
    with pytest.raises(PipelineError, match=r"holds no 'linear_model' metadata: expected weights written by train"):
        LinearModel.load(path)


@pytest.mark.parametrize("metadata", [
    "not json", "[]", json.dumps({"features": ["a"]}),
    json.dumps({"features": ["a", "a^2"], "raw_features": ["a"], "degree": 3, "target": "y",
                "fit_intercept": True, "dtype": "float64"}),  # two columns, but degree 3 of one feature
    json.dumps({"features": ["a"], "raw_features": ["a"], "degree": 1, "target": "y",
                "fit_intercept": "yes", "dtype": "float64"}),
])
def test_metadata_that_does_not_describe_the_weights_gets_one_line(tmp_path, metadata):
    path = tmp_path / "model.safetensors"
    path.write_bytes(save({"weight": np.array([[2.0]]), "bias": np.array([1.0])}, metadata={"linear_model": metadata}))
    with pytest.raises(PipelineError) as raised:
        LinearModel.load(path)
    assert str(raised.value).startswith(f"{path}: its 'linear_model' metadata ") and "\n" not in str(raised.value)
    assert "train writes a JSON object of features, raw_features, degree, target, fit_intercept, dtype" in str(raised.value)


def test_weights_that_do_not_match_their_metadata_get_one_line(tmp_path):
    path = tmp_path / "model.safetensors"
    metadata = {"linear_model": json.dumps({"features": ["a"], "raw_features": ["a"], "degree": 1, "target": "y",
                                            "fit_intercept": True, "dtype": "float64"})}
    path.write_bytes(save({"weight": np.array([[2.0, 1.0]]), "bias": np.array([1.0])}, metadata=metadata))
    with pytest.raises(PipelineError, match=r"weight is \(1, 2\) float64: expected float64 of shape \(1, 1\)"):
        LinearModel.load(path)
