"""The fitted-model type, the least-squares baseline (against exact rational answers) and the weights file."""

import pickle

import numpy as np
import pytest
from safetensors.numpy import save

from exact import correlated_table, exact_least_squares, reference_table, relative_errors, through_origin_table
from pipeline.errors import PipelineError
from pipeline.linear import LinearModel, least_squares, load_weights, mse, prediction_gap, r2, save_weights


def coefficients_of(model: LinearModel, fit_intercept: bool = True) -> list[float]:
    return [model.intercept] * fit_intercept + list(model.coefficients)


@pytest.mark.parametrize("table", [reference_table, correlated_table], ids=["one feature", "six correlated"])
def test_least_squares_matches_the_exact_rational_solution(table):
    features, target = table()
    names = tuple(f"f{column}" for column in range(features.shape[1]))
    found = coefficients_of(least_squares(features, target, names, True, "t.csv"))
    assert max(relative_errors(found, exact_least_squares(features, target))) < 1e-9


def test_least_squares_without_an_intercept_matches_the_exact_solution():
    features, target = through_origin_table()
    model = least_squares(features, target, ("x",), False, "t.csv")
    assert model.intercept == 0.0
    assert max(relative_errors(list(model.coefficients), exact_least_squares(features, target, False))) < 1e-9


def test_least_squares_is_not_the_normal_equations():
    # A column far from zero and nearly constant: the normal equations in float64 lose every digit of
    # the slope, an orthogonal method keeps it.
    x = 1e8 + np.arange(6.0)
    y = 3.0 * (x - 1e8) + 0.5
    model = least_squares(x[:, None], y, ("x",), True, "t.csv")
    assert model.coefficients[0] == pytest.approx(3.0, rel=1e-9)
    normal = np.linalg.solve(*(lambda design: (design.T @ design, design.T @ y))(np.column_stack([np.ones(6), x])))
    assert abs(normal[1] - 3.0) > 1e-3  # what this test would not notice if least_squares solved them


def test_linearly_dependent_features_are_named():
    x = np.arange(10.0)
    with pytest.raises(PipelineError, match=r"t.csv: feature 'double' is a linear combination of 'x' and the intercept"):
        least_squares(np.column_stack([x, 2 * x + 1]), x, ("x", "double"), True, "t.csv")


def test_a_model_predicts_mse_r2_and_gap():
    model = LinearModel(("a", "b"), (2.0, -1.0), 0.5)
    features = np.array([[1.0, 2.0], [3.0, 0.0], [0.0, 1.0]])
    assert list(model.predict(features)) == [0.5, 6.5, -0.5]
    target = np.array([0.5, 6.5, 0.5])
    assert mse(model, features, target) == pytest.approx(1 / 3)
    # SST about the mean (5/2 … ) and, without an intercept, about zero.
    mean = target.mean()
    assert r2(model, features, target, True) == pytest.approx(1 - 1 / ((target - mean) ** 2).sum())
    assert r2(model, features, target, False) == pytest.approx(1 - 1 / (target**2).sum())
    other = LinearModel(("a", "b"), (2.0, -1.0), 0.5 + target.std())
    assert prediction_gap(model, other, features, target) == pytest.approx(1.0)
    assert model.as_dict() == {"a": 2.0, "b": -1.0, "intercept": 0.5}
    assert LinearModel.from_dict(("a", "b"), model.as_dict()) == model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_weights_round_trip_through_safetensors(tmp_path, dtype, fit_intercept):
    model = LinearModel(("a", "b"), (0.1, -2.0), 0.3 if fit_intercept else 0.0)
    path = tmp_path / "model.safetensors"
    save_weights(path, model, dtype, fit_intercept)
    loaded = load_weights(path, ("a", "b"), fit_intercept)
    rounded = np.dtype(dtype).type
    assert loaded.coefficients == tuple(float(rounded(value)) for value in model.coefficients)
    assert loaded.intercept == float(rounded(model.intercept))
    save_weights(tmp_path / "again.safetensors", model, dtype, fit_intercept)
    assert (tmp_path / "again.safetensors").read_bytes() == path.read_bytes()


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def good_weights() -> dict:
    return {"weight": np.zeros((1, 2), np.float32), "bias": np.zeros(1, np.float32)}


WEIGHT_FILES = {
    "a pickle": (lambda marker: pickle.dumps(Payload(marker)), "is a pickle"),
    "a torch.save zip archive": (lambda marker: b"PK\x03\x04" + b"\0" * 100, "is a pickle"),
    "an empty file": (lambda marker: b"", "not a readable safetensors file"),
    "a truncated file": (lambda marker: save(good_weights())[:-3], "not a readable safetensors file"),
    "an oversized header": (lambda marker: (2**62).to_bytes(8, "little") + b"{}", "not a readable safetensors file"),
    "binary junk": (lambda marker: bytes(range(256)) * 4, "not a readable safetensors file"),
    "a missing bias": (lambda marker: save({"weight": np.zeros((1, 2), np.float32)}), r"holds \['weight'\]"),
    "a wrong shape": (lambda marker: save({**good_weights(), "weight": np.zeros((1, 3), np.float32)}),
                      r"weight is \(1, 3\) float32: expected float32 or float64 of shape \(1, 2\)"),
    "integer weights": (lambda marker: save({**good_weights(), "weight": np.zeros((1, 2), np.int32)}), "int32"),
    "a NaN": (lambda marker: save({**good_weights(), "bias": np.array([np.nan], np.float32)}), "expected finite"),
}


@pytest.mark.parametrize("case", WEIGHT_FILES)
def test_a_bad_weights_file_gets_one_line_and_a_payload_never_runs(tmp_path, case):
    write, message = WEIGHT_FILES[case]
    marker = tmp_path / "payload-ran"
    path = tmp_path / "model.safetensors"
    path.write_bytes(write(marker))
    with pytest.raises(PipelineError, match=message) as raised:
        load_weights(path, ("a", "b"), True)
    assert str(raised.value).startswith(f"{path}: ") and "\n" not in str(raised.value)
    assert not marker.exists()
