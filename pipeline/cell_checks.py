"""Checking a table's cells, and naming what is wrong: a missing or out-of-range value (which columns, how
many rows, the first one), or the line of a CSV file that pyarrow could not read (a ragged row, a cell that
is not a number). Fast checks run on every block; the slower search for *where* runs only once a problem is
found. pipeline/dataset.py reads the rows and calls these.
"""

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv

from pipeline.errors import PipelineError
from pipeline.schema import CSV_PARSE, arrow_message, counted, show, with_long_lines

# |value| above this is refused: squared errors must stay finite in float32 (3.4e38), and every integer
# up to it is exact in float64 (2**53 is about 9.0e15).
LARGEST_VALUE = 1e15

_SCAN_BYTES = 1 << 24  # block of the file scanned at a time to number its lines
RANGES_ALONG_ROWS = 16  # features from which a block's ranges are found in one pass along its rows (Values.add)


# data.missing: what to do with a row that has a missing (empty, NA, NaN or infinite) value in a used column.
MISSING_ERROR = "error"  # refuse the table, naming every column with one
MISSING_DROP = "drop"  # leave the row out: the table is its complete rows, in every stage


def csv_problem(where: str, path: Path, header: list[str], names: list[str], error: Exception) -> PipelineError:
    """Say where pyarrow's complaint lies: a value that is not a number, or a ragged row."""
    # Look first in the column pyarrow names, if it does: each look reads the file again.
    named = re.search(r"In CSV column #(\d+)", str(error))
    if named and int(named.group(1)) < len(header) and header[int(named.group(1))] in names:
        names = sorted(names, key=lambda name: name != header[int(named.group(1))])
    bad = _first_non_number(path, names)
    if bad is not None:
        name, row, text = bad
        return PipelineError(
            f"{where}: column {show(name)} line {csv_line(path, row)} holds {show(text)}: "
            f"expected a number{_hint(text)}"
        )
    ragged = _first_ragged_row(path, header[:1])
    if ragged is not None:
        row, n_fields, n_expected = ragged
        return PipelineError(
            f"{where}: line {csv_line(path, row)} has {counted(n_fields, 'field')}: "
            f"expected {n_expected}, as in the header"
        )
    return PipelineError(
        f"{where}: not readable as CSV ({arrow_message(error)}): expected a header row, then rows of numbers"
    )


def _first_ragged_row(path: Path, keep: list[str]) -> tuple[int, int, int] | None:
    """(data row from 0, fields found, fields expected) of the first row whose length is not the header's.

    Only the columns `keep` are kept as they are read (all of them if none is named).
    """
    # Only a single-threaded reader numbers the rows in its message; the invalid_row_handler would too,
    # but it cannot be called for a row that is not UTF-8.
    convert = pyarrow.csv.ConvertOptions(include_columns=keep, column_types=dict.fromkeys(keep, pa.binary()))
    try:
        with_long_lines(str(path), path, lambda options: pyarrow.csv.read_csv(
            path, read_options=options, parse_options=CSV_PARSE, convert_options=convert), use_threads=False)
    except (pa.ArrowException, OSError) as error:
        found = re.search(r"Row #(\d+): Expected (\d+) columns, got (\d+)", str(error))
        if found:
            # pyarrow counts records from 1, the header being record 1 and blank lines not counted.
            record, expected, actual = (int(number) for number in found.groups())
            return record - 2, actual, expected
    return None


def _first_non_number(path: Path, names: list[str]) -> tuple[str, int, str] | None:
    """(column, data row from 0, text) of the first requested cell pyarrow cannot read as a number."""
    for name in names:  # one column at a time: the raw text of all of them could be large
        try:
            # The same cells as the float64 read counts as empty are empty here too.
            convert = pyarrow.csv.ConvertOptions(include_columns=[name], column_types={name: pa.binary()},
                                                 strings_can_be_null=True)
            cells = with_long_lines(str(path), path, lambda options: pyarrow.csv.read_csv(
                path, read_options=options, parse_options=CSV_PARSE, convert_options=convert)).column(name)
        except (pa.ArrowException, OSError, PipelineError):
            return None
        offset = 0
        for chunk in cells.chunks:
            index = _first_failure(chunk)
            if index is not None:
                text = chunk[index].as_py().decode("utf-8", errors="replace")
                return name, offset + index, text
            offset += len(chunk)
    return None


def _first_failure(cells: pa.Array) -> int | None:
    """Index of the first cell that does not convert to a double, by bisection (each step vectorised)."""
    if _converts(cells):
        return None
    start, stop = 0, len(cells)  # the first failure lies in cells[start:stop]
    while stop - start > 1:
        middle = (start + stop) // 2
        if _converts(cells.slice(start, middle - start)):
            start = middle
        else:
            stop = middle
    return start


def _converts(cells: pa.Array) -> bool:
    # The CSV reader trims spaces and tabs, then parses as the cast does.
    try:
        pc.cast(pc.utf8_trim(cells.cast(pa.string()), characters=" \t"), pa.float64())
    except pa.ArrowException:
        return False
    return True


def csv_line(path: Path, row: int) -> int:
    """The 1-based line of the file where data row `row` (from 0, after the header) starts.

    Splits records as pyarrow does: at \\n, \\r\\n or \\r outside double quotes, skipping blank lines.
    Vectorised over blocks of the file; only called once a problem is found.
    """
    wanted = row + 1  # records counted from 0, the header being record 0
    n_records = n_quotes = n_breaks = offset = 0  # before the block
    pending_start, pending_line = 0, 1  # the record not yet ended
    carried = b""
    with path.open("rb") as file:
        while block := carried + (fresh := file.read(_SCAN_BYTES)):
            # A \r that ends a block may be the first half of a \r\n: keep it for the next one.
            carried = b"\r" if len(fresh) == _SCAN_BYTES and block.endswith(b"\r") else b""
            data = np.frombuffer(block, dtype=np.uint8)[: len(block) - len(carried)]
            if not len(data):
                continue
            returns = np.flatnonzero(data == 0x0D)
            follower = np.append(data, 0)[returns + 1]
            ends = np.sort(np.concatenate([np.flatnonzero(data == 0x0A), returns[follower != 0x0A]]))
            starts = ends - ((data[ends] == 0x0A) & (np.insert(data, 0, 0)[ends] == 0x0D))  # \r\n is one break
            quotes = np.flatnonzero(data == 0x22)
            unquoted = np.flatnonzero((n_quotes + np.searchsorted(quotes, starts)) % 2 == 0)
            if len(unquoted):
                # The records that end in this block: the pending one, then one after each unquoted break
                # but the last. A record's line is one more than the breaks before it, quoted or not.
                record_starts = np.concatenate([[pending_start], offset + ends[unquoted[:-1]] + 1])
                record_lines = np.concatenate([[pending_line], n_breaks + unquoted[:-1] + 2])
                filled = record_starts < offset + starts[unquoted]  # not a blank line
                if n_records + np.count_nonzero(filled) > wanted:
                    return int(record_lines[filled][wanted - n_records])
                n_records += int(np.count_nonzero(filled))
                pending_start = offset + int(ends[unquoted[-1]]) + 1
                pending_line = n_breaks + int(unquoted[-1]) + 2
            n_quotes += len(quotes)
            n_breaks += len(ends)
            offset += len(data)
    return pending_line  # the last record, with no line break after it


def complete_rows(features: np.ndarray, target: np.ndarray | None) -> np.ndarray | None:
    """Mask of the rows whose every value is finite (not empty, NA, NaN or ±inf); None when all of them are.
    A target of None (rows to predict without one) is not looked at."""
    # A sum is finite when every value is (and, rarely, not when huge values overflow): one fast pass decides
    # for almost every block, at a tenth of the cost of a mask.
    with np.errstate(over="ignore", invalid="ignore"):  # inf - inf is NaN, as it should be here
        if np.isfinite(features.sum()) and (target is None or np.isfinite(target.sum())):
            return None
    complete = np.isfinite(features).all(axis=1)
    if target is not None:
        complete &= np.isfinite(target)
    return None if complete.all() else complete


def row_kinds(features: np.ndarray, target: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the labeled rows (every value finite) and of the unlabeled ones (every feature finite, the
    target blank: empty, NA or NaN; an infinite target is a bad value, not a blank). Without a target (rows
    to predict that have none), every row with its features is labeled."""
    with_features = np.isfinite(features).all(axis=1)
    if target is None:
        return with_features, np.zeros_like(with_features)
    return with_features & np.isfinite(target), with_features & np.isnan(target)


class Values:
    """What the checks need to know of a table's values, gathered block by block: the rows with a missing
    value and in which columns, the rows whose only missing value is the target (unlabeled), and the range
    of each column over the complete rows."""

    def __init__(self, names: list[str], new_rows: bool = False, factors: "set[str] | None" = None):
        """new_rows: rows to predict, whose blank target is kept (predicted) rather than left out."""
        self.names = names
        self.new_rows = new_rows
        self.factors = factors or set()  # columns of level codes: one level is terms' to judge, among training rows
        self.columns = [_Column() for _ in names]
        self.missing_by_column = np.zeros(len(names), dtype=np.int64)
        self.n_rows = 0
        self.rows_missing = 0  # rows missing a feature (or with an infinite target): refused, or left out by drop
        self.rows_unlabeled = 0  # rows whose only missing value is the target: never an error
        self.first_missing = 0  # row index, from 0

    def add(self, features: np.ndarray, target: np.ndarray) -> np.ndarray | None:
        """Take in the table's next rows; the mask of the rows kept (complete, or for new rows complete but
        for the target), None when all of them are."""
        offset = self.n_rows
        self.n_rows += len(target)
        has_target = len(self.names) > features.shape[1]  # rows to predict may have none
        columns = [features[:, j] for j in range(features.shape[1])] + [target] * has_target
        complete = complete_rows(features, target if has_target else None)
        if complete is None:
            if features.shape[1] < RANGES_ALONG_ROWS or not len(features):
                for column, values in zip(self.columns, columns):
                    column.add(values, offset)
                return None
            # Every feature's range in one pass along the rows rather than one strided pass per column: 500
            # features of 50,000 rows took 0.035 s against 0.37 s (but 3 of 2^18 rows: 8.8 ms against 1.3 ms).
            lows, highs = features.min(axis=0), features.max(axis=0)
            for column, values, low, high in zip(self.columns, columns, lows, highs):
                column.add_in_range(values, offset, low, high)
            if has_target:
                self.columns[-1].add(target, offset)
            return None
        labeled, unlabeled = row_kinds(features, target if has_target else None)
        self.rows_unlabeled += int(np.count_nonzero(unlabeled))
        missing = ~labeled & ~unlabeled
        if missing.any():
            if not self.rows_missing:
                self.first_missing = offset + int(np.argmax(missing))
            self.rows_missing += int(np.count_nonzero(missing))
            for j, values in enumerate(columns):  # the columns of the rows with a missing value
                self.missing_by_column[j] += int(np.count_nonzero(~np.isfinite(values[missing])))
        kept = labeled | unlabeled if self.new_rows else labeled
        for j, (column, values) in enumerate(zip(self.columns, columns)):
            finite = labeled if j == features.shape[1] else kept  # a blank target kept has no value to check
            column.add(values[finite], offset + np.flatnonzero(finite))
        return None if kept.all() else kept

    def check(self, where: str, missing: str, locate: Callable[[int], str]) -> None:
        """No missing value (unless missing is "drop", which leaves such rows out), every value within
        ±LARGEST_VALUE, and no feature constant; `locate` names the line of a row."""
        if self.rows_missing:
            counts = [(name, count) for name, count in zip(self.names, self.missing_by_column) if count]
            found = (f"a missing value (empty, NA, NaN or infinite) in {'column' if len(counts) == 1 else 'columns'} "
                     + ", ".join(f"{show(name)} ({count})" for name, count in counts))
            if missing == MISSING_ERROR:
                rows = "1 row has" if self.rows_missing == 1 else f"{self.rows_missing} rows have"
                # A blank target alone is no error (an unlabeled row, to predict): only a missing feature is.
                raise PipelineError(
                    f"{where}: {rows} {found}, the first at {locate(self.first_missing)}: expected a number "
                    f"in every used column, or data.missing: {MISSING_DROP} to leave such rows out"
                )
            if self.rows_missing == self.n_rows:
                raise PipelineError(f"{where}: every one of its {counted(self.n_rows, 'row')} has {found}: "
                                    "expected at least one complete row")
        if not self.new_rows and self.rows_unlabeled and self.rows_missing + self.rows_unlabeled == self.n_rows:
            dropped = f" and {self.rows_missing} a missing value" if self.rows_missing else ""
            raise PipelineError(f"{where}: none of its {counted(self.n_rows, 'row')} is complete "
                                f"({self.rows_unlabeled} without a target{dropped}): expected at least one complete "
                                "row")
        _check_values(where, self.names, self.columns, locate, self.new_rows, self.factors)


@dataclass
class _Column:
    """The range of one column's values, gathered block by block."""

    lowest: float = math.inf
    highest: float = -math.inf
    too_large: int = 0
    first_too_large: int = 0  # row index, from 0
    first_too_large_value: float = 0.0

    def add(self, values: np.ndarray, rows: int | np.ndarray) -> None:
        """Take in finite values: of rows `rows`, rows + 1, … (an int), or of the row indices `rows`."""
        if len(values):
            self.add_in_range(values, rows, values.min(), values.max())

    def add_in_range(self, values: np.ndarray, rows: int | np.ndarray, low: float, high: float) -> None:
        """add, with the values' least and greatest already found."""
        self.lowest, self.highest = min(self.lowest, float(low)), max(self.highest, float(high))
        if -LARGEST_VALUE <= low and high <= LARGEST_VALUE:
            return
        too_large = np.abs(values) > LARGEST_VALUE
        if not self.too_large:
            first = int(np.argmax(too_large))
            self.first_too_large = rows + first if isinstance(rows, int) else int(rows[first])
            self.first_too_large_value = float(values[first])
        self.too_large += int(np.count_nonzero(too_large))


def _check_values(where: str, names: list[str], columns: list[_Column], locate: Callable[[int], str],
                  new_rows: bool = False, factors: "set[str] | None" = None) -> None:
    """Every value within ±LARGEST_VALUE, and no feature constant (unless new_rows: rows to predict, one of
    which may be all there is)."""
    for j, (name, column) in enumerate(zip(names, columns)):
        is_feature = j < len(names) - 1
        if column.too_large:
            raise PipelineError(
                f"{where}: column {show(name)} has {counted(column.too_large, 'value')} beyond "
                f"±{LARGEST_VALUE:g} (first at {locate(column.first_too_large)}: {column.first_too_large_value:g}): "
                f"expected |value| <= {LARGEST_VALUE:g}"
            )
        if is_feature and not new_rows and column.lowest == column.highest and name not in (factors or ()):
            raise PipelineError(
                f"{where}: feature {show(name)} is constant (every row is {column.lowest!r}): "
                "expected at least two distinct values"
            )


def _hint(text: str) -> str:
    if re.fullmatch(r"\s*[+-]?\d*,\d+([eE][+-]?\d+)?\s*", text):
        return " (a decimal point, not a comma)"
    return ""
