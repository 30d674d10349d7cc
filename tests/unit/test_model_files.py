"""models/model.safetensors and models/ols.safetensors validated on load, every tensor and every metadata field
damaged in turn: each damaged file is one line that names it and says how to restore it, or, where the damage
leaves a valid file (a finite value is a value), predictions that are finite or refused in one line."""

import functools
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load, save

from pipeline.split import Split
from pipeline.errors import PipelineError
from pipeline.evaluate import evaluate
from pipeline.convergence import Tolerances
from pipeline.least_squares import LeastSquares
from pipeline.factoring import fit_least_squares
from pipeline.linear import Description, LinearModel, load_weights, safe_open_metadata, save_weights
from pipeline.predict import predict
from pipeline.rows import Table

RESTORE = "run `dvc checkout models/` to restore it, or `dvc repro`"
ROWS = Table(np.array([[-5.0], [0.5], [5.0]]), np.array([1.0, 2.0, 3.0]))


@functools.cache
def good_bytes() -> tuple[bytes, bytes]:
    """A model and its least-squares fit, as train and evaluate write them, of y = 2.5·x − 1 + noise."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-5, 5, (40, 1))
    fit = fit_least_squares(Table(x, 2.5 * x[:, 0] - 1 + rng.normal(size=40)), ("x",), True, "t.csv")
    with tempfile.TemporaryDirectory() as folder:
        weights, ols = Path(folder) / "model.safetensors", Path(folder) / "ols.safetensors"
        save_weights(weights, fit.model, "float64", True, "y")
        fit.save(ols)
        return weights.read_bytes(), ols.read_bytes()


def good_files(folder: Path) -> tuple[Path, Path]:
    weights, ols = folder / "model.safetensors", folder / "ols.safetensors"
    weights.write_bytes(good_bytes()[0])
    ols.write_bytes(good_bytes()[1])
    return weights, ols


def damaged(tensor: np.ndarray, how: str) -> np.ndarray | None:
    values = tensor.copy()
    if how == "nan":
        values.ravel()[0] = np.nan
    elif how == "inf":
        values.ravel()[-1] = -np.inf
    elif how == "huge":
        values.ravel()[0] = 1e308
    elif how == "wrong shape":
        return np.concatenate([tensor.ravel(), tensor.ravel()[:1]])
    elif how == "a scalar of shape (1,)":
        return tensor.ravel()[:1] if tensor.shape != (1,) else tensor.reshape(1, 1)
    elif how == "wrong dtype":
        return tensor.astype(np.float16)
    elif how == "integers":
        return tensor.astype(np.int64)
    elif how == "missing":
        return None
    return values


TENSOR_DAMAGES = ("nan", "inf", "huge", "wrong shape", "a scalar of shape (1,)", "wrong dtype", "integers", "missing")
WEIGHTS = ("weight", "bias")
OLS = ("coefficients", "intercept", "x_mean", "x_scale", "r_inverse", "x_spread", "scalars")


def rewrite(path: Path, tensor: str | None = None, how: str | None = None, edit=None) -> None:
    content = path.read_bytes()
    state, metadata = load(content), safe_open_metadata(content)
    if tensor is not None:
        value = damaged(state.pop(tensor), how)
        if value is not None:
            state[tensor] = value
    if edit is not None:
        metadata = edit(metadata)
    path.write_bytes(save(state, metadata=metadata))


def one_line_naming(error: PipelineError, path: Path) -> bool:
    text = str(error)
    return text.startswith(f"{path}: ") and "\n" not in text and len(text) < 600 and "dvc repro" in text


def outcome(weights: Path, ols: Path) -> str:
    """'refused' (one line naming the damaged file), 'finite' (predictions and bounds) or 'refused results' (one
    line); anything else fails the test."""
    try:
        model, fit = LinearModel.load(weights), LeastSquares.load(ols)
    except PipelineError as error:
        assert one_line_naming(error, weights) or one_line_naming(error, ols), str(error)
        assert RESTORE in str(error) or "dvc repro" in str(error)
        return "refused"
    try:
        found = list(predict(ROWS, model, fit, 0.95, None))
    except PipelineError as error:
        assert "\n" not in str(error) and "expected finite numbers" in str(error)
        return "refused results"
    assert all(np.isfinite(chunk[name]).all() for chunk in found for name in ("prediction", "lower", "upper"))
    return "finite"


@pytest.mark.parametrize("how", TENSOR_DAMAGES)
@pytest.mark.parametrize("tensor", WEIGHTS + OLS)
def test_every_damaged_tensor_is_one_line_or_finite_results(tmp_path, tensor, how):
    weights, ols = good_files(tmp_path)
    rewrite(weights if tensor in WEIGHTS else ols, tensor, how)
    result = outcome(weights, ols)
    if how != "huge":  # a finite value is a value: what it gives is judged on the results
        assert result == "refused"


def test_weights_of_1e308_give_one_line_not_infinite_predictions(tmp_path):
    weights, ols = good_files(tmp_path)
    rewrite(weights, "weight", "huge")
    assert outcome(weights, ols) == "refused results"


def json_edits(key: str) -> dict:
    """Each field of the JSON object in metadata[key] missing, of a wrong type, huge, or repeated."""
    def edit(field, how):
        def apply(metadata):
            values = json.loads(metadata[key])
            if how == "missing":
                del values[field]
            elif how == "wrong type":
                values[field] = {"a": [1]}
            elif how == "huge":
                value = values[field]
                values[field] = (["z" * 100_000, *value] if isinstance(value, list) else
                                 10**300 if type(value) is int else "z" * 100_000)
            text = json.dumps(values)
            if how == "repeated":
                text = text[:-1] + f", {json.dumps(field)}: {json.dumps(values[field])}}}"
            return {**metadata, key: text}
        return apply
    fields = {"linear_model": ("features", "raw_features", "degree", "target", "fit_intercept", "dtype"),
              "least_squares": ("features", "n", "fit_intercept")}[key]
    return {f"{field} {how}": edit(field, how) for field in fields
            for how in ("missing", "wrong type", "huge", "repeated")}


# Each model file, its metadata key and its loader.
DAMAGED_METADATA = {"linear_model": (0, LinearModel.load), "least_squares": (1, LeastSquares.load)}


@pytest.mark.parametrize(("key", "case"), [(key, case) for key in DAMAGED_METADATA for case in json_edits(key)])
def test_every_damaged_field_of_a_model_files_metadata_is_one_line(tmp_path, key, case):
    which, load = DAMAGED_METADATA[key]
    path = good_files(tmp_path)[which]
    rewrite(path, edit=json_edits(key)[case])
    with pytest.raises(PipelineError) as raised:
        load(path)
    assert one_line_naming(raised.value, path) and RESTORE in str(raised.value)
    assert "z" * 50 not in str(raised.value)  # a huge name is cut, never echoed


def description(**changes) -> dict:
    return {"features": ["a", "b", "a^2", "b^2"], "raw_features": ["a", "b"], "degree": 2, "target": "y",
            "fit_intercept": True, "dtype": "float64"} | changes


@pytest.mark.parametrize("values, said", [
    (description(target="a"), "names target 'a' as a feature too"),
    (description(target="a^2"), r"names target 'a\^2' as a feature too"),
    (description(raw_features=["a", "a"], features=["a", "a", "a^2", "a^2"]), "names feature 'a' twice"),
    (description(raw_features=["a" * 201, "b"], features=["a" * 201, "b", "a" * 201 + "^2", "b^2"]),
     "names a feature of 201 characters"),
    (description(raw_features=["", "b"], features=["", "b", "^2", "b^2"]), "names a feature of 0 characters"),
    (description(features=["a", "b", "b^2", "a^2"]), "expected the raw features, then their powers up to the degree"),
    (description(degree=0, features=[]), "field degree is 0: expected an integer from 1 to 10"),
    (description(degree=True), "field degree is true"),
    (description(degree=11), "field degree is 11"),
    (description(dtype="float16"), "field dtype is 'float16'"),
    (description(raw_features=[], features=[]), "names 0 raw features"),
])
def test_the_weights_metadata_is_checked_for_distinct_bounded_names_and_a_target_apart(tmp_path, values, said):
    path = tmp_path / "model.safetensors"
    path.write_bytes(save({"weight": np.zeros((1, len(values["features"]) or 1)), "bias": np.zeros(1)},
                          metadata={"linear_model": json.dumps(values)}))
    with pytest.raises(PipelineError, match=said):
        Description.load(path)


def test_a_name_of_200_characters_is_read(tmp_path):
    path = tmp_path / "model.safetensors"
    name = "a" * 200
    save_weights(path, LinearModel((name, "b"), (1.0, 2.0), 0.5), "float64", True, "y")
    assert LinearModel.load(path).features == (name, "b")


@pytest.mark.parametrize("n", [1, 2, -100, 0, True, 2.5, "40"])
def test_a_least_squares_file_of_n_at_most_p_or_not_an_integer_is_one_line(tmp_path, n):
    weights, ols = good_files(tmp_path)
    rewrite(ols, edit=lambda metadata: {"least_squares": json.dumps(json.loads(metadata["least_squares"]) | {"n": n})})
    with pytest.raises(PipelineError, match=r"its n is .*: expected an integer above the 2 coefficients"):
        LeastSquares.load(ols)


@pytest.mark.parametrize("index, value, said", [
    (1, -1.0, "negative"), (2, -1e-300, "negative"), (3, -2.0, "negative")])  # y_scale, rss, y_sd
def test_negative_sums_of_squares_are_one_line(tmp_path, index, value, said):
    weights, ols = good_files(tmp_path)
    state = load(ols.read_bytes())
    state["scalars"][index] = value
    ols.write_bytes(save(state, metadata=safe_open_metadata(ols.read_bytes())))
    with pytest.raises(PipelineError, match=said):
        LeastSquares.load(ols)


def test_an_r_inverse_that_is_not_upper_triangular_is_one_line(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.uniform(-5, 5, (40, 2))
    fit = fit_least_squares(Table(x, x @ [1.0, 2.0] + rng.normal(size=40)), ("a", "b"), True, "t.csv")
    path = tmp_path / "ols.safetensors"
    fit.save(path)
    state = load(path.read_bytes())
    state["r_inverse"] = state["r_inverse"].T.copy()
    path.write_bytes(save(state, metadata=safe_open_metadata(path.read_bytes())))
    with pytest.raises(PipelineError, match="r_inverse is not upper triangular"):
        LeastSquares.load(path)


def test_weights_of_another_dtype_than_their_metadata_says_are_one_line(tmp_path):
    weights, _ = good_files(tmp_path)
    content = weights.read_bytes()
    state = {name: value.astype(np.float32) for name, value in load(content).items()}
    weights.write_bytes(save(state, metadata=safe_open_metadata(content)))
    with pytest.raises(PipelineError, match=r"weight is \(1, 1\) float32: expected float64"):
        load_weights(weights, ("x",), True)


def test_evaluate_refuses_weights_whose_predictions_are_beyond_float64_naming_the_weights():
    rows = Table(np.array([[1.0], [2.0], [3.0], [4.0]]), np.array([1.0, 3.0, 2.0, 5.0]))
    learnt = LinearModel(("x",), (1e308,), 0.0)
    tolerances = Tolerances("float64", 1e-4, 0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no numpy warning on the way
        with pytest.raises(PipelineError, match=r"^models/model\.safetensors: its predictions of the training rows "
                                                r"are beyond float64 \(mse inf\)"):
            evaluate(Split(Path("t.csv"), rows, None, 0), learnt, None, True, tolerances, 0.95)
