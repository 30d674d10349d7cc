"""Reading a user's table: every problem is one line naming the file, what was found and what is expected."""

import os
import re
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet
import pytest

from pipeline.cell_checks import LARGEST_VALUE
from pipeline.dataset import (
    Table, gather, open_every_row, open_labeled_rows, open_rows, open_rows_to_predict, read_table, rows_in_footer,
)
from pipeline.holdout import held_out
from pipeline.split import load_split, require_enough_training_rows
from pipeline.params import DataParams
from pipeline.errors import PipelineError


def write_csv(tmp_path: Path, text: str | bytes, name: str = "table.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def write_parquet(tmp_path: Path, columns: dict[str, pa.Array], name: str = "table.parquet") -> Path:
    path = tmp_path / name
    pyarrow.parquet.write_table(pa.table(columns), path)
    return path


def error_of(path: Path, features: list[str] | None = None, target: str = "y") -> str:
    """The message read_table raises; it must be one line that starts with the path."""
    with pytest.raises(PipelineError) as raised:
        read_table(path, ["x"] if features is None else features, target)
    message = str(raised.value)
    assert "\n" not in message and "\r" not in message
    assert message.startswith(f"{path}: ")
    assert len(message) - len(str(path)) <= 300
    return message[len(f"{path}: ") :]


# --- What a good table gives --------------------------------------------------------------------------


def test_a_csv_gives_float64_columns_in_the_requested_order_exactly_as_written(tmp_path):
    rows = ["0.1,-3,7", "1e-300,123456789012345,2.5", "-0.0,9.999999999999999e14,.5", " 1.5E3 ,+4,\t8"]
    path = write_csv(tmp_path, "a,b,y\n" + "\n".join(rows) + "\n")
    table = read_table(path, ["b", "a"], "y")
    cells = [[float(cell) for cell in row.split(",")] for row in rows]
    assert isinstance(table, Table)
    assert table.features.dtype == np.float64 and table.target.dtype == np.float64
    assert table.features.shape == (4, 2) and table.features.flags.c_contiguous
    assert table.features.tolist() == [[row[1], row[0]] for row in cells]
    assert table.target.tolist() == [row[2] for row in cells]


def test_a_bom_crlf_line_ends_quotes_and_blank_lines_are_read(tmp_path):
    path = write_csv(tmp_path, b'\xef\xbb\xbf"x",y\r\n\r\n"1.5",2\r\n3,"4"\r\n\r\n')
    table = read_table(path, ["x"], "y")
    assert table.features.tolist() == [[1.5], [3.0]]
    assert table.target.tolist() == [2.0, 4.0]


def test_columns_not_requested_may_hold_anything(tmp_path):
    path = write_csv(tmp_path, 'note,x,y,note,when\n"hello, ""world""",1,2,"two\nlines",2024-01-01\nn/a,3,4,,\n')
    assert read_table(path, ["x"], "y").target.tolist() == [2.0, 4.0]
    path = write_parquet(
        tmp_path, {"x": [1.0, 2.0], "y": pa.array([3, 4]), "note": pa.array(["a", None]), "flag": [True, False]}
    )
    assert read_table(path, ["x"], "y").target.tolist() == [3.0, 4.0]


@pytest.mark.parametrize(
    ("kind", "values"),
    [
        (pa.int32(), [-(2**31), 2**31 - 1]),
        (pa.int64(), [-(10**15), 10**15]),
        (pa.uint8(), [0, 255]),
        (pa.float32(), [0.1, -3.5]),
        (pa.float16(), [0.1, 65504.0]),
        (pa.float64(), [0.1, -1e15]),
    ],
)
def test_parquet_integer_and_floating_columns_are_converted_to_float64_exactly(tmp_path, kind, values):
    column = pa.array(values, kind)
    path = write_parquet(tmp_path, {"x": column, "y": pa.array([1.0, 2.0])})
    table = read_table(path, ["x"], "y")
    assert table.features.dtype == np.float64
    assert table.features[:, 0].tolist() == column.to_numpy().astype(np.float64).tolist()


@pytest.mark.parametrize("n_rows, group_rows", [(7, 4), (5000, 3000)])
@pytest.mark.parametrize("has_target", [True, False])
def test_a_wide_parquet_file_is_read_a_few_columns_at_a_time_into_the_requested_order(tmp_path, has_target, n_rows,
                                                                                       group_rows):
    # 150 features (more than one read's worth of columns), integers and floats, in two row groups, requested
    # in an order other than the file's. Each read of 64 columns is copied 2,048 rows at a time
    # (files.row_blocks): with 5,000 rows, blocks end inside a group and groups inside a block's span.
    generator = np.random.default_rng(0)
    columns = {f"c{k}": (generator.integers(-50, 50, n_rows) if k % 3 == 0 else generator.standard_normal(n_rows))
               for k in range(150)} | {"y": generator.standard_normal(n_rows)}
    path = tmp_path / "wide.parquet"
    pyarrow.parquet.write_table(pa.table(columns), path, row_group_size=group_rows)
    names = [f"c{k}" for k in reversed(range(150))]
    if has_target:
        rows, _ = open_rows(path, names, "y")
    else:
        rows, _ = open_rows_to_predict(path, names, "y_not_in_the_file", "error")[:2]
    table = gather(rows)
    assert np.array_equal(table.features, np.column_stack([columns[name].astype(np.float64) for name in names]))
    if has_target:
        assert np.array_equal(table.target, columns["y"])


def test_a_csv_of_several_blocks_is_read_exactly(tmp_path):
    # pyarrow parses a CSV a block at a time: each column comes in several chunks, which the rows copied at a
    # time (files.row_blocks) straddle.
    generator = np.random.default_rng(2)
    values = np.column_stack([generator.integers(-10**6, 10**6, 60_000), generator.standard_normal((60_000, 2))])
    path = write_csv(tmp_path, "a,b,y\n" + "".join(f"{int(a)},{float(b)!r},{float(y)!r}\n" for a, b, y in values))
    assert pyarrow.csv.read_csv(path).column("a").num_chunks > 1
    table = read_table(path, ["b", "a"], "y")
    assert np.array_equal(table.features, values[:, [1, 0]]) and np.array_equal(table.target, values[:, 2])


def test_parquet_decimals_are_read_as_the_nearest_float64(tmp_path):
    decimals = pa.array([Decimal("0.10"), Decimal("2.50")], pa.decimal128(5, 2))
    path = write_parquet(tmp_path, {"x": decimals, "y": [1.0, 2.0]})
    assert read_table(path, ["x"], "y").features.tolist() == [[0.1], [2.5]]


@pytest.mark.parametrize("name", ["table.pq", "TABLE.PARQUET"])
def test_pq_and_upper_case_extensions_are_parquet(tmp_path, name):
    path = write_parquet(tmp_path, {"x": [1.0, 2.0], "y": [3.0, 4.0]}, name=name)
    assert read_table(path, ["x"], "y").target.tolist() == [3.0, 4.0]


def test_a_constant_target_is_read(tmp_path):
    path = write_csv(tmp_path, "x,y\n1,5\n2,5\n")
    assert read_table(path, ["x"], "y").target.tolist() == [5.0, 5.0]


def test_the_module_imports_without_torch():
    code = "import sys, pipeline.dataset; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


# --- The file itself ----------------------------------------------------------------------------------


def test_the_rows_a_footer_counts_are_read_before_the_table_and_anything_else_is_none(tmp_path):
    # The count the split's draws start from (pipeline.holdout.drawing_while_reading), before the checked read,
    # which alone says what is wrong with a file.
    table = write_parquet(tmp_path, {"x": pa.array(np.arange(1234.0)), "y": pa.array(np.arange(1234.0))})
    assert rows_in_footer(table) == 1234
    assert rows_in_footer(write_csv(tmp_path, "x,y\n1,2\n")) == 0
    assert rows_in_footer(write_csv(tmp_path, b"PAR1 not a footer", "damaged.parquet")) == 0
    assert rows_in_footer(tmp_path / "missing.parquet") == 0
    fifo = tmp_path / "fifo.parquet"
    os.mkfifo(fifo)
    counted = []
    reader = threading.Thread(target=lambda: counted.append(rows_in_footer(fifo)), daemon=True)
    reader.start()
    reader.join(timeout=30)
    assert counted == [0]  # not opened: a FIFO without a writer would block the stage before its checks


def test_a_missing_file_says_how_to_make_it(tmp_path):
    message = error_of(tmp_path / "points.parquet")
    assert re.fullmatch(r"not found: expected a CSV or Parquet file \(run `dvc repro` .*`dvc pull` .*\)", message)


def test_a_directory_is_not_a_table(tmp_path):
    (tmp_path / "data.csv").mkdir()
    assert error_of(tmp_path / "data.csv") == "is not a file: expected a CSV or Parquet file"


@pytest.mark.parametrize(("name", "found"), [("table.xlsx", "extension '.xlsx'"), ("table", "no extension")])
def test_an_unknown_extension_lists_those_accepted(tmp_path, name, found):
    path = write_csv(tmp_path, "x,y\n1,2\n", name=name)
    assert error_of(path) == f"{found}: expected .csv, .parquet, .pq"


@pytest.mark.parametrize("name", ["table.csv", "table.parquet"])
def test_an_empty_file_is_named_empty(tmp_path, name):
    path = write_csv(tmp_path, b"", name=name)
    assert error_of(path) == "is empty (0 bytes): expected a header row, then rows of numbers"


def test_a_csv_header_without_rows_has_no_rows(tmp_path):
    path = write_csv(tmp_path, "x,y\n\n")
    assert error_of(path) == "has no rows: expected a header row, then at least one row of numbers"


def test_a_csv_header_without_a_line_break_has_no_rows(tmp_path):
    message = error_of(write_csv(tmp_path, "x,y"))
    assert message == "has no rows: expected a header row, then at least one row of numbers"
    assert error_of(write_csv(tmp_path, "a,b")).startswith("columns 'x', 'y' are missing")


def test_a_quote_left_open_in_the_header_is_named(tmp_path):
    path = write_csv(tmp_path, '"x,y\n1,2\n')
    assert error_of(path) == "no complete header row (a quote left open?): expected a header row, then rows of numbers"


def test_a_header_that_is_not_utf8_is_named(tmp_path):
    path = write_csv(tmp_path, b"x\xff,y\n1,2\n")
    assert error_of(path) == "the header row is not UTF-8 text: expected column names in UTF-8"


def test_a_csv_of_blank_lines_has_no_header(tmp_path):
    path = write_csv(tmp_path, "\n\r\n\n")
    assert error_of(path) == "holds only blank lines: expected a header row, then rows of numbers"


def test_a_parquet_file_without_rows_has_no_rows(tmp_path):
    path = write_parquet(tmp_path, {"x": pa.array([], pa.float64()), "y": pa.array([], pa.float64())})
    assert error_of(path) == "has no rows: expected at least one row"


def test_binary_data_in_a_csv_is_not_text(tmp_path):
    path = write_csv(tmp_path, bytes(range(7, 256)) + bytes(range(256)))
    assert error_of(path) == "holds binary data (a NUL byte at byte 249): expected CSV text"


def test_parquet_data_named_csv_says_so(tmp_path):
    parquet = write_parquet(tmp_path, {"x": [1.0], "y": [2.0]})
    path = write_csv(tmp_path, parquet.read_bytes())
    assert error_of(path) == "holds Parquet data: expected CSV text (name a Parquet file *.parquet)"


@pytest.mark.parametrize("damage", ["truncated", "csv"])
def test_a_damaged_parquet_file_is_not_readable(tmp_path, damage):
    path = write_parquet(tmp_path, {"x": np.arange(1000.0), "y": np.arange(1000.0)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"x,y\n1,2\n")
    assert re.fullmatch(r"not a readable Parquet file \(.*magic bytes.*\): expected a complete Parquet file", error_of(path))


def test_a_parquet_file_with_a_damaged_page_is_not_readable(tmp_path):
    path = write_parquet(tmp_path, {"x": np.arange(1000.0), "y": np.arange(1000.0)})
    data = bytearray(path.read_bytes())
    data[4:2000] = bytes(1996)
    path.write_bytes(bytes(data))
    assert re.fullmatch(r"not a readable Parquet file \(.+\): expected a complete Parquet file", error_of(path))


# --- The shape of a CSV -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("x,y\n1,2\n3,4,5\n", "line 3 has 3 fields: expected 2"),
        ("x,y\n1,2\n3\n", "line 3 has 1 field: expected 2"),
        # Blank lines are skipped and a quoted value may span lines, but lines are still counted.
        ("x,y,note\n\n1,2,\"a\nb\"\r\n\r\n3,4\n", "line 6 has 2 fields: expected 3"),
        ("x,y\r1,2\r\r3,4,5\r", "line 4 has 3 fields: expected 2"),
    ],
)
def test_a_ragged_row_names_its_line(tmp_path, text, found):
    assert error_of(write_csv(tmp_path, text)) == f"{found}, as in the header"


def test_a_ragged_row_in_a_large_file_names_its_line(tmp_path):
    body = "".join(f"{i},{i % 7}\n" for i in range(200_000))
    path = write_csv(tmp_path, "x,y\n" + body + "1,2,3\n" + body)
    assert error_of(path) == "line 200002 has 3 fields: expected 2, as in the header"


# --- Columns --------------------------------------------------------------------------------------------


def test_a_missing_column_lists_those_there_and_suggests_a_close_name(tmp_path):
    path = write_csv(tmp_path, "x,price,area\n1,2,3\n")
    message = error_of(path, ["x"], "prise")
    assert message == "column 'prise' is missing (did you mean 'price'?): expected one of the columns x, price, area"


def test_every_missing_column_is_named_and_a_long_header_is_cut_short(tmp_path):
    header = ",".join(f"measurement_{i}" for i in range(500))
    path = write_csv(tmp_path, header + "\n" + ",".join(["1"] * 500) + "\n")
    message = error_of(path, ["a", "b", "c"], "d")
    assert re.fullmatch(
        r"columns 'a', 'b', 'c', 'd' are missing: expected one of the columns "
        r"measurement_0, measurement_1, .*, \.\.\. \(\d+ more\)",
        message,
    )


def test_each_missing_column_gets_its_own_did_you_mean(tmp_path):
    path = write_csv(tmp_path, "area_m2,rooms,price\n1,2,3\n")
    assert error_of(path, ["aera_m2", "room", "floors"], "prise") == (
        "columns 'aera_m2' (did you mean 'area_m2'?), 'room' (did you mean 'rooms'?), 'floors', "
        "'prise' (did you mean 'price'?) are missing: expected one of the columns area_m2, rooms, price"
    )


def test_a_shortened_column_name_gets_the_longer_one_suggested(tmp_path):
    path = write_csv(tmp_path, "area_m2,age_years,price\n1,2,3\n2,3,5\n")
    assert error_of(path, ["area_m2", "age"], "price").startswith("column 'age' is missing (did you mean 'age_years'?)")


def test_a_header_name_with_a_line_break_is_shown_escaped(tmp_path):
    path = write_csv(tmp_path, '"x\nz",y\n1,2\n')
    assert error_of(path) == r"column 'x' is missing (did you mean 'x\nz'?): expected one of the columns 'x\nz', y"


def test_a_requested_column_twice_in_the_header_is_ambiguous(tmp_path):
    path = write_csv(tmp_path, "x,y,x\n1,2,3\n")
    assert error_of(path) == "column 'x' appears 2 times in the header: expected one column of that name"


def test_a_column_not_requested_may_appear_twice(tmp_path):
    path = write_csv(tmp_path, "x,y,z,z\n1,2,3,4\n2,3,4,5\n")
    assert read_table(path, ["x"], "y").features.tolist() == [[1.0], [2.0]]


def test_the_target_cannot_also_be_a_feature(tmp_path):
    path = write_csv(tmp_path, "x,y\n1,2\n")
    assert error_of(path, ["x", "y"], "y") == "target 'y' is also a feature: expected a target apart from the features"


def test_a_feature_cannot_be_named_twice(tmp_path):
    path = write_csv(tmp_path, "x,y\n1,2\n")
    assert error_of(path, ["x", "x"], "y") == "feature 'x' is listed 2 times: expected each feature once"


def test_at_least_one_feature_is_needed(tmp_path):
    path = write_csv(tmp_path, "x,y\n1,2\n")
    assert error_of(path, [], "y") == "no features requested: expected at least one feature column"


@pytest.mark.parametrize(
    ("column", "kind"),
    [
        (pa.array(["1", "2"]), "string"),
        (pa.array([True, False]), "bool"),
        (pa.array([1, 2], pa.timestamp("ms")), r"timestamp\[ms\]"),
        (pa.array([[1.0], [2.0]]), "list<.*>"),
    ],
)
def test_a_parquet_column_that_is_not_numeric_names_its_type(tmp_path, column, kind):
    path = write_parquet(tmp_path, {"x": column, "y": [1.0, 2.0]})
    expected = rf"column 'x' holds {kind}: expected numbers \(an integer or floating-point column\)"
    assert re.fullmatch(expected, error_of(path))


# --- Values ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "found"),
    [
        ('"3,5"', "holds '3,5': expected a number (a decimal point, not a comma)"),
        ("abc", "holds 'abc': expected a number"),
        ("true", "holds 'true': expected a number"),
        ("1_000", "holds '1_000': expected a number"),
        ('"two\nlines"', r"holds 'two\nlines': expected a number"),
        (" ", "holds ' ': expected a number"),  # blank but not empty: pyarrow does not read it as missing
    ],
)
def test_a_cell_that_is_not_a_number_names_its_line_and_value(tmp_path, cell, found):
    path = write_csv(tmp_path, f"x,y\n1,2\n\n2,3\n{cell},4\n5,6\n")
    assert error_of(path) == f"column 'x' line 5 {found}"


def test_the_first_cell_that_is_not_a_number_is_named_after_empty_ones(tmp_path):
    path = write_csv(tmp_path, "x,y\n1,2\n,3\nNA,4\nnan,5\n7,oops\n")
    assert error_of(path) == "column 'y' line 6 holds 'oops': expected a number"


def test_infinite_cells_are_counted_from_their_first_line_and_a_blank_target_is_no_error(tmp_path):
    path = write_csv(tmp_path, "x,y\n1,2\n2,3\n3,\n4,NaN\n5,inf\n6,-Infinity\n7,NA\n8,1e400\n")
    assert error_of(path) == (  # 3, NaN and NA: the target alone is blank, an unlabeled row
        "3 rows have a missing value (empty, NA, NaN or infinite) in column 'y' (3), the first at line 6: "
        "expected a number in every used column, or data.missing: drop to leave such rows out"
    )


@pytest.mark.parametrize("missing", ["error", "drop"])
@pytest.mark.parametrize("name", ["t.csv", "t.parquet"])
def test_a_row_missing_only_its_target_is_unlabeled_and_left_out_whatever_data_missing_says(tmp_path, name, missing):
    x = [1.0, 2.0, None, 4.0, 5.0, 6.0] if missing == "drop" else [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    y = [1.0, None, 3.0, None, 5.5, 7.0]
    path = tmp_path / name
    if name.endswith(".csv"):
        path.write_text("x,y\n" + "".join(f"{'' if a is None else a},{'' if b is None else b}\n" for a, b in zip(x, y)))
    else:
        pyarrow.parquet.write_table(pa.table({"x": x, "y": y}), path, row_group_size=4)
    table, rows_dropped, rows_unlabeled = open_labeled_rows(path, ["x"], "y", missing=missing)
    assert (rows_dropped, rows_unlabeled) == ((1, 2) if missing == "drop" else (0, 2))
    assert gather(table).target.tolist() == ([1.0, 5.5, 7.0] if missing == "drop" else [1.0, 3.0, 5.5, 7.0])
    every, n_labeled = open_every_row(path, ["x"], "y", missing)
    assert len(every) == 6 and n_labeled == len(table)
    if name.endswith(".parquet") and missing == "error":  # a torchrun worker's read: only the target is looked at
        unchecked, rows_dropped, rows_unlabeled = open_labeled_rows(path, ["x"], "y", check=False)
        assert (rows_dropped, rows_unlabeled) == (0, 2) and gather(unchecked).target.tolist() == [1.0, 3.0, 5.5, 7.0]


def test_empty_parquet_cells_are_counted_from_their_row_index(tmp_path):
    path = write_parquet(tmp_path, {"x": pa.array([1, None, 3], pa.int32()), "y": [1.0, 2.0, 3.0]})
    assert error_of(path) == (
        "1 row has a missing value (empty, NA, NaN or infinite) in column 'x' (1), the first at row index 1: "
        "expected a number in every used column, or data.missing: drop to leave such rows out"
    )


def test_empty_parquet_cells_are_counted_across_row_groups(tmp_path):
    path = tmp_path / "table.parquet"
    x = pa.array([float(i) if i != 7 else None for i in range(10)])
    pyarrow.parquet.write_table(pa.table({"x": x, "y": np.arange(10.0)}), path, row_group_size=3)
    assert error_of(path) == (
        "1 row has a missing value (empty, NA, NaN or infinite) in column 'x' (1), the first at row index 7: "
        "expected a number in every used column, or data.missing: drop to leave such rows out"
    )


def test_bad_parquet_values_in_several_row_groups_are_all_counted_from_the_first(tmp_path):
    path = tmp_path / "table.parquet"
    x = [float(i) for i in range(20)]
    x[4], x[11], x[17] = 2e15, float("nan"), float("inf")
    pyarrow.parquet.write_table(pa.table({"x": x, "y": np.arange(20.0)}), path, row_group_size=3)
    assert error_of(path) == (
        "2 rows have a missing value (empty, NA, NaN or infinite) in column 'x' (2), the first at row index 11: "
        "expected a number in every used column, or data.missing: drop to leave such rows out"
    )
    x[11] = x[17] = -3e15
    pyarrow.parquet.write_table(pa.table({"x": x, "y": np.arange(20.0)}), path, row_group_size=3)
    assert error_of(path) == "column 'x' has 3 values beyond ±1e+15 (first at row index 4: 2e+15): expected |value| <= 1e+15"


def test_a_parquet_file_of_many_row_groups_is_read_whole(tmp_path):
    path = tmp_path / "table.parquet"
    x = np.arange(1000.0) ** 2
    pyarrow.parquet.write_table(pa.table({"a.b": x, "y": -x}), path, row_group_size=64)
    table = read_table(path, ["a.b"], "y")
    assert table.features[:, 0].tolist() == x.tolist() and table.target.tolist() == (-x).tolist()


def test_values_beyond_the_largest_are_refused(tmp_path):
    assert LARGEST_VALUE == 1e15
    path = write_csv(tmp_path, "x,y\n1,2\n2,1e15\n3,-1.5e15\n4,2e20\n")
    assert error_of(path) == (
        "column 'y' has 2 values beyond ±1e+15 (first at line 4: -1.5e+15): expected |value| <= 1e+15"
    )


def test_in_a_wide_table_a_value_beyond_the_largest_and_a_constant_feature_name_their_column_and_row(tmp_path):
    # Every column's range is found for a whole block of rows at once: the error still names the column.
    generator = np.random.default_rng(3)
    columns = {f"f{k}": generator.standard_normal(5000) for k in range(70)} | {"y": generator.standard_normal(5000)}
    names = list(columns)[:-1]
    columns["f66"][4321] = -2e15
    assert error_of(write_parquet(tmp_path, columns), names) == (
        "column 'f66' has 1 value beyond ±1e+15 (first at row index 4321: -2e+15): expected |value| <= 1e+15")
    columns["f66"][4321] = 0.5
    columns["f65"][:] = 7.0
    assert error_of(write_parquet(tmp_path, columns), names) == (
        "feature 'f65' is constant (every row is 7.0): expected at least two distinct values")


def test_integers_that_float64_cannot_hold_exactly_are_refused(tmp_path):
    path = write_parquet(tmp_path, {"x": pa.array([1, 2**53 + 1], pa.int64()), "y": [1.0, 2.0]})
    assert re.fullmatch(r"column 'x' has 1 value beyond ±1e\+15 \(first at row index 1: .*", error_of(path))


def test_a_constant_feature_is_refused(tmp_path):
    path = write_csv(tmp_path, "x,y\n2,1\n2.0,2\n2e0,3\n")
    assert error_of(path) == "feature 'x' is constant (every row is 2.0): expected at least two distinct values"


# --- Splitting rows -------------------------------------------------------------------------------------


def test_held_out_holds_out_the_rounded_fraction_the_same_way_everywhere():
    assert np.flatnonzero(held_out(10, 0.3, seed=0)).tolist() == [2, 4, 6]
    mask = held_out(1000, 0.2, seed=42)
    assert mask.dtype == bool and mask.shape == (1000,) and mask.sum() == 200
    assert np.array_equal(mask, held_out(1000, 0.2, seed=42))
    assert not np.array_equal(mask, held_out(1000, 0.2, seed=43))


@pytest.mark.parametrize(
    ("n_rows", "test_fraction", "n_test"),
    [(100, 0.0, 0), (100, 0.001, 1), (3, 0.9, 2), (1, 0.5, 0), (0, 0.5, 0), (7, 0.5, 4)],
)
def test_held_out_holds_out_at_least_one_row_and_keeps_at_least_one(n_rows, test_fraction, n_test):
    assert held_out(n_rows, test_fraction, seed=0).sum() == n_test


@pytest.mark.parametrize(("n_rows", "test_fraction"), [(10, 1.0), (10, -0.1), (10, float("nan")), (-1, 0.2)])
def test_held_out_refuses_arguments_out_of_range(n_rows, test_fraction):
    with pytest.raises(ValueError):
        held_out(n_rows, test_fraction, seed=0)


def test_too_few_training_rows_for_the_coefficients_is_an_error(tmp_path):
    path = tmp_path / "table.csv"
    require_enough_training_rows(path, n_train=3, n_coefficients=2)
    with pytest.raises(PipelineError) as raised:
        require_enough_training_rows(path, n_train=1, n_coefficients=2)
    assert str(raised.value) == (
        f"{path}: 1 training rows: expected at least 3 (one more than the 2 coefficients); "
        "add rows or lower data.test_fraction"
    )
    # As many rows as coefficients: the least squares would fit exactly, with nothing left to estimate noise.
    with pytest.raises(PipelineError) as raised:
        require_enough_training_rows(path, n_train=2, n_coefficients=2)
    assert str(raised.value) == (
        f"{path}: 2 training rows (no degrees of freedom left for a standard error): expected at least 3 (one more than the 2 coefficients); "
        "add rows or lower data.test_fraction"
    )


# --- Missing values: data.missing: error names them all, drop leaves their rows out ------------------------

# A table as a spreadsheet exports it: NA, empty and NaN cells in several columns, a text column nobody asked
# for with gaps of its own, and a row whose every used cell is there but whose note is empty.
HOUSES = """area_m2,rooms,year,note,price
52,2,1990,flat,101000
,3,1985,no area,150000
71,NA,2001,,180000
88,4,NA,NA,NA
93,4,2010,garden,240000
60,2,1999,,130000
120,5,NaN,villa,410000
75,3,2005,corner,200000
"""
USED = ["area_m2", "rooms", "year"]
# Lines 3, 4, 5 and 8 of the file (data rows 1, 2, 3 and 6) lack a used value; these are the others.
COMPLETE = [[52, 2, 1990, 101000], [93, 4, 2010, 240000], [60, 2, 1999, 130000], [75, 3, 2005, 200000]]
MISSING_MESSAGE = (
    "4 rows have a missing value (empty, NA, NaN or infinite) in columns 'area_m2' (1), 'rooms' (1), 'year' (2), "
    "'price' (1), the first at {first}: expected a number in every used column, or data.missing: drop to leave such "
    "rows out"
)


def houses_parquet(tmp_path: Path, row_group_size: int) -> Path:
    path = tmp_path / "houses.parquet"
    pyarrow.parquet.write_table(pyarrow.csv.read_csv(write_csv(tmp_path, HOUSES, "houses.csv")), path,
                                row_group_size=row_group_size)
    return path


def test_missing_values_name_every_used_column_the_rows_and_the_first_line(tmp_path):
    assert error_of(write_csv(tmp_path, HOUSES), USED, "price") == MISSING_MESSAGE.format(first="line 3")


def test_missing_parquet_values_name_every_used_column_the_rows_and_the_first_row_index(tmp_path):
    assert error_of(houses_parquet(tmp_path, 3), USED, "price") == MISSING_MESSAGE.format(first="row index 1")


@pytest.mark.parametrize("format_, row_group_size", [("csv", None), ("parquet", 1), ("parquet", 3), ("parquet", 100)])
def test_drop_leaves_out_exactly_the_rows_with_a_missing_used_value(tmp_path, format_, row_group_size):
    path = write_csv(tmp_path, HOUSES) if format_ == "csv" else houses_parquet(tmp_path, row_group_size)
    table, rows_dropped = open_rows(path, USED, "price", missing="drop")
    assert rows_dropped == 4 and len(table) == 4
    whole = gather(table)
    assert np.hstack([whole.features, whole.target[:, None]]).tolist() == COMPLETE


def test_drop_splits_the_complete_rows_the_same_way_for_csv_and_streamed_parquet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    x, z = rng.normal(size=500), rng.normal(size=500)
    x[rng.choice(500, 40, replace=False)] = np.nan
    z[rng.choice(500, 30, replace=False)] = np.inf
    y = np.arange(500.0)  # each row's own number: which rows a part holds is read off y
    y[rng.choice(500, 20, replace=False)] = np.nan
    pyarrow.parquet.write_table(pa.table({"x": x, "z": z, "y": y}), "t.parquet", row_group_size=37)
    rows = zip(x.tolist(), z.tolist(), y.tolist())  # repr: nan and inf, which pyarrow reads as missing
    write_csv(tmp_path, "x,z,y\n" + "".join(f"{a!r},{b!r},{c!r}\n" for a, b, c in rows), "t.csv")
    complete = y[np.isfinite(x) & np.isfinite(z) & np.isfinite(y)]
    parts = {}
    for source in ("t.csv", "t.parquet"):
        data = DataParams(source=source, features=["x", "z"], target="y", missing="drop", degree=1,
                          test_fraction=0.25, split_seed=3, max_levels=50)
        split = load_split(data, fit_intercept=True)
        unlabeled = np.count_nonzero(np.isfinite(x) & np.isfinite(z) & np.isnan(y))
        assert (split.rows_dropped, split.rows_unlabeled) == (500 - len(complete) - unlabeled, unlabeled) != (69, 0)
        parts[source] = gather(split.train).target.tolist(), gather(split.test).target.tolist()
    train, test = parts["t.csv"]
    assert parts["t.parquet"] == (train, test)
    assert sorted(train + test) == complete.tolist()  # every complete row, in one part only
    assert len(test) == round(len(complete) * 0.25)


def test_with_drop_a_value_beyond_the_largest_still_names_its_own_line(tmp_path):
    path = write_csv(tmp_path, "x,y\n1,2\nNA,3\n\n2,4\n3,2e15\n")
    with pytest.raises(PipelineError, match=r"column 'y' has 1 value beyond ±1e\+15 \(first at line 6: 2e\+15\)"):
        open_rows(path, ["x"], "y", missing="drop")


def test_with_drop_a_feature_constant_over_the_complete_rows_is_refused(tmp_path):
    path = write_csv(tmp_path, "x,y\n1,2\n5,\n1,4\n")
    with pytest.raises(PipelineError, match=r"feature 'x' is constant \(every row is 1.0\)"):
        open_rows(path, ["x"], "y", missing="drop")


def test_with_drop_a_table_without_a_complete_row_is_refused(tmp_path):
    path = houses_parquet(tmp_path, 2)
    with pytest.raises(PipelineError) as raised:
        open_rows(path, ["area_m2", "year"], "note", missing="drop")  # note: text, refused before any value
    assert "column 'note' holds string" in str(raised.value)
    write_csv(tmp_path, "x,y\nNA,\nNA,2\n")
    with pytest.raises(PipelineError) as raised:
        open_rows(tmp_path / "table.csv", ["x"], "y", missing="drop")
    assert str(raised.value) == (f"{tmp_path / 'table.csv'}: every one of its 2 rows has a missing value (empty, NA, "
                                 "NaN or infinite) in columns 'x' (2), 'y' (1): expected at least one complete row")
    write_csv(tmp_path, "x,y\n1,\nNA,2\n")  # one unlabeled row, one dropped
    with pytest.raises(PipelineError) as raised:
        open_rows(tmp_path / "table.csv", ["x"], "y", missing="drop")
    assert str(raised.value) == (f"{tmp_path / 'table.csv'}: none of its 2 rows is complete (1 without a target and 1 "
                                 "a missing value): expected at least one complete row")


def test_huge_values_whose_sum_overflows_are_too_large_not_missing(tmp_path):
    path = write_csv(tmp_path, "x,y\n1e308,1\n1e308,2\n3,3\n")
    assert error_of(path) == "column 'x' has 2 values beyond ±1e+15 (first at line 2: 1e+308): expected |value| <= 1e+15"


def test_the_passes_over_a_parquet_file_of_one_row_group_share_one_read_only_read(tmp_path, monkeypatch):
    # A stage passes over its rows several times (least squares, scores, ...): a file of one row group, a wide
    # table's usual shape, is decoded and split once, and no pass can change what the next one sees.
    monkeypatch.chdir(tmp_path)
    x = np.arange(40.0)
    pyarrow.parquet.write_table(pa.table({"x": x, "y": 2 * x + 1}), "t.parquet")
    data = DataParams(source="t.parquet", features=["x"], target="y", missing="error", degree=1,
                      test_fraction=0.25, split_seed=3, max_levels=50)
    split = load_split(data, fit_intercept=True)
    train = split.train.groups()[0]()
    assert split.train.groups()[0]() is train
    assert not train.features.flags.writeable and not train.target.flags.writeable
    test = split.test.groups()[0]()
    assert sorted([*train.features[:, 0], *test.features[:, 0]]) == x.tolist()
    assert split.test.groups()[0]() is test
