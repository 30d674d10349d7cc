"""predict's core on in-memory rows: the trained model's prediction, the prediction interval from the
least-squares fit (against exact rational answers and a closed form of Student's t), and the rows to
predict read with data.source's checks, the target optional."""

import math
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet
import pytest

from exact import exact_inference
from pipeline.dataset import gather, open_every_row, open_rows_to_predict
from pipeline.split import load_split
from pipeline.errors import PipelineError
from pipeline.files import table_writer
from pipeline.influence import LargestCooks, influence
from pipeline.linear import LinearModel
from pipeline.factoring import fit_least_squares
from pipeline.params import DataParams, PredictParams, load_params
from pipeline.predict import (
    SPLITS, TEST, TRAIN, UNLABELED, FittedRows, Output, SplitOf, Streamed, predict, predict_fitted, write_fitted,
)
from pipeline.rows import Table, powers
from workspace import ROOT

# Five training rows, a parabola: p = 3 coefficients, so n − p = 2 degrees of freedom, for which Student's t
# has a closed form: t(q, 2) = a·sqrt(2 / (1 − a²)) with a = 2q − 1, and a = level for q = 1 − (1 − level)/2.
X_TRAIN = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
Y_TRAIN = np.array([1.0, 2.5, 2.0, 4.5, 7.0])
NEW_X = np.array([-1.0, 0.5, 2.0, 6.0])
NEW_Y = np.array([3.0, 1.0, 2.5, 20.0])
LEVEL = 0.9
# A trained model a little off least squares: the interval is centred on its prediction, not on least squares'.
TRAINED = LinearModel(("x", "x^2"), (-0.25, 0.375), 1.5, degree=2)


def t_quantile_two_degrees_of_freedom(level: float) -> float:
    return level * math.sqrt(2 / (1 - level * level))


def expected_rows(with_target: bool, confidence: bool = False) -> list[dict[str, float]]:
    """Each output row computed exactly: ŷ from the trained model, ± t · sqrt(s² ([1 +] x₀ᵀ(XᵀX)⁻¹x₀)) (a new
    observation's interval, or without the 1 the mean's), and se_fit = sqrt(s² x₀ᵀ(XᵀX)⁻¹x₀)."""
    exact = exact_inference(powers(X_TRAIN[:, None], 2), Y_TRAIN)
    inverse, s2 = exact["inverse"], exact["s2"]
    t = t_quantile_two_degrees_of_freedom(LEVEL)
    rows = []
    for x, y in zip(NEW_X, NEW_Y):
        x0 = [Fraction(1), Fraction(x), Fraction(x) ** 2]
        leverage = sum(x0[i] * inverse[i][j] * x0[j] for i in range(3) for j in range(3))
        prediction = Fraction(TRAINED.intercept) + Fraction(TRAINED.coefficients[0]) * x0[1] \
            + Fraction(TRAINED.coefficients[1]) * x0[2]
        half_width = t * math.sqrt(s2 * (int(not confidence) + leverage))
        row = {"x": x, **({"y": y} if with_target else {}), "prediction": float(prediction),
               "lower": float(prediction) - half_width, "upper": float(prediction) + half_width,
               "se_fit": math.sqrt(s2 * leverage)}
        if with_target:
            row["residual"] = float(Fraction(y) - prediction)
        rows.append(row)
    return rows


def fitted():
    design = np.ascontiguousarray(powers(X_TRAIN[:, None], 2))
    return fit_least_squares(Table(design, Y_TRAIN), ("x", "x^2"), True, "train.csv")


def predicted(rows: Table, target: str | None, confidence: bool = False) -> list[dict[str, float]]:
    pieces = list(predict(rows, TRAINED, fitted(), LEVEL, target, confidence))
    names = Output(TRAINED, target, False).names()
    assert all(tuple(piece) == names for piece in pieces)
    columns = {name: np.concatenate([piece[name] for piece in pieces]) for name in names}
    return [dict(zip(names, (float(value) for value in row))) for row in zip(*columns.values())]


@pytest.mark.parametrize("confidence", [False, True])
@pytest.mark.parametrize("with_target", [True, False])
def test_both_intervals_se_fit_and_residual_match_the_exact_answer(with_target, confidence):
    rows = Table(NEW_X[:, None], NEW_Y if with_target else np.full(len(NEW_X), np.nan))
    found = predicted(rows, "y" if with_target else None, confidence)
    expected = expected_rows(with_target, confidence)
    assert [list(row) for row in found] == [list(row) for row in expected]
    for got, want in zip(found, expected):
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_the_interval_is_wider_far_from_the_training_rows_and_at_a_higher_level():
    rows = Table(NEW_X[:, None], NEW_Y)
    fit, model = fitted(), TRAINED
    narrow = [piece for piece in predict(rows, model, fit, 0.5, "y")][0]
    wide = [piece for piece in predict(rows, model, fit, 0.99, "y")][0]
    assert ((wide["upper"] - wide["lower"]) > (narrow["upper"] - narrow["lower"])).all()
    width = narrow["upper"] - narrow["lower"]
    assert width[3] > width[2]  # x = 6 lies beyond the training rows' 0…4; x = 2 at their centre


# --- The rows to predict --------------------------------------------------------------------------------


def test_rows_without_the_target_are_read(tmp_path):
    path = tmp_path / "new.csv"
    path.write_text("x,note\n1.5,a\n-2,b\n")
    rows, has_target = open_rows_to_predict(path, ("x",), "y", "error")[:2]
    assert not has_target
    assert rows.read(rows.spans()[0]).features.tolist() == [[1.5], [-2.0]]


def test_one_new_row_and_a_constant_feature_are_predicted_though_not_fitted(tmp_path):
    path = tmp_path / "new.parquet"
    pyarrow.parquet.write_table(pa.table({"y": [4.0, 5.0], "x": [3.0, 3.0]}), path)
    rows, has_target = open_rows_to_predict(path, ("x",), "y", "error")[:2]
    assert has_target
    table = rows.read(rows.spans()[0])
    assert table.features.tolist() == [[3.0], [3.0]] and table.target.tolist() == [4.0, 5.0]


NEW_ROWS = {  # file content: the end of the one line that refuses it
    b"X,y\n1,2\n": "column 'x' is missing (did you mean 'X'?): expected one of the columns X, y",
    b"x\n1\nabc\n": "column 'x' line 3 holds 'abc': expected a number",
    # With data.missing: error (open_rows_to_predict); a blank target alone is no error: the row is predicted.
    b"x,y\n1,2\n,3\n": "1 row has a missing value (empty, NA, NaN or infinite) in column 'x' (1), the first at "
                       "line 3: expected a number in every used column, or data.missing: drop to leave such rows out",
    b"x,y\n1\x002\n": "holds binary data (a NUL byte at byte 5): expected CSV text",
    b"": "is empty (0 bytes): expected a header row, then rows of numbers",
    b"x,y\n": "has no rows: expected a header row, then at least one row of numbers",
}


@pytest.mark.parametrize("content", NEW_ROWS)
def test_bad_rows_to_predict_get_the_one_line_data_source_gets(tmp_path, content):
    path = tmp_path / "new.csv"
    path.write_bytes(content)
    with pytest.raises(PipelineError) as raised:
        open_rows_to_predict(path, ("x",), "y", "error")[:2]
    assert str(raised.value) == f"{path}: {NEW_ROWS[content]}"


# --- The output ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.csv", "out.parquet"])
def test_the_output_is_the_same_bytes_whatever_the_pieces_it_is_written_in(tmp_path, name):
    values = {"x": np.array([0.1, -2.0, 1e20, 5e-324, 3.0]), "prediction": np.array([1.0, 2.5, -0.0, 7.0, 1 / 3])}
    with table_writer(tmp_path / f"whole-{name}", ("x", "prediction")) as writer:
        writer.write(values)
    with table_writer(tmp_path / name, ("x", "prediction")) as writer:
        for start, stop in [(0, 2), (2, 2), (2, 5)]:
            writer.write({key: column[start:stop] for key, column in values.items()})
    assert (tmp_path / name).read_bytes() == (tmp_path / f"whole-{name}").read_bytes()
    if name.endswith(".csv"):  # every double spelt so that it reads back the same
        lines = (tmp_path / name).read_text().splitlines()
        assert lines[0] == "x,prediction"
        assert [[float(cell) for cell in line.split(",")] for line in lines[1:]] == \
            [list(row) for row in zip(*values.values())]


def test_an_output_that_fails_midway_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError), table_writer(tmp_path / "out.csv", ("x",)) as writer:
        writer.write({"x": np.array([1.0])})
        raise RuntimeError("a bad row group further on")
    assert list(tmp_path.iterdir()) == []


# --- Blank targets and missing features in new rows -------------------------------------------------------


@pytest.mark.parametrize("name", ["new.csv", "new.parquet"])
def test_a_blank_target_is_predicted_with_an_empty_residual_and_drop_leaves_out_a_missing_feature(tmp_path, name):
    path = tmp_path / name
    x, y = [1.0, None, 3.0, 4.0], [2.0, 5.0, None, 9.0]
    if name.endswith(".csv"):
        path.write_text("x,y\n1,2\n,5\n3,\n4,9\n")
    else:
        pyarrow.parquet.write_table(pa.table({"x": x, "y": y}), path, row_group_size=3)
    with pytest.raises(PipelineError, match="in column 'x' \\(1\\)"):
        open_rows_to_predict(path, ("x",), "y", "error")
    rows, has_target, rows_dropped = open_rows_to_predict(path, ("x",), "y", "drop")
    assert has_target and rows_dropped == 1
    (piece,) = predict(rows, LinearModel(("x",), (2.0,), 1.0), fitted_line(), LEVEL, "y")
    assert piece["x"].tolist() == [1.0, 3.0, 4.0] and piece["prediction"].tolist() == [3.0, 7.0, 9.0]
    assert piece["residual"][[0, 2]].tolist() == [-1.0, 0.0] and np.isnan(piece["residual"][1])


def fitted_line():
    return fit_least_squares(Table(X_TRAIN[:, None], Y_TRAIN), ("x",), True, "train.csv")


# --- The fitted rows: every row of data.source, with its split ------------------------------------------


def test_every_row_of_data_source_has_its_split_the_one_load_split_makes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(5)
    x = rng.normal(size=40)
    y = 2 * x + rng.normal(size=40)
    x[[3, 17]] = np.nan  # dropped
    y[[5, 17, 30]] = np.nan  # 5 and 30 unlabeled; 17 dropped (a feature is missing too)
    cells = lambda values: ["" if np.isnan(value) else repr(float(value)) for value in values]
    (tmp_path / "t.csv").write_text("x,y\n" + "".join(f"{a},{b}\n" for a, b in zip(cells(x), cells(y))))
    data = DataParams(source="t.csv", features=["x"], target="y", missing="drop", degree=1, test_fraction=0.25, max_levels=50,
                      split_seed=2)
    split = load_split(data, fit_intercept=True)
    assert (split.rows_dropped, split.rows_unlabeled) == (2, 2)
    fit = fit_least_squares(split.train, ("x",), True, "t.csv")
    rows, n_labeled = open_every_row(Path("t.csv"), ["x"], "y", "drop")
    pieces = list(predict_fitted(rows, SplitOf(n_labeled, 0.25, 2), fit.model, fit, LEVEL, "y"))
    found = {name: np.concatenate([piece[name] for piece in pieces]) for name in pieces[0]}
    assert set(found) == set(Output(fit.model, "y", True).names())
    status = found["split"]
    assert [SPLITS[code] for code in status[[3, 5, 17, 30]]] == ["dropped", "unlabeled", "dropped", "unlabeled"]
    assert found["y"][status == TRAIN].tolist() == gather(split.train).target.tolist()
    assert found["y"][status == TEST].tolist() == gather(split.test).target.tolist()
    predicted_rows = status <= UNLABELED
    assert np.isfinite(found["prediction"][predicted_rows]).all()
    assert np.isnan(found["prediction"][~predicted_rows]).all() and np.isnan(found["se_fit"][~predicted_rows]).all()
    assert np.isnan(found["residual"][status == UNLABELED]).all()
    assert np.isnan(found["x"][3]) and found["y"][3] == y[3]  # a dropped row's read values are kept


# --- Influence: leverage, studentized residual, Cook's distance against exact answers ----------------------


def exact_influence(x: np.ndarray, y: np.ndarray) -> list[tuple[Fraction, float, Fraction]]:
    """Per row of a fit of y on (1, x, x²), exactly: h = x₀ᵀ(XᵀX)⁻¹x₀, rstudent = e / sqrt(s₍ᵢ₎² (1 − h)) with
    s₍ᵢ₎² = (RSS − e²/(1 − h)) / (n − p − 1), and Cook's D = e² h / (p s² (1 − h)²)."""
    exact = exact_inference(powers(x[:, None], 2), y)
    inverse, estimates, rss = exact["inverse"], exact["estimates"], exact["rss"]
    n, p = len(x), 3
    answers = []
    for xi, yi in zip(x, y):
        x0 = [Fraction(1), Fraction(xi), Fraction(xi) ** 2]
        h = sum(x0[i] * inverse[i][j] * x0[j] for i in range(p) for j in range(p))
        e = Fraction(yi) - sum(b * v for b, v in zip(estimates, x0))
        s2_without = (rss - e * e / (1 - h)) / (n - p - 1)
        rstudent = float(e) / math.sqrt(s2_without * (1 - h)) if e else 0.0
        answers.append((h, rstudent, e * e * h / (p * (rss / (n - p)) * (1 - h) ** 2)))
    return answers


def test_leverage_studentized_residual_and_cooks_distance_match_the_exact_answer():
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 9.0])
    y = np.array([1.0, 2.5, 2.0, 4.5, 7.0, 6.0, 30.0])
    fit = fit_least_squares(Table(np.ascontiguousarray(powers(x[:, None], 2)), y), ("x", "x^2"), True, "t.csv")
    found = influence(fit, powers(x[:, None], 2), y)
    for k, (h, rstudent, cooks) in enumerate(exact_influence(x, y)):
        assert found.leverage[k] == pytest.approx(float(h), rel=1e-13)
        assert found.studentized_residual[k] == pytest.approx(rstudent, rel=1e-11)
        assert found.cooks_distance[k] == pytest.approx(float(cooks), rel=1e-11)
    largest = LargestCooks(len(x))
    largest.add(found, np.arange(len(x)))
    exact_cooks = [float(cooks) for _, _, cooks in exact_influence(x, y)]
    above = [k for k in np.argsort(exact_cooks)[::-1] if exact_cooks[k] > 4 / len(x)]
    line = largest.line()
    assert line.startswith(f"Cook's distance above 4/n = {4 / 7:.3g} (n = 7 training rows): {len(above)} row")
    assert line.endswith(", ".join(f"{k} ({exact_cooks[k]:.3g})" for k in above[:5]))
    assert largest.warning() is None


def test_a_row_of_leverage_one_has_no_studentized_residual_or_cooks_distance_and_one_warning():
    # x² is 0 on every row but the last: that row alone fixes the coefficient of x², so it is fitted exactly.
    x = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 1.0]])
    y = np.array([1.0, 2.5, 2.0, 4.5, 7.0])
    fit = fit_least_squares(Table(x, y), ("x", "z"), True, "t.csv")
    found = influence(fit, x, y)
    assert found.leverage[4] == pytest.approx(1.0, abs=1e-12)
    assert np.isnan(found.studentized_residual[4]) and np.isnan(found.cooks_distance[4])
    assert np.isfinite(found.studentized_residual[:4]).all() and np.isfinite(found.cooks_distance[:4]).all()
    largest = LargestCooks(5)
    largest.add(found, np.arange(10, 15))
    assert largest.warning() == ("warning: 1 training row has leverage 1 (to 1e-12), the first at row index 14: "
                                 "fitted exactly whatever its target, so its studentized_residual and "
                                 "cooks_distance are empty")


@pytest.mark.parametrize("name", ["out.csv", "out.parquet"])
def test_the_split_is_written_as_its_labels_and_a_value_not_computed_as_an_empty_cell(tmp_path, name):
    values = {"x": np.array([1.0, np.nan, 3.0]), "split": np.array([TRAIN, 3, UNLABELED]),
              "prediction": np.array([2.0, np.nan, 4.0])}
    with table_writer(tmp_path / f"whole-{name}", tuple(values), {"split": SPLITS}) as writer:
        writer.write(values)
    with table_writer(tmp_path / name, tuple(values), {"split": SPLITS}) as writer:
        writer.write({key: column[:1] for key, column in values.items()})
        writer.write({key: column[1:] for key, column in values.items()})
    assert (tmp_path / name).read_bytes() == (tmp_path / f"whole-{name}").read_bytes()
    if name.endswith(".csv"):
        assert (tmp_path / name).read_text().splitlines() == \
            ["x,split,prediction", '1,"train",2', ',"dropped",', '3,"unlabeled",4']
    else:
        table = pyarrow.parquet.read_table(tmp_path / name)
        assert table.column("split").to_pylist() == ["train", "dropped", "unlabeled"]
        assert table.column("prediction").to_pylist() == [2.0, None, 4.0]


def test_params_yaml_predicts_the_fitted_rows_with_prediction_intervals_and_no_influence_by_default():
    predict_params = load_params(PredictParams, ROOT / "params.yaml")
    assert (predict_params.rows, predict_params.interval, predict_params.influence) == ("fitted", "prediction", False)


# --- The fitted rows written as the check reads them --------------------------------------------------------


class WritesRecorded(Streamed):
    """Streamed, recording how many rows the check had read at each row group it handed over."""

    def __init__(self, *arguments) -> None:
        super().__init__(*arguments)
        self.written_at: list[int] = []

    def __call__(self, span: tuple[int, int], rows: Table) -> None:
        super().__call__(span, rows)
        self.written_at.append(self.fitted.row_before)


def a_fitted_file(tmp_path: Path, n_rows: int, group_rows: int, unlabeled: tuple[int, ...] = (),
                  dropped: tuple[int, ...] = ()):
    """data.source of two features in row groups of `group_rows` (t.parquet, in tmp_path, the working folder), and
    the least-squares fit to its training rows."""
    rng = np.random.default_rng(9)
    features = rng.normal(size=(n_rows, 2))
    target = features @ [2.0, -1.0] + 0.5 + rng.normal(size=n_rows)
    target[list(unlabeled)] = np.nan
    features[list(dropped), 0] = np.nan
    pyarrow.parquet.write_table(pa.table({"x1": features[:, 0], "x2": features[:, 1], "y": target}),
                                tmp_path / "t.parquet", row_group_size=group_rows)
    data = DataParams(source="t.parquet", features=["x1", "x2"], target="y", missing="drop", degree=1,
                      test_fraction=0.25, split_seed=3, max_levels=50)
    split = load_split(data, fit_intercept=True)
    return fit_least_squares(split.train, ("x1", "x2"), True, "t.parquet")


def written_after_the_read(tmp_path: Path, fit, name: str) -> bytes:
    """predict's file of every row of t.parquet written once the read is over, as without a plan."""
    rows, n_labeled = open_every_row(tmp_path / "t.parquet", ["x1", "x2"], "y", "drop")
    output = Output(fit.model, "y", True)
    with table_writer(tmp_path / name, output.names(), {"split": SPLITS}) as writer:
        for columns in predict_fitted(rows, SplitOf(n_labeled, 0.25, 3), fit.model, fit, LEVEL, "y"):
            writer.write(columns)
    return (tmp_path / name).read_bytes()


def test_the_fitted_rows_are_written_as_each_row_group_is_read_into_the_bytes_written_after_the_read(tmp_path,
                                                                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    # Groups of 70,000 rows: the chunks (chunk_rows: 262,144) straddle them, as chunks() cuts them after the read.
    n_rows = 300_000
    fit = a_fitted_file(tmp_path, n_rows, 70_000)
    output = Output(fit.model, "y", True)
    with table_writer(tmp_path / "streamed.parquet", output.names(), {"split": SPLITS}) as writer:
        streamed = WritesRecorded(writer, n_rows, FittedRows(SplitOf(n_rows, 0.25, 3), fit.model, fit, LEVEL, "y"))
        rows, n_labeled = open_every_row(tmp_path / "t.parquet", ["x1", "x2"], "y", "drop", seen=streamed)
        # The first chunk went to the writer with the fourth group, before the fifth and last was read.
        assert streamed.written_at == [0, 0, 0, 262_144, 262_144]
        assert streamed.kept(n_labeled)
    assert streamed.counts.tolist() == [225_000, 75_000, 0, 0]
    assert (tmp_path / "streamed.parquet").read_bytes() == written_after_the_read(tmp_path, fit, "after.parquet")


@pytest.mark.parametrize("left_out", [{"unlabeled": (5,)}, {"dropped": (299_999,)}])
def test_rows_the_plan_did_not_count_on_write_the_file_again_with_the_same_bytes(tmp_path, monkeypatch, left_out):
    monkeypatch.chdir(tmp_path)
    n_rows = 300_000
    fit = a_fitted_file(tmp_path, n_rows, 70_000, **left_out)
    with table_writer(tmp_path / "streamed.parquet", Output(fit.model, "y", True).names(),
                      {"split": SPLITS}) as writer:
        streamed = Streamed(writer, n_rows, FittedRows(SplitOf(n_rows, 0.25, 3), fit.model, fit, LEVEL, "y"))
        _, n_labeled = open_every_row(tmp_path / "t.parquet", ["x1", "x2"], "y", "drop", seen=streamed)
        assert not streamed.kept(n_labeled)
    params = load_params(PredictParams, ROOT / "params.yaml").model_copy(update={"output": "predictions.parquet",
                                                                                  "level": LEVEL})
    write_fitted(Path("t.parquet"), "drop", (0.25, 3), fit.model, "y", fit, params)
    assert (tmp_path / "predictions.parquet").read_bytes() == written_after_the_read(tmp_path, fit, "after.parquet")


@pytest.mark.parametrize("late, weight, message", [
    (1e10, 1e300, r"^data.source row 250000 \(from 0\): prediction inf"),  # predict's own check
    (1e300, 1.0, r"^t.parquet: column 'x2' has 1 value beyond ±1e\+15 \(first at row index 250000"),  # the read's
])
def test_a_late_row_that_fails_is_the_one_line_it_is_without_the_plan_and_no_warning(tmp_path, monkeypatch,
                                                                                     late, weight, message):
    monkeypatch.chdir(tmp_path)
    fit = a_fitted_file(tmp_path, 300_000, 70_000)
    table = pyarrow.parquet.read_table(tmp_path / "t.parquet").to_pydict()
    table["x2"][250_000] = late  # in the fifth group: its prediction overflows after four groups were written
    pyarrow.parquet.write_table(pa.table(table), tmp_path / "t.parquet", row_group_size=70_000)
    huge = LinearModel(("x1", "x2"), (1.0, weight), 0.0)
    params = load_params(PredictParams, ROOT / "params.yaml").model_copy(update={"output": "predictions.parquet"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(PipelineError, match=message):
            write_fitted(Path("t.parquet"), "drop", (0.25, 3), huge, "y", fit, params)
    # No warning either, as without the plan: the streamed rows' inf − inf ("invalid value encountered in
    # subtract", where the read refuses the row anyway) fails the plan instead of warning.
    assert [str(warning.message) for warning in caught] == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["t.parquet"]
