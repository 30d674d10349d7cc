"""Terms: data.features as a formula's right-hand side, coded and named as patsy and statsmodels code and name it.

The expected names and columns are written out by hand from patsy's rule (a factor is reduced-rank only where
the same term without it is already in the model), and the fits checked against exact rational least squares.
"""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from exact import exact_least_squares
from pipeline.dataset import gather
from pipeline.split import load_split
from pipeline.errors import PipelineError
from pipeline.factoring import fit_least_squares
from pipeline.linear import LinearModel, save_weights
from pipeline.params import DataParams
from pipeline.schema import resolve_features
from pipeline.terms import BOOL, NUMBER, TEXT, design, parse

KINDS = {"area": NUMBER, "b": NUMBER, "region": TEXT, "g": TEXT, "year": NUMBER, "flag": BOOL, "y": NUMBER}
LEVELS = {"region": ("B", "a", "north"), "g": ("x", "y"), "year": (1990.0, 2000.0), "flag": (False, True)}


def names(entries: list[str], fit_intercept: bool = True, degree: int = 1) -> list[str]:
    return list(design(parse(entries, KINDS, "y", "t"), KINDS, LEVELS, fit_intercept, degree).names)


@pytest.mark.parametrize("entries, fit_intercept, expected", [
    (["area", "region"], True, ["region[T.a]", "region[T.north]", "area"]),
    # levels in code-point order: B before a
    (["region"], False, ["region[B]", "region[a]", "region[north]"]),
    (["region", "g"], False, ["region[B]", "region[a]", "region[north]", "g[T.y]"]),
    (["area:region"], True, ["area:region[B]", "area:region[a]", "area:region[north]"]),
    (["area*region"], True, ["region[T.a]", "region[T.north]", "area", "area:region[T.a]", "area:region[T.north]"]),
    (["C(year)", "log(area)", "sqrt(b)"], True, ["C(year)[T.2000]", "log(area)", "sqrt(b)"]),
    (["flag"], True, ["flag[T.True]"]),
    # factor × factor: the first factor varies fastest
    (["region:g"], True, ["g[T.y]", "region[T.a]:g[x]", "region[T.north]:g[x]", "region[T.a]:g[y]",
                          "region[T.north]:g[y]"]),
    (["region*g"], True, ["region[T.a]", "region[T.north]", "g[T.y]", "region[T.a]:g[T.y]",
                          "region[T.north]:g[T.y]"]),
    (["area", "b"], True, ["area", "b"]),
    (["area", "region"], True, ["region[T.a]", "region[T.north]", "area"]),
    (["area", "region"], True, ["region[T.a]", "region[T.north]", "area"]),
    (["region", "area"], True, ["region[T.a]", "region[T.north]", "area"]),
    (["region", "area"], False, ["region[B]", "region[a]", "region[north]", "area"]),
    (["region", "area"], True, ["region[T.a]", "region[T.north]", "area"]),
    (["area", "region"], True, ["region[T.a]", "region[T.north]", "area"]),
])
def test_names_and_coding_follow_patsy(entries, fit_intercept, expected):
    assert names(entries, fit_intercept) == expected


def test_degree_raises_bare_numeric_columns_only():
    assert names(["area", "region", "log(b)"], degree=2) == ["region[T.a]", "region[T.north]", "area", "log(b)",
                                                             "area^2"]


def test_a_term_once_however_written():
    assert names(["region:g", "g:region"]) == names(["region:g"])


def test_columns_are_products_of_values_and_indicators():
    built = design(parse(["area:region", "C(year)"], KINDS, "y", "t"), KINDS, LEVELS, True)
    # raw: area, region (codes), year (values)
    raw = np.array([[2.0, 0, 1990], [3.0, 2, 2000], [5.0, 1, 2000]])
    columns, known = built.encode(raw)
    assert built.names == ("C(year)[T.2000]", "area:region[B]", "area:region[a]", "area:region[north]")
    assert columns.tolist() == [[0, 2, 0, 0], [1, 0, 0, 3], [1, 0, 5, 0]]
    assert known.all()
    columns, known = built.encode(np.array([[2.0, -1, 1990], [2.0, 0, 1980]]))
    assert known.tolist() == [False, False] and np.isnan(columns).all()


def write(tmp_path: Path, text: str) -> None:
    (tmp_path / "t.csv").write_text(text)


def data_params(features, **values) -> DataParams:
    return DataParams.model_validate({"source": "t.csv", "features": features, "target": "y", "missing": "error",
                                      "degree": 1, "test_fraction": 0.0, "split_seed": 0, "max_levels": 50} | values)


# Two regions (one with a comma, one with a quote), a year code; exactly solvable in fractions.
TABLE = ('area,region,year,y\n1,"Smith, John",1990,3\n2,"Smith, John",2000,5.5\n3,"U.S. ""West""",1990,4\n'
         '4,"U.S. ""West""",2000,8\n5,"Smith, John",1990,7.25\n6,"U.S. ""West""",2000,9\n7,"Smith, John",2000,12\n')


def test_a_text_column_and_a_code_fit_exact_least_squares(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, TABLE)
    split = load_split(data_params(["area", "region", "C(year)"]), fit_intercept=True)
    assert split.columns == ('region[T.U.S. "West"]', "C(year)[T.2000]", "area")
    fit = fit_least_squares(split.train, split.columns, True, Path("t.csv"))
    table = gather(split.train)
    region = [0, 0, 1, 1, 0, 1, 0]
    year = [0, 1, 0, 1, 0, 1, 1]
    area = [1, 2, 3, 4, 5, 6, 7]
    exact = exact_least_squares(np.column_stack([region, year, area]).astype(float), table.target)
    assert table.features.tolist() == np.column_stack([region, year, area]).astype(float).tolist()
    found = [fit.model.intercept, *fit.model.coefficients]
    assert max(abs(a - b) / abs(b) for a, b in zip(found, exact)) < 1e-13


def test_levels_in_the_weights_encode_new_rows_the_same_way(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, TABLE)
    split = load_split(data_params(["area:region", "C(year)"]), fit_intercept=False)
    fit = fit_least_squares(split.train, split.columns, False, Path("t.csv"))
    save_weights(tmp_path / "m.safetensors", fit.model, "float64", False, "y", 1, split.design)
    model = LinearModel.load(tmp_path / "m.safetensors")
    assert model.features == split.columns
    rows = pa.table({"area": [2.0], "region": ['U.S. "West"'], "year": [2000]})
    expected = dict(zip(model.features, model.coefficients))
    assert model.predict(rows)[0] == pytest.approx(2 * expected['area:region[U.S. "West"]'] +
                                                   expected["C(year)[2000]"], rel=1e-15)
    with pytest.raises(PipelineError, match=r"level 'Mars', which the training rows never had: expected one of "
                                            r"'Smith, John', 'U.S. \"West\"'"):
        model.predict(pa.table({"area": [2.0], "region": ["Mars"], "year": [2000]}))
    with pytest.raises(PipelineError, match=r"C\(year\) has level '1980'"):
        model.predict(pa.table({"area": [2.0], "region": ["Smith, John"], "year": [1980]}))


def test_held_out_rows_of_an_unseen_level_are_left_out_and_counted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = ["x,region,y"] + [f"{i},{'a' if i % 2 else 'b'},{i * 2 + i % 2}" for i in range(40)] + ["41,zzz,1"]
    write(tmp_path, "\n".join(lines) + "\n")
    for seed in range(40):  # a split that holds out the one row of level zzz
        split = load_split(data_params(["x", "region"], test_fraction=0.2, split_seed=seed), True)
        if split.rows_unseen:
            break
    assert split.rows_unseen == 1 and split.design.levels["region"] == ("a", "b")
    assert len(gather(split.test)) == len(split.test) == 8 - 1  # 41 rows: 8 held out


@pytest.mark.parametrize("text, features, message", [
    ("x,region,y\n1,a,1\n2,a,2\n3,a,4\n", ["x", "region"],
     r"factor 'region' has a single level among the training rows \('a'\): expected at least two"),
    ("x,region,y\n1,a,1\n2,b,2\n3,a,4\n", ["x", "regoin"], r"column 'regoin' is missing \(did you mean 'region'\?\)"),
    ("x,region,y\n1,a,1\n0,b,2\n3,a,4\n", ["log(x)", "region"],
     r"log\(x\) of column 'x' at row index 1, which is 0: expected values > 0"),
    ("x,region,y\n1,a,1\n-2,b,2\n3,a,4\n", ["sqrt(x)"], r"sqrt\(x\) of column 'x' at row index 1, which is -2"),
    ("x,r,g,y\n1,a,u,1\n2,b,u,2\n3,a,v,4\n4,a,v,5\n5,b,u,3\n", ["x", "r:g"],
     r"column 'r\[T.b\]:g\[v\]' of an interaction has no training row with r = 'b', g = 'v'"),
])
def test_each_mistake_is_one_line_naming_the_column_and_the_fix(tmp_path, monkeypatch, text, features, message):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, text)
    with pytest.raises(PipelineError, match=message) as raised:
        load_split(data_params(features), fit_intercept=True)
    assert "\n" not in str(raised.value) and str(raised.value).startswith("t.csv: ")


def test_numbers_name_columns():
    assert data_params([1960, 1980]).features == ["1960", "1980"]


def test_all_takes_text_and_true_false_columns_but_an_identifier(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [f"{i},{'ab'[i % 2]},{'true' if i % 3 else 'false'},id{i},{i % 5}" for i in range(12)]
    write(tmp_path, "x,region,sold,name,y\n" + "\n".join(rows) + "\n")
    resolved = resolve_features(data_params("all", max_levels=10))
    assert resolved.data.features == ["x", "region", "sold"]
    assert "left out 'name', a text column of 12 levels (more than data.max_levels = 10" in resolved.note
    split = load_split(resolved.data, fit_intercept=True)
    assert split.columns == ("region[T.b]", "sold[T.True]", "x")


def test_a_loaded_model_of_one_transformed_column_takes_the_raw_column(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "x,y\n1,0\n2,1\n4,2\n8,3.5\n")
    split = load_split(data_params(["log(x)"]), fit_intercept=True)
    fit = fit_least_squares(split.train, split.columns, True, Path("t.csv"))
    save_weights(tmp_path / "m.safetensors", fit.model, "float64", True, "y", 1, split.design)
    model = LinearModel.load(tmp_path / "m.safetensors")
    assert model.predict(np.array([[np.e]]))[0] == pytest.approx(model.coefficients[0] + model.intercept, rel=1e-15)


def test_level_names_with_commas_and_quotes_survive_the_history_header(tmp_path):
    import csv

    from pipeline.files import read_history, write_history
    names = ['region[T.Smith, John]', 'region[T.U.S. "West"]', "area"]
    write_history(tmp_path / "h.csv", {"epoch": np.arange(2), **{name: np.array([1.5, 2.5]) for name in names}})
    text = (tmp_path / "h.csv").read_text()
    assert text.splitlines()[0] == 'epoch,"region[T.Smith, John]","region[T.U.S. ""West""]",area'
    assert next(csv.reader(text.splitlines())) == ["epoch", *names]
    assert read_history(tmp_path / "h.csv", names)[names[1]].tolist() == [1.5, 2.5]


@pytest.mark.parametrize("entries, expected", [
    (["area", "region"], ("area", "region")), (["area*region"], ("area", "region")), (["area:region"], None),
    (["log(area)", "region"], None), (["area", "b"], None), (["area", "region", "g"], None),
])
def test_fit_png_draws_a_line_per_level_of_one_numeric_column_and_one_factor(entries, expected):
    from pipeline.visualize import lines_by_level
    assert lines_by_level(design(parse(entries, KINDS, "y", "t"), KINDS, LEVELS, True)) == expected
