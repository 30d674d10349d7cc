"""Where the pipeline's files live, and how they are read (with clear errors) and written (atomically)."""

import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet

from pipeline.errors import PipelineError, os_problem, outputs_written
from pipeline.guard import guard, note_input

# Paths are relative to the repository root, where DVC runs every stage. dvc.yaml spells out the same
# paths as deps and outs; tests/unit/test_dvc_yaml.py checks that the two agree. The table a model is fitted
# to is data.source in params.yaml: POINTS by default.
POINTS = Path("data/points.parquet")
TRUTH = Path("data/truth.json")
MODEL = Path("models/model.safetensors")
OLS = Path("models/ols.safetensors")  # the least-squares fit and what intervals need (evaluate)
HISTORY = Path("metrics/history.csv")
METRICS = Path("metrics/metrics.json")
PLOT_DATA = Path("plots/data.png")
PLOT_LOSS = Path("plots/loss.png")
PLOT_FIT = Path("plots/fit.png")
PLOT_PARAMETERS = Path("plots/parameters.png")
PLOT_RESIDUALS = Path("plots/residuals.png")
PLOT_COEFFICIENTS = Path("plots/coefficients.png")
# The coefficients (standardised) and the intercept per epoch beside least squares, for dvc.yaml's
# interactive charts: drawn from the history by visualize.
CHART_COEFFICIENTS = Path("plots/coefficients.csv")
CHART_INTERCEPT = Path("plots/intercept.csv")

# Rows per Parquet row group that synthesize writes; streaming readers take a table one row group at a time.
# It is also pyarrow's own default, so a table of any size is written as pyarrow.parquet.write_table would.
GROUP_ROWS = 1 << 20
GROUP_CELLS = 1 << 23  # values per group at most (64 MiB of float64): a wide table's groups hold fewer rows
BLOCK_CELLS = 1 << 17  # values of a row-major matrix that a loop over its columns works on at a time (row_blocks)


def rows_per_group(width: int) -> int:
    """GROUP_ROWS, halved until a group of `width` columns holds at most GROUP_CELLS values: up to 8 columns
    (the tutorial's points, a few features) every group is GROUP_ROWS rows."""
    rows = GROUP_ROWS
    while rows > 1 and rows * width > GROUP_CELLS:
        rows //= 2
    return rows


def row_blocks(n_rows: int, width: int) -> Iterator[slice]:
    """Consecutive rows of an (n_rows, width) row-major matrix, about BLOCK_CELLS values (at least 1,024 rows)
    at a time. A loop over its columns, which are strided, then runs over one block's cache lines at a time:
    over whole columns it ran through all of them once per column (a prediction from 500 columns of 50,000
    rows took 0.21 s, against 0.06 s a block at a time; 20 columns of 10^6 rows, 0.15 s against 0.03 s)."""
    step = max(1024, BLOCK_CELLS // max(1, width))
    return (slice(start, min(start + step, n_rows)) for start in range(0, n_rows, step))


# --- The one writer (pipeline/guard.py says where it may write) ---------------------------------------

@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`, renamed to `path` only when the block succeeds.

    An interrupted stage thus never leaves a half-written file under a final name; a temporary file
    left by a killed process matches the `.*.tmp` pattern that .gitignore ignores. The rename replaces a
    link (DVC's symlink cache) rather than writing through it. An OS error while writing (a full disk, a
    read-only folder) is one line that names `path`, the temporary file removed and the old file intact.
    """
    guard(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            yield temporary
            os.replace(temporary, path)
        except OSError as error:
            if error.errno is None or (error.filename is not None and str(error.filename) not in (
                    str(temporary), str(path), str(path.parent))):
                raise  # not the system's answer to this write: a read inside the block, or a bug
            raise PipelineError(f"{os_problem(path, error)}; {path} left as it was") from None
        outputs_written.append(path)
    finally:
        with suppress(OSError):
            temporary.unlink(missing_ok=True)


def move_into_place(staged: Path, path: Path) -> None:
    """Rename a file finished elsewhere in the repository (train's processes write into a folder of their own)."""
    guard(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, path)
    except OSError as error:
        raise PipelineError(f"{os_problem(path, error)}; {path} left as it was") from None
    outputs_written.append(path)


def write_json(path: Path, values: Mapping[str, Any]) -> None:
    """Write nested objects of numbers, booleans and strings; a non-finite number writes nothing."""
    for key, value in _leaves(values):
        if isinstance(value, float) and not math.isfinite(value):
            raise PipelineError(f"{path}: {key} = {value}: expected a finite number; nothing written")
    with atomic_output(path) as temporary:
        temporary.write_text(json.dumps(values, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object written by write_json."""
    try:
        values = json.loads(read_bytes(path))
    except ValueError as error:
        raise PipelineError(f"{path}: not valid JSON ({_first_line(error)})") from None
    if not isinstance(values, dict):
        raise PipelineError(f"{path}: holds {type(values).__name__}: expected a JSON object")
    return values


def numbers(path: Path, values: Mapping[str, Any], keys: Iterable[str]) -> dict[str, float]:
    """The finite numbers `keys` of a JSON object read from `path`."""
    found = {}
    for key in keys:
        value = values.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            shown = "missing" if key not in values else f"= {json.dumps(value)}"
            raise PipelineError(f"{path}: {key} {shown}: expected a finite number")
        found[key] = float(value)
    return found


def write_table(path: Path, columns: Mapping[str, np.ndarray]) -> None:
    """Write float64 columns as a Parquet file."""
    with TableWriter(path, tuple(columns)) as writer:
        writer.write(columns)


class TableWriter:
    """Write float64 columns as a Parquet file, piece by piece, in row groups of exactly `group_rows` rows
    (by default rows_per_group of their number).

    Rows are buffered until a whole group is ready (every ParquetWriter.write_table call starts a new
    group), so pieces of any lengths give the same bytes. A finished group is encoded and written by a
    thread of its own while the caller fills the next (pyarrow lets go of the GIL): memory holds two groups
    at most, and the groups reach the file in order, so the bytes are those of writing them one by one. The
    file appears under `path` only when the `with` block succeeds.
    """

    def __init__(self, path: Path, names: Sequence[str], group_rows: int | None = None,
                 labels: Mapping[str, Sequence[str]] | None = None) -> None:
        group_rows = group_rows or rows_per_group(len(names))
        if group_rows < 1:
            raise ValueError(f"group_rows = {group_rows}: expected at least 1")
        self.path = path
        self.names = tuple(names)
        self.group_rows = group_rows
        self._labels = _label_arrays(labels)
        self._schema = _schema(self.names, self._labels)
        self._group: list[np.ndarray] = []
        self._spare: list[np.ndarray] = []  # the group being written, free again once it is
        self._filled = 0
        self._exits = ExitStack()
        self._pending: Future[None] | None = None

    def __enter__(self) -> "TableWriter":
        with ExitStack() as exits:
            temporary = exits.enter_context(atomic_output(self.path))
            self._writer = exits.enter_context(pyarrow.parquet.ParquetWriter(temporary, self._schema))
            # Last in, so first out: every group written before the file is closed and renamed.
            self._background = exits.enter_context(ThreadPoolExecutor(1, thread_name_prefix="parquet"))
            self._exits = exits.pop_all()
        self._group, self._spare = self._empty_group(), []
        self._filled = 0
        self._pending = None
        return self

    def _empty_group(self) -> list[np.ndarray]:
        return [np.empty(self.group_rows, dtype=LABEL_CODES if name in self._labels else np.float64)
                for name in self.names]

    def write(self, columns: Mapping[str, np.ndarray]) -> None:
        """Append rows: one array of equal length for each name, in any order."""
        if sorted(columns) != sorted(self.names):
            raise ValueError(f"columns {list(columns)}: expected {list(self.names)}")
        pieces = [np.asarray(columns[name], dtype=LABEL_CODES if name in self._labels else np.float64)
                  for name in self.names]
        n_rows = len(pieces[0])
        if any(piece.shape != (n_rows,) for piece in pieces):
            raise ValueError(f"column shapes {[piece.shape for piece in pieces]}: expected one length")
        start = 0
        while start < n_rows:
            taken = min(self.group_rows - self._filled, n_rows - start)
            for span in row_blocks(taken, len(pieces)):  # the pieces are often the columns of one matrix
                into = slice(self._filled + span.start, self._filled + span.stop)
                for group, piece in zip(self._group, pieces):
                    group[into] = piece[start + span.start:start + span.stop]
            self._filled += taken
            start += taken
            if self._filled == self.group_rows:
                self._write_group()

    def __exit__(self, kind, error, traceback) -> None:
        try:
            if kind is not None:  # close the writer and remove the file, never renamed
                self._exits.__exit__(kind, error, traceback)
                return
            with self._exits:  # the last, shorter group; then close the writer and rename the file
                if self._filled:
                    self._write_group()
                self._written()
        finally:
            self._group = self._spare = []

    def _write_group(self) -> None:
        """Hand the group to the writing thread, once the one before is written (its error raised here). Its
        Arrow columns are made here, a share of the work for the caller's thread; they view the group's arrays,
        which are filled again only once the thread is done with them."""
        table = pa.table([_arrow_column(name, values[:self._filled], self._labels) for name, values
                          in zip(self.names, self._group)], schema=self._schema)
        self._written()
        self._pending = self._background.submit(self._writer.write_table, table, row_group_size=self.group_rows)
        self._group, self._spare = self._spare or self._empty_group(), self._group
        self._filled = 0

    def _written(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()


class CsvWriter:
    """Write float64 columns as a CSV file with a header row, piece by piece, as TableWriter writes Parquet:
    the same bytes whatever the pieces, and the file under `path` only when the `with` block succeeds."""

    def __init__(self, path: Path, names: Sequence[str], labels: Mapping[str, Sequence[str]] | None = None) -> None:
        self.path = path
        self.names = tuple(names)
        self._labels = _label_arrays(labels)
        self._schema = _schema(self.names, self._labels)
        self._exits = ExitStack()

    def __enter__(self) -> "CsvWriter":
        with ExitStack() as exits:
            temporary = exits.enter_context(atomic_output(self.path))
            file = exits.enter_context(temporary.open("wb"))
            file.write((csv_header(self.names) + "\n").encode())  # quoted where a name needs it
            options = pyarrow.csv.WriteOptions(include_header=False)
            self._writer = exits.enter_context(pyarrow.csv.CSVWriter(file, self._schema, write_options=options))
            self._exits = exits.pop_all()
        return self

    def write(self, columns: Mapping[str, np.ndarray]) -> None:
        """Append rows: one array of equal length for each name, in any order."""
        if sorted(columns) != sorted(self.names):
            raise ValueError(f"columns {list(columns)}: expected {list(self.names)}")
        self._writer.write_table(pa.table([_arrow_column(name, columns[name], self._labels) for name in self.names],
                                          schema=self._schema))

    def __exit__(self, kind, error, traceback) -> None:
        self._exits.__exit__(kind, error, traceback)


def table_writer(path: Path, names: Sequence[str],
                 labels: Mapping[str, Sequence[str]] | None = None) -> "TableWriter | CsvWriter":
    """A writer of float64 columns in the format the path's extension names: .csv, or else Parquet. A column
    named in `labels` is text: it is given as codes, each the index of its label."""
    if path.suffix.lower() == ".csv":
        return CsvWriter(path, names, labels)
    return TableWriter(path, names, labels=labels)


def _label_arrays(labels: Mapping[str, Sequence[str]] | None) -> dict[str, pa.Array]:
    return {name: pa.array(list(values), type=pa.string()) for name, values in (labels or {}).items()}


# A text column is written as Arrow's dictionary of its labels (pandas reads it as a categorical): faster to
# write than the strings themselves, and CSV writes the labels. int32: a factor may have many levels; a
# negative code is an empty cell.
LABEL_CODES = np.int32


def _schema(names: Sequence[str], labels: Mapping[str, pa.Array]) -> pa.Schema:
    text = pa.dictionary(pa.from_numpy_dtype(LABEL_CODES), pa.string())
    return pa.schema([(name, text if name in labels else pa.float64()) for name in names])


def _arrow_column(name: str, values: np.ndarray, labels: Mapping[str, pa.Array]) -> pa.Array:
    """A text column from its codes; a float64 column with NaN written as null (an empty cell in CSV)."""
    if name in labels:
        codes = np.asarray(values, dtype=LABEL_CODES)
        return pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), labels[name])
    # from_pandas scans every value for NaN (0.2 s of predict's main thread at 10^7 rows), yet handing pyarrow a
    # view of a column without NaN made predict's writes slower at 5·10^7 rows (18-22 s against 14-16 s, three
    # times the system time in write()), and a copy of it gained nothing.
    return pa.array(np.asarray(values, dtype=np.float64), from_pandas=True)


def write_history(path: Path, history: Mapping[str, np.ndarray]) -> None:
    """Write the per-epoch history as CSV; float32 values keep their shortest exact spelling."""
    table = pa.table(dict(history))
    with atomic_output(path) as temporary:
        write_csv(table, temporary)


def write_csv(table: pa.Table, path: Path) -> None:
    """A table as CSV, its header quoted only where a name needs it (a comma, a quote: a factor's level), so that
    the header of plain names keeps its bytes."""
    with path.open("wb") as file:
        file.write((csv_header(table.column_names) + "\n").encode())
        pyarrow.csv.write_csv(table, file, pyarrow.csv.WriteOptions(include_header=False))


def csv_header(names: Sequence[str]) -> str:
    """The header row as RFC 4180 spells it: a name with a comma, a quote or a line break in quotes, its quotes
    doubled."""
    return ",".join(f'"{name.replace(chr(34), chr(34) * 2)}"' if any(mark in name for mark in ',"\r\n') else name
                    for name in names)


def read_history(path: Path, columns: Iterable[str]) -> dict[str, np.ndarray]:
    """Read `columns` of the training history as float64."""
    columns = list(columns)
    require_file(path)
    try:
        table = pyarrow.csv.read_csv(path)
    except (pa.ArrowException, OSError) as error:
        raise PipelineError(f"{path}: not a readable CSV file ({_first_line(error)})") from None
    missing = [name for name in columns if name not in table.column_names]
    if missing or table.num_rows < 1:
        raise PipelineError(f"{path}: expected a header with {','.join(columns)} and at least one row")
    try:
        return {name: table.column(name).to_numpy().astype(np.float64) for name in columns}
    except (pa.ArrowException, ValueError) as error:
        raise PipelineError(f"{path}: expected numbers in every column ({_first_line(error)})") from None


def require_file(path: Path) -> None:
    """An input must exist before it is read: say which one is missing, and how to make it."""
    note_input(path)
    if not path.is_file():
        raise PipelineError(f"{path}: not found: expected the output of an earlier stage (run `dvc repro`)")


def read_bytes(path: Path) -> bytes:
    require_file(path)
    try:
        return path.read_bytes()
    except OSError as error:
        raise PipelineError(f"{path}: cannot read it ({error.strerror})") from None


def _leaves(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) for every value below nested objects, as `dvc metrics show` names them."""
    for key, value in values.items():
        if isinstance(value, Mapping):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
