"""Where the pipeline's files live, and how they are read (with clear errors) and written (atomically)."""

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet

from pipeline.errors import PipelineError

# Paths are relative to the repository root, where DVC runs every stage. dvc.yaml spells out the same
# paths as deps and outs; tests/test_dvc_yaml.py checks that the two agree.
POINTS = Path("data/points.parquet")
TRUTH = Path("data/truth.json")
MODEL = Path("models/model.pt")
HISTORY = Path("metrics/history.csv")
METRICS = Path("metrics/metrics.json")
PLOT_DATA = Path("plots/data.png")
PLOT_LOSS = Path("plots/loss.png")
PLOT_FIT = Path("plots/fit.png")
PLOT_PARAMETERS = Path("plots/parameters.png")

HISTORY_COLUMNS = ("epoch", "loss", "m", "c")

# The largest |x| or |y| the stages accept: far beyond what synthesize writes (|y| up to about 1e12),
# and small enough that squared errors stay finite in train's float32.
LARGEST_COORDINATE = 1e15


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`, renamed to `path` only when the block succeeds.

    An interrupted stage thus never leaves a half-written file under a final name; a temporary file
    left by a killed process matches the `.*.tmp` pattern that .gitignore ignores.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_json(path: Path, values: Mapping[str, float]) -> None:
    for key, value in values.items():
        if not np.isfinite(value):
            raise PipelineError(f"{path}: {key} = {value}: expected a finite number; nothing written")
    with atomic_output(path) as temporary:
        temporary.write_text(json.dumps(values, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def read_json(path: Path, keys: tuple[str, ...]) -> dict[str, float]:
    """Read the finite numbers `keys` from a JSON object."""
    try:
        values = json.loads(_read_bytes(path))
    except ValueError as error:
        raise PipelineError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(values, dict):
        raise PipelineError(f"{path}: expected a JSON object with keys {', '.join(keys)}")
    for key in keys:
        if key not in values:
            raise PipelineError(f"{path}: {key} is missing: expected a finite number")
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise PipelineError(f"{path}: {key} = {json.dumps(value)}: expected a finite number")
    return {key: float(values[key]) for key in keys}


def write_points(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    table = pa.table({"x": pa.array(x, pa.float64()), "y": pa.array(y, pa.float64())})
    with atomic_output(path) as temporary:
        pyarrow.parquet.write_table(table, temporary)


def read_points(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read the float64 columns x and y; at least 2 rows, all finite and within ±LARGEST_COORDINATE."""
    require_file(path)
    try:
        table = pyarrow.parquet.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise PipelineError(f"{path}: not a readable Parquet file ({_first_line(error)})") from None
    columns = {}
    for name in ("x", "y"):
        if name not in table.column_names:
            found = ", ".join(table.column_names) or "none"
            raise PipelineError(f"{path}: column '{name}' is missing: expected columns x and y (found {found})")
        column = table.column(name)
        if column.type != pa.float64():
            raise PipelineError(f"{path}: column '{name}' holds {column.type}: expected double (float64)")
        if column.null_count:
            raise PipelineError(f"{path}: column '{name}' has {column.null_count} empty values: expected none")
        columns[name] = column.to_numpy()
        if not np.isfinite(columns[name]).all():
            bad = int(np.count_nonzero(~np.isfinite(columns[name])))
            raise PipelineError(f"{path}: column '{name}' has {bad} NaN or infinite values: expected finite numbers")
        huge = int(np.count_nonzero(np.abs(columns[name]) > LARGEST_COORDINATE))
        if huge:
            raise PipelineError(
                f"{path}: column '{name}' has {huge} values of magnitude above {LARGEST_COORDINATE:g}: "
                f"expected |{name}| <= {LARGEST_COORDINATE:g}"
            )
    if table.num_rows < 2:
        raise PipelineError(f"{path}: has {table.num_rows} row(s): expected at least 2 points")
    return columns["x"], columns["y"]


def write_history(path: Path, history: Mapping[str, np.ndarray]) -> None:
    """Write the per-epoch history as CSV; float32 values keep their shortest exact spelling."""
    table = pa.table({name: history[name] for name in HISTORY_COLUMNS})
    with atomic_output(path) as temporary:
        pyarrow.csv.write_csv(table, temporary, pyarrow.csv.WriteOptions(quoting_header="none"))


def read_history(path: Path) -> dict[str, np.ndarray]:
    """Read the columns epoch, loss, m and c of the training history."""
    require_file(path)
    try:
        table = pyarrow.csv.read_csv(path)
    except (pa.ArrowException, OSError) as error:
        raise PipelineError(f"{path}: not a readable CSV file ({_first_line(error)})") from None
    missing = [name for name in HISTORY_COLUMNS if name not in table.column_names]
    if missing or table.num_rows < 1:
        raise PipelineError(f"{path}: expected a header {','.join(HISTORY_COLUMNS)} and at least one row")
    try:
        return {name: table.column(name).to_numpy().astype(np.float64) for name in HISTORY_COLUMNS}
    except (pa.ArrowException, ValueError) as error:
        raise PipelineError(f"{path}: expected numbers in every column ({_first_line(error)})") from None


def require_file(path: Path) -> None:
    """An input must exist before it is read: say which one is missing, and how to make it."""
    if not path.is_file():
        raise PipelineError(f"{path}: not found: expected the output of an earlier stage (run `dvc repro`)")


def _read_bytes(path: Path) -> bytes:
    require_file(path)
    try:
        return path.read_bytes()
    except OSError as error:
        raise PipelineError(f"{path}: cannot read it ({error.strerror})") from None


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
