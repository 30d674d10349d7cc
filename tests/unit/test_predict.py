"""predict's core on in-memory rows: the trained model's prediction, the prediction interval from the
least-squares fit (against exact rational answers and a closed form of Student's t), and the rows to
predict read with data.source's checks, the target optional."""

import math
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.parquet
import pytest

from exact import exact_inference
from pipeline.dataset import open_new_rows
from pipeline.errors import PipelineError
from pipeline.files import table_writer
from pipeline.linear import LinearModel
from pipeline.least_squares import fit_least_squares
from pipeline.predict import output_names, predict
from pipeline.rows import Table, powers

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


def expected_rows(with_target: bool) -> list[dict[str, float]]:
    """Each output row computed exactly: ŷ from the trained model, ± t · sqrt(s² (1 + x₀ᵀ(XᵀX)⁻¹x₀))."""
    exact = exact_inference(powers(X_TRAIN[:, None], 2), Y_TRAIN)
    inverse, s2 = exact["inverse"], exact["s2"]
    t = t_quantile_two_degrees_of_freedom(LEVEL)
    rows = []
    for x, y in zip(NEW_X, NEW_Y):
        x0 = [Fraction(1), Fraction(x), Fraction(x) ** 2]
        leverage = sum(x0[i] * inverse[i][j] * x0[j] for i in range(3) for j in range(3))
        prediction = Fraction(TRAINED.intercept) + Fraction(TRAINED.coefficients[0]) * x0[1] \
            + Fraction(TRAINED.coefficients[1]) * x0[2]
        half_width = t * math.sqrt(s2 * (1 + leverage))
        row = {"x": x, **({"y": y} if with_target else {}), "prediction": float(prediction),
               "lower": float(prediction) - half_width, "upper": float(prediction) + half_width}
        if with_target:
            row["residual"] = float(Fraction(y) - prediction)
        rows.append(row)
    return rows


def fitted():
    design = np.ascontiguousarray(powers(X_TRAIN[:, None], 2))
    return fit_least_squares(Table(design, Y_TRAIN), ("x", "x^2"), True, "train.csv")


def predicted(rows: Table, target: str | None) -> list[dict[str, float]]:
    pieces = list(predict(rows, TRAINED, fitted(), LEVEL, target))
    names = output_names(TRAINED, target)
    assert all(tuple(piece) == names for piece in pieces)
    columns = {name: np.concatenate([piece[name] for piece in pieces]) for name in names}
    return [dict(zip(names, (float(value) for value in row))) for row in zip(*columns.values())]


@pytest.mark.parametrize("with_target", [True, False])
def test_prediction_interval_and_residual_match_the_exact_answer(with_target):
    rows = Table(NEW_X[:, None], NEW_Y if with_target else np.full(len(NEW_X), np.nan))
    found = predicted(rows, "y" if with_target else None)
    expected = expected_rows(with_target)
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
    rows, has_target = open_new_rows(path, ("x",), "y")
    assert not has_target
    assert rows.read(rows.spans()[0]).features.tolist() == [[1.5], [-2.0]]


def test_one_new_row_and_a_constant_feature_are_predicted_though_not_fitted(tmp_path):
    path = tmp_path / "new.parquet"
    pyarrow.parquet.write_table(pa.table({"y": [4.0, 5.0], "x": [3.0, 3.0]}), path)
    rows, has_target = open_new_rows(path, ("x",), "y")
    assert has_target
    table = rows.read(rows.spans()[0])
    assert table.features.tolist() == [[3.0], [3.0]] and table.target.tolist() == [4.0, 5.0]


NEW_ROWS = {  # file content: the end of the one line that refuses it
    b"X,y\n1,2\n": "column 'x' is missing (did you mean 'X'?): expected one of the columns X, y",
    b"x\n1\nabc\n": "column 'x' line 3 holds 'abc': expected a number",
    # Rows to predict are never dropped, whatever data.missing says: each has its row of predictions.
    b"x,y\n1,2\n,3\n": "1 row has a missing value (empty, NA, NaN or infinite) in column 'x' (1), the first at "
                       "line 3: expected a number in every used column",
    b"x,y\n1,\n": "1 row has a missing value (empty, NA, NaN or infinite) in column 'y' (1), the first at line 2: "
                  "expected a number in every used column",
    b"x,y\n1\x002\n": "holds binary data (a NUL byte at byte 5): expected CSV text",
    b"": "is empty (0 bytes): expected a header row, then rows of numbers",
    b"x,y\n": "has no rows: expected a header row, then at least one row of numbers",
}


@pytest.mark.parametrize("content", NEW_ROWS)
def test_bad_rows_to_predict_get_the_one_line_data_source_gets(tmp_path, content):
    path = tmp_path / "new.csv"
    path.write_bytes(content)
    with pytest.raises(PipelineError) as raised:
        open_new_rows(path, ("x",), "y")
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
