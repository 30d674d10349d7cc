"""Read the named numeric columns of a user's CSV or Parquet table, with one-line errors, and split its rows.

The table is hostile until proven otherwise: every problem is a PipelineError that reads
`<path>: <what was found>: expected <what is needed>`. Reading is vectorised (pyarrow's multi-threaded
readers, numpy checks); the slower work of finding *where* a problem lies runs only once one is found.
"""

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv
import pyarrow.parquet

from pipeline.errors import PipelineError
from pipeline.params import DataParams
from pipeline.schema import (
    CSV_PARSE, CSV_SUFFIXES, SNIFF_BYTES, arrow_message, check_header, column_names, counted, header_names,
    is_numeric, require_file, show, show_type, where_of,
)
from pipeline.rows import (
    CHUNK_ROWS, WHOLE, Part, Rows, Share, Source, Table, chunks, concatenate, groups_of, held_out, share_of,
    with_powers,
)

# |value| above this is refused: squared errors must stay finite in float32 (3.4e38), and every integer
# up to it is exact in float64 (2**53 is about 9.0e15).
LARGEST_VALUE = 1e15

_SCAN_BYTES = 1 << 24  # block of the file scanned at a time to number its lines
_COLUMNS_PER_READ = 64  # of a Parquet row group decoded at once


# data.missing: what to do with a row that has a missing (empty, NA, NaN or infinite) value in a used column.
MISSING_ERROR = "error"  # refuse the table, naming every column with one
MISSING_DROP = "drop"  # leave the row out: the table is its complete rows, in every stage


def open_table(path: Path, features: Sequence[str], target: str, check: bool = True,
               missing: str = MISSING_ERROR) -> Source:
    """The named numeric columns of a CSV (header row) or Parquet file, told apart by extension, checked.

    A Parquet file is checked in one pass, one row group at a time, and read again group by group as the
    stages need it; a CSV file is read whole.
    """
    return open_rows(path, features, target, check, missing)[0]


def open_rows(path: Path, features: Sequence[str], target: str, check: bool = True,
              missing: str = MISSING_ERROR) -> tuple[Source, int]:
    """open_table, and how many rows missing="drop" left out (0 with "error", which refuses such rows)."""
    if missing not in (MISSING_ERROR, MISSING_DROP):
        raise ValueError(f"missing={missing!r}: expected {MISSING_ERROR!r} or {MISSING_DROP!r}")
    if isinstance(features, str):
        raise TypeError(f"features: expected a sequence of column names, not the string {features!r}")
    path = Path(path)
    return _open(path, _check_request(where_of(path), list(features), target), check, missing)


def open_new_rows(path: Path, features: Sequence[str], target: str) -> tuple[Source, bool]:
    """Rows to predict, and whether they hold the target: open_table's checks, but the target is read only
    if the header has it (else each Table's target is zeros, never read) and a feature may be constant (one
    row is)."""
    path = Path(path)
    has_target = target in column_names(path)
    names = _check_request(where_of(path), list(features), target)
    if not has_target:
        names = names[:-1]
    return _open(path, names, True, MISSING_ERROR, has_target=has_target, new_rows=True)[0], has_target


def _open(path: Path, names: list[str], check: bool, missing: str, has_target: bool = True,
          new_rows: bool = False) -> tuple[Source, int]:
    where = where_of(path)
    require_file(where, path)
    if path.suffix.lower() in CSV_SUFFIXES:
        return _read_csv(where, path, names, missing, has_target, new_rows)
    return ParquetTable.open(where, path, names, check, missing, has_target, new_rows)


def read_table(path: Path, features: Sequence[str], target: str, missing: str = MISSING_ERROR) -> Table:
    """The whole table in memory: open_table for tables that fit."""
    return gather(open_table(path, features, target, missing=missing))


def gather(rows) -> Table:
    """Every row of `rows` (a Source or a Part) as one Table in memory."""
    pieces = list(chunks(rows))
    if not pieces:
        return Table(np.empty((0, 0)), np.empty(0))
    return concatenate(pieces)


def split_rows(n_rows: int, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of held-out (test) rows: the same rows for the same arguments, on any machine."""
    if n_rows < 0 or not 0 <= test_fraction < 1:
        raise ValueError(f"split_rows({n_rows}, {test_fraction}, ...): expected n_rows >= 0, 0 <= test_fraction < 1")
    return held_out(n_rows, test_fraction, seed)


def require_enough_training_rows(path: Path, n_train: int, n_coefficients: int) -> None:
    """A fit needs more training rows than coefficients: with as many, no degree of freedom is left for a
    standard error."""
    if n_train < n_coefficients + 1:
        left = " (no degrees of freedom left for a standard error)" if n_train == n_coefficients else ""
        raise PipelineError(
            f"{where_of(Path(path))}: {n_train} training rows{left}: expected at least {n_coefficients + 1} "
            f"(one more than the {n_coefficients} coefficients); add rows or lower data.test_fraction"
        )


# --- What was asked for, and whether the file is there -------------------------------------------------


@dataclass(frozen=True)
class Split:
    """The rows of data.source a model is fitted to (train) and the rows held out (test)."""

    source: Path
    train: Rows
    test: Rows | None  # None when data.test_fraction is 0
    rows_dropped: int = 0  # rows of data.source left out by data.missing: drop


def load_split(data: DataParams, fit_intercept: bool, check: bool = True) -> Split:
    """Open data.source and split its rows (with data.missing: drop, its complete rows): the same rows in every
    stage, on every machine. check=False skips the pass over a Parquet file's values, for a process whose
    parent has made it."""
    source = Path(data.source)
    table, rows_dropped = open_rows(source, data.features, data.target, check, data.missing)
    table = with_powers(table, data.degree)
    train = Part(table, False, data.test_fraction, data.split_seed)
    test = Part(table, True, data.test_fraction, data.split_seed)
    require_enough_training_rows(source, len(train), len(data.columns) + int(fit_intercept))
    return Split(source, train, test if len(test) else None, rows_dropped)


def _check_request(where: str, features: list[str], target: str) -> list[str]:
    """The columns to read, features first then the target; each named once."""
    if not features:
        raise PipelineError(f"{where}: no features requested: expected at least one feature column")
    for name in features:
        if features.count(name) > 1:
            raise PipelineError(
                f"{where}: feature {show(name)} is listed {features.count(name)} times: expected each feature once"
            )
    if target in features:
        raise PipelineError(
            f"{where}: target {show(target)} is also a feature: expected a target apart from the features"
        )
    return [*features, target]


# --- CSV -----------------------------------------------------------------------------------------------


def _read_csv(where: str, path: Path, names: list[str], missing: str, has_target: bool = True,
              new_rows: bool = False) -> tuple[Table, int]:
    header = _csv_header(where, path, names)
    try:
        table = pyarrow.csv.read_csv(
            path,
            parse_options=CSV_PARSE,
            convert_options=pyarrow.csv.ConvertOptions(
                include_columns=names, column_types=dict.fromkeys(names, pa.float64())
            ),
        )
    except (pa.ArrowException, OSError) as error:
        raise _csv_problem(where, path, header, names, error) from None
    if table.num_rows == 0:
        raise PipelineError(f"{where}: has no rows: expected a header row, then at least one row of numbers")
    features, target = _to_float64(table, names, has_target)
    values = _Values(names)
    # Block by block, so that the temporaries of the checks stay small beside the table.
    masks = []
    for start in range(0, len(target), CHUNK_ROWS):
        block = slice(start, start + CHUNK_ROWS)
        mask = values.add(features[block], target[block])
        masks.append(np.ones(len(target[block]), dtype=bool) if mask is None else mask)
    values.check(where, missing, lambda row: f"line {_csv_line(path, row)}", new_rows)
    if not values.rows_missing:
        return Table(features, target), 0
    complete = np.concatenate(masks)
    return Table(features[complete], target[complete]), values.rows_missing


def _csv_header(where: str, path: Path, names: list[str]) -> list[str]:
    """The column names, from the first block of the file only; each requested one must be there once."""
    try:
        header = header_names(where, path)
    except (pa.ArrowException, OSError) as error:
        if "Empty CSV file" not in str(error):
            raise _csv_problem(where, path, [], [], error) from None
        # pyarrow says the same of blank lines and of a header with no line break after it.
        with path.open("rb") as file:
            head = file.read(SNIFF_BYTES)
        if not head.strip(b"\r\n"):
            raise PipelineError(
                f"{where}: holds only blank lines: expected a header row, then rows of numbers"
            ) from None
        try:
            header = header_names(where, pa.BufferReader(head + b"\n"))
        except (pa.ArrowException, OSError):
            raise PipelineError(
                f"{where}: no complete header row (a quote left open?): expected a header row, then rows of numbers"
            ) from None
        check_header(where, header, names)
        raise PipelineError(f"{where}: has no rows: expected a header row, then at least one row of numbers") from None
    check_header(where, header, names)
    return header


def _csv_problem(where: str, path: Path, header: list[str], names: list[str], error: Exception) -> PipelineError:
    """Say where pyarrow's complaint lies: a value that is not a number, or a ragged row."""
    # Look first in the column pyarrow names, if it does: each look reads the file again.
    named = re.search(r"In CSV column #(\d+)", str(error))
    if named and int(named.group(1)) < len(header) and header[int(named.group(1))] in names:
        names = sorted(names, key=lambda name: name != header[int(named.group(1))])
    bad = _first_non_number(path, names)
    if bad is not None:
        name, row, text = bad
        return PipelineError(
            f"{where}: column {show(name)} line {_csv_line(path, row)} holds {show(text)}: "
            f"expected a number{_hint(text)}"
        )
    ragged = _first_ragged_row(path, header[:1])
    if ragged is not None:
        row, n_fields, n_expected = ragged
        return PipelineError(
            f"{where}: line {_csv_line(path, row)} has {counted(n_fields, 'field')}: "
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
        pyarrow.csv.read_csv(
            path, read_options=pyarrow.csv.ReadOptions(use_threads=False), parse_options=CSV_PARSE,
            convert_options=convert,
        )
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
            cells = pyarrow.csv.read_csv(
                path,
                parse_options=CSV_PARSE,
                # The same cells as the float64 read counts as empty are empty here too.
                convert_options=pyarrow.csv.ConvertOptions(
                    include_columns=[name], column_types={name: pa.binary()}, strings_can_be_null=True
                ),
            ).column(name)
        except (pa.ArrowException, OSError):
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


def _csv_line(path: Path, row: int) -> int:
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


# --- Parquet -------------------------------------------------------------------------------------------


class ParquetTable:
    """A checked Parquet file, read one row group at a time: memory for a row group, whatever the file's size."""

    def __init__(self, where: str, path: Path, names: list[str], group_rows: list[int], drop: bool = False,
                 has_target: bool = True):
        """group_rows: the rows of each row group the table holds; with drop, only the complete ones, and
        each read leaves out the others again. Without has_target, names are the features alone."""
        self.where, self.path, self.names, self.drop, self.has_target = where, path, names, drop, has_target
        self._starts = np.concatenate([[0], np.cumsum(group_rows, dtype=np.int64)]).tolist()
        self._file: pyarrow.parquet.ParquetFile | None = None  # opened at the first read, kept for the rest
        # The last span read, and its rows: the passes of a stage over a file of one row group (a wide table's,
        # often) then decode it once, not once per pass; memory for one row group, as each pass takes anyway.
        self._last: tuple[tuple[int, int], Table] | None = None

    @classmethod
    def open(cls, where: str, path: Path, names: list[str], check: bool = True, missing: str = MISSING_ERROR,
             has_target: bool = True, new_rows: bool = False) -> tuple["ParquetTable", int]:
        """Check the schema, then every value, in one pass over the row groups; the table and how many rows
        missing="drop" left out. check=False skips the pass where nothing needs counting (missing="error")."""
        try:
            with pyarrow.parquet.ParquetFile(path) as file:
                schema = file.schema_arrow
                check_header(where, schema.names, names)
                for name in names:
                    kind = schema.field(name).type
                    if not is_numeric(kind):
                        raise PipelineError(
                            f"{where}: column {show(name)} holds {show_type(kind)}: "
                            "expected numbers (an integer or floating-point column)"
                        )
                n_rows = file.metadata.num_rows
                if n_rows == 0:
                    raise PipelineError(f"{where}: has no rows: expected at least one row")
                group_rows = [file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)]
                if not check and missing == MISSING_ERROR:
                    return cls(where, path, names, group_rows, has_target=has_target), 0
                values = _Values(names)
                complete_rows = []
                whole = None  # a file of one complete row group: its rows, kept for the stage's first pass
                for i in range(file.num_row_groups):
                    features, target = _read_group(file, i, names, has_target)
                    if len(target) != group_rows[i]:
                        break
                    complete = values.add(features, target)
                    complete_rows.append(len(target) if complete is None else int(np.count_nonzero(complete)))
                    if file.num_row_groups == 1 and complete is None:
                        whole = Table(features, target)
                if values.n_rows != n_rows or sum(group_rows) != n_rows:
                    raise PipelineError(f"{where}: its row groups do not hold the {n_rows} rows its footer says: "
                                        "expected a whole file")
        except (pa.ArrowException, OSError) as error:
            raise _unreadable(where, error) from None
        values.check(where, missing, lambda row: f"row index {row}", new_rows)
        table = cls(where, path, names, complete_rows, missing == MISSING_DROP, has_target)
        if whole is not None:
            table.keep((0, len(whole)), whole)
        return table, values.rows_missing

    def __len__(self) -> int:
        return self._starts[-1]

    def spans(self, share: Share = WHOLE) -> list[tuple[int, int]]:
        """Each row group's rows within the share."""
        start, stop = share_of(len(self), share)
        return [(max(a, start), min(b, stop)) for a, b in zip(self._starts, self._starts[1:])
                if max(a, start) < min(b, stop)]

    def read(self, span: tuple[int, int]) -> Table:
        if self._last is not None and self._last[0] == span:
            return self._last[1]
        start, stop = span
        first = int(np.searchsorted(self._starts, start, side="right")) - 1
        pieces = []
        try:
            # One handle for every read: opening parses the footer, which grows with the row groups (1.4 ms
            # for 954 of them, against 0.13 ms to read one small group).
            self._file = self._file or pyarrow.parquet.ParquetFile(self.path)
            group = first
            while self._starts[group] < stop:
                features, target = _read_group(self._file, group, self.names, self.has_target)
                complete = _complete_rows(features, target) if self.drop else None
                if complete is not None:
                    features, target = features[complete], target[complete]
                low = max(start, self._starts[group]) - self._starts[group]
                high = min(stop, self._starts[group + 1]) - self._starts[group]
                pieces.append(Table(features[low:high], target[low:high]))
                group += 1
        except (pa.ArrowException, OSError) as error:
            raise _unreadable(self.where, error) from None
        return self.keep(span, concatenate(pieces))

    def keep(self, span: tuple[int, int], table: Table) -> Table:
        """Remember the rows of `span` for the next read of it; read-only, since every pass shares them."""
        table.features.flags.writeable = table.target.flags.writeable = False
        self._last = (span, table)
        return table

    def groups(self, share: Share = WHOLE) -> list[Callable[[], Table]]:
        return groups_of(self, share)


def _read_group(file: pyarrow.parquet.ParquetFile, group: int, names: list[str],
                has_target: bool) -> tuple[np.ndarray, np.ndarray]:
    """Row group `group` as _to_float64 gives it, decoded _COLUMNS_PER_READ columns at a time: Arrow then holds
    a slice of a wide group beside the float64 copy, not all of it (fewer rows than the footer says, if the
    file is cut short)."""
    first = file.read_row_group(group, columns=names[:_COLUMNS_PER_READ])
    if len(names) <= _COLUMNS_PER_READ:
        return _to_float64(first, names, has_target)
    features, target = _float64_arrays(first.num_rows, len(names) - has_target, has_target)
    columns = [features[:, j] for j in range(features.shape[1])] + [target] * has_target
    for start in range(0, len(names), _COLUMNS_PER_READ):
        batch = names[start:start + _COLUMNS_PER_READ]
        table = first if start == 0 else file.read_row_group(group, columns=batch)
        if table.num_rows != first.num_rows:  # cut short: the caller's count of rows says so
            return features[:0], target[:0]
        _fill(table, batch, columns[start:start + len(batch)])
    return features, target


def _unreadable(where: str, error: Exception) -> PipelineError:
    return PipelineError(
        f"{where}: not a readable Parquet file ({arrow_message(error)}): expected a complete Parquet file")


# --- Shared by both formats ----------------------------------------------------------------------------


def _to_float64(table: pa.Table, names: list[str], has_target: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The features side by side, (n, d) C-contiguous, and the target, as float64 (empty cells as NaN; where
    the names hold no target, NaN: unknown)."""
    features, target = _float64_arrays(table.num_rows, len(names) - has_target, has_target)
    _fill(table, names, [features[:, j] for j in range(features.shape[1])] + [target] * has_target)
    return features, target


def _float64_arrays(n_rows: int, n_features: int, has_target: bool) -> tuple[np.ndarray, np.ndarray]:
    target = np.empty(n_rows, dtype=np.float64) if has_target else np.full(n_rows, np.nan)
    return np.empty((n_rows, n_features), dtype=np.float64), target


def _fill(table: pa.Table, names: list[str], columns: list[np.ndarray]) -> None:
    """Each named column of `table` into its float64 array."""
    for j, name in enumerate(names):
        row = 0
        for chunk in table.column(name).chunks:
            if chunk.type != pa.float64():
                # Integers up to LARGEST_VALUE convert exactly; beyond it they are refused anyway.
                chunk = pc.cast(chunk, pa.float64(), safe=False)
            numbers = chunk.to_numpy(zero_copy_only=False)
            columns[j][row : row + len(numbers)] = numbers
            row += len(numbers)


def _complete_rows(features: np.ndarray, target: np.ndarray | None) -> np.ndarray | None:
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


class _Values:
    """What the checks need to know of a table's values, gathered block by block: the rows with a missing
    value and in which columns, and the range of each column over the complete rows."""

    def __init__(self, names: list[str]):
        self.names = names
        self.columns = [_Column() for _ in names]
        self.missing_by_column = np.zeros(len(names), dtype=np.int64)
        self.n_rows = 0
        self.rows_missing = 0
        self.first_missing = 0  # row index, from 0

    def add(self, features: np.ndarray, target: np.ndarray) -> np.ndarray | None:
        """Take in the table's next rows; the mask of the complete ones, None when all of them are."""
        offset = self.n_rows
        self.n_rows += len(target)
        has_target = len(self.names) > features.shape[1]  # rows to predict may have none
        columns = [features[:, j] for j in range(features.shape[1])] + [target] * has_target
        complete = _complete_rows(features, target if has_target else None)
        if complete is None:
            for column, values in zip(self.columns, columns):
                column.add(values, offset)
            return None
        if not self.rows_missing:
            self.first_missing = offset + int(np.argmin(complete))
        self.rows_missing += len(complete) - int(np.count_nonzero(complete))
        rows = offset + np.flatnonzero(complete)
        for j, (column, values) in enumerate(zip(self.columns, columns)):
            self.missing_by_column[j] += len(values) - int(np.count_nonzero(np.isfinite(values)))
            column.add(values[complete], rows)
        return complete

    def check(self, where: str, missing: str, locate: Callable[[int], str], new_rows: bool = False) -> None:
        """No missing value (unless missing is "drop", which leaves such rows out), every value within
        ±LARGEST_VALUE, and no feature constant; `locate` names the line of a row."""
        if self.rows_missing:
            counts = [(name, count) for name, count in zip(self.names, self.missing_by_column) if count]
            found = (f"a missing value (empty, NA, NaN or infinite) in {'column' if len(counts) == 1 else 'columns'} "
                     + ", ".join(f"{show(name)} ({count})" for name, count in counts))
            if missing == MISSING_ERROR:
                rows = "1 row has" if self.rows_missing == 1 else f"{self.rows_missing} rows have"
                # Rows to predict are never dropped: each row of the source has its row of predictions.
                hint = "" if new_rows else f", or data.missing: {MISSING_DROP} to leave such rows out"
                raise PipelineError(
                    f"{where}: {rows} {found}, the first at {locate(self.first_missing)}: expected a number "
                    f"in every used column{hint}"
                )
            if self.rows_missing == self.n_rows:
                raise PipelineError(f"{where}: every one of its {counted(self.n_rows, 'row')} has {found}: "
                                    "expected at least one complete row")
        _check_values(where, self.names, self.columns, locate, new_rows)


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
        if not len(values):
            return
        low, high = values.min(), values.max()
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
                  new_rows: bool = False) -> None:
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
        if is_feature and not new_rows and column.lowest == column.highest:
            raise PipelineError(
                f"{where}: feature {show(name)} is constant (every row is {column.lowest!r}): "
                "expected at least two distinct values"
            )


def _hint(text: str) -> str:
    if re.fullmatch(r"\s*[+-]?\d*,\d+([eE][+-]?\d+)?\s*", text):
        return " (a decimal point, not a comma)"
    return ""


