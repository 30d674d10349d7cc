"""Hostile CSV files: read_table gives finite float64 arrays of the right shape, or one line naming the file."""

import re
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import cell_checks, dataset
from pipeline.cell_checks import LARGEST_VALUE
from pipeline.dataset import read_table
from pipeline.errors import PipelineError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NAMES = ["z", "X", " x", "x ", "", "price", "x,y", 'q"', "é", "x\ny", "y"]
NUMBERS = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(-1e12, 1e12).map(repr),
    st.integers(-(10**18), 10**18).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(-1e16, 1e16).map(lambda value: f"{value:.3e}"),
)
ODD_CELLS = st.one_of(
    NUMBERS.map(lambda text: f" {text}\t"),
    st.floats(-1e6, 1e6).map(lambda value: f'"{value:.2f}"'.replace(".", ",")),  # a decimal comma
    st.sampled_from(["", '""', "nan", "NaN", "-nan", "inf", "-Infinity", "NA", "null", "N/A", "1e999", "true"]),
    st.sampled_from(["abc", "1,5", "1.2.3", "0x10", "1_000", "١٢", "\u00a01", "'1'", '"', '"a""b"', '"x\ny"']),
    st.text(max_size=6),
)
LINE_ENDS = st.sampled_from(["\n", "\r\n", "\r"])


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def assert_table_or_one_line_error(path: Path, features: list[str], target: str) -> dataset.Table | None:
    try:
        table = read_table(path, features, target)
    except PipelineError as error:
        message = str(error)
        assert message.startswith(f"{path}: "), message
        assert "\n" not in message and "\r" not in message, message
        assert len(message) - len(str(path)) <= 300, message
        return None
    n_rows = len(table.target)
    assert n_rows >= 1
    assert table.features.dtype == np.float64 and table.target.dtype == np.float64
    assert table.features.shape == (n_rows, len(features)) and table.target.shape == (n_rows,)
    assert table.features.flags.c_contiguous
    assert np.isfinite(table.features).all() and np.isfinite(table.target).all()
    assert np.abs(table.features).max() <= LARGEST_VALUE and np.abs(table.target).max() <= LARGEST_VALUE
    return table


@st.composite
def random_csvs(draw) -> bytes:
    """Columns x and y among others, rows of mostly numbers and some odd cells, a few rows ragged."""
    header = draw(st.permutations(["x", "y", *draw(st.lists(st.sampled_from(NAMES), max_size=3))]))
    quoted = ['"' + name.replace('"', '""') + '"' if set(name) & set(',"\n') else name for name in header]
    lines = [",".join(quoted)]
    n_rows = draw(st.integers(0, 8))
    ragged_row = draw(st.integers(0, 10 * n_rows))  # most files have none
    for index in range(n_rows):
        row = [draw(NUMBERS if draw(st.integers(0, 5)) else ODD_CELLS) for _ in header]
        if index == ragged_row:
            row = row + ["1"] if draw(st.booleans()) else row[:-1]
        lines.append(",".join(row))
    end = draw(LINE_ENDS)
    text = end.join(lines) + draw(st.sampled_from(["", end, end + end]))
    return draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + text.encode()


@FUZZ
@given(data=random_csvs())
def test_random_csv_files_give_a_table_or_one_line(folder, data):
    path = folder / "random.csv"
    path.write_bytes(data)
    assert_table_or_one_line_error(path, ["x"], "y")


def valid_csv(values: np.ndarray) -> bytes:
    return ("x,z,y\n" + "".join(f"{a!r},{b!r},{c!r}\n" for a, b, c in values.tolist())).encode()


@st.composite
def damaged_csvs(draw) -> bytes:
    """A valid CSV with bytes flipped, inserted, deleted, or cut short."""
    n_rows = draw(st.integers(2, 30))
    values = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).normal(size=(n_rows, 3)) * 1e3
    data = bytearray(valid_csv(values))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        damage = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        junk = draw(st.binary(min_size=1, max_size=3) | st.sampled_from([b",", b'"', b"\n", b"\r", b"\0", b"\xff"]))
        if damage == "flip" and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        elif damage == "insert":
            data[at:at] = junk
        elif damage == "delete":
            del data[at : at + len(junk)]
        else:
            del data[at:]
    return bytes(data)


@FUZZ
@given(data=damaged_csvs())
def test_damaged_csv_files_give_a_table_or_one_line(folder, data):
    path = folder / "damaged.csv"
    path.write_bytes(data)
    assert_table_or_one_line_error(path, ["x", "z"], "y")


@FUZZ
@given(
    rows=st.lists(
        st.tuples(*[st.floats(-1e15, 1e15, allow_subnormal=True) | st.integers(-(10**15), 10**15)] * 3),
        min_size=2,
        max_size=20,
    ),
    style=st.sampled_from(["{!r}", "{:.17g}", "{:.6e}", "{:.3f}", " {!r} ", "{!r}"]),
    end=LINE_ENDS,
)
def test_valid_csv_values_are_read_exactly_as_python_parses_them(folder, rows, style, end):
    cells = [[style.format(value) for value in row] for row in rows]
    path = folder / "valid.csv"
    path.write_text(end.join(["x,z,y"] + [",".join(row) for row in cells]) + end, newline="")
    table = assert_table_or_one_line_error(path, ["x", "z"], "y")
    expected = np.array([[float(cell) for cell in row] for row in cells])
    if len(set(expected[:, 0])) == 1 or len(set(expected[:, 1])) == 1:
        assert table is None  # a constant feature
        return
    assert table is not None
    # Bit for bit, signed zeros included.
    assert table.features.tobytes() == np.ascontiguousarray(expected[:, :2]).tobytes()
    assert table.target.tobytes() == np.ascontiguousarray(expected[:, 2]).tobytes()


@st.composite
def csvs_with_one_bad_cell(draw) -> tuple[bytes, int, str]:
    """A CSV with blank lines, mixed line ends and multi-line quoted notes, and the line of its one problem."""
    n_rows = draw(st.integers(1, 12))
    bad_row = draw(st.integers(0, n_rows - 1))
    problem = draw(st.sampled_from(["oops", "nan", "ragged"]))
    text = "x,y,note" + draw(LINE_ENDS)
    for row in range(n_rows):
        for _ in range(draw(st.integers(0, 2))):
            text += draw(LINE_ENDS)  # a blank line, skipped but counted (unless it makes a \r\n)
        note = draw(st.sampled_from(["", "plain", '"a\nb"', '"a\r\nb\rc"', '"say ""hi"""', '"1,2"']))
        cells = [str(row), str(row % 3), note]
        if row == bad_row:
            bad_line = 1 + len(re.findall(r"\r\n|\r|\n", text))
            cells = {"oops": ["oops", "0", note], "nan": ["nan", "0", note], "ragged": [str(row), "1"]}[problem]
        text += ",".join(cells) + draw(LINE_ENDS)
    return text.encode(), bad_line, problem


@FUZZ
@given(case=csvs_with_one_bad_cell(), scan_bytes=st.integers(1, 64))
def test_a_problem_is_found_at_the_line_of_the_file_where_it_is(folder, case, scan_bytes):
    data, bad_line, problem = case
    path = folder / "lines.csv"
    path.write_bytes(data)
    # Small blocks put the line breaks, \r\n pairs and quotes across the scan's block boundaries.
    with mock.patch.object(cell_checks, "_SCAN_BYTES", scan_bytes), pytest.raises(PipelineError) as raised:
        read_table(path, ["x"], "y")
    message = str(raised.value)
    expected = {
        "oops": f"column 'x' line {bad_line} holds 'oops'",
        "nan": rf"1 row has a missing value \(empty, NA, NaN or infinite\) in column 'x' \(1\), the first at line {bad_line}:",
        "ragged": f"line {bad_line} has 2 fields: expected 3",
    }[problem]
    assert re.match(re.escape(f"{path}: ") + expected, message), (message, data)


def test_values_are_not_lost_when_a_file_is_large(folder):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(300_000, 3)) * 10.0 ** rng.integers(-300, 14, size=(300_000, 3))
    path = folder / "large.csv"
    path.write_bytes(valid_csv(values))
    table = read_table(path, ["x", "z"], "y")
    assert np.array_equal(table.features, values[:, :2]) and np.array_equal(table.target, values[:, 2])
