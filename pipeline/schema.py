"""A table's columns from its header alone (a Parquet file's schema; a CSV file's header and the types
pyarrow infers from its first block), and `data.features: all` resolved into their names.

Also the words every message about a table uses (where, a name shown short, a list of names), so that the
readers in dataset.py and this module say things the same way.
"""

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv
import pyarrow.parquet

from pipeline.errors import PipelineError, first_few
from pipeline.guard import note_input
from pipeline.params import ALL_FEATURES, MAX_FEATURES, RESERVED_NAMES, DataParams
from pipeline.terms import BOOL, NUMBER, TEXT

T = TypeVar("T")

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")

# Blank lines are skipped, a quoted value may hold a newline (a text column the request does not name
# may hold anything), and pyarrow's usual spellings of a missing value ("", NA, null, NaN, N/A...) are
# read as empty, so they are counted with NaN and ±inf rather than reported as text.
CSV_PARSE = pyarrow.csv.ParseOptions(newlines_in_values=True)
SNIFF_BYTES = 1 << 16  # read to tell binary data from text
# The longest line (a header or a row) of a CSV file read: pyarrow reads in blocks (1 MiB by default) that must
# each hold a whole line, so a longer line is read again with blocks 4 times larger, up to this (docs/own-data.md).
MAX_LINE_BYTES = 1 << 30
_SHOWN_CHARS = 32  # of one name or value in a message
_LISTED_CHARS = 100  # of a list of column names
_LISTED_MISSING = 5  # missing columns named in a message; the rest are counted
_ARROW_CHARS = 120  # of a message from pyarrow
_NAMED = 10  # columns named in the line that says which ones `all` skipped


# --- data.features: all --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    """data.features as names, and the line that says what `all` left out ("" for a list, or nothing left out).
    Resolving `all` reads the header and the text columns: `kinds` keeps what column_kinds would find, so that
    load_split does not read them again (None for a list)."""

    data: DataParams
    note: str = ""
    kinds: dict[str, str] | None = None


def resolve_features(data: DataParams) -> Resolved:
    """data with `features: all` replaced by every numeric, text and true/false column of data.source but the
    target, in file order (a text column of more than data.max_levels levels left out, and said); a list is
    returned as it is. Reads the header, and the text columns' values to count their levels."""
    if data.features != ALL_FEATURES:
        return Resolved(data)
    path = Path(data.source)
    where = where_of(path)
    names, types = column_types(path)
    check_header(where, names, [data.target])
    texts = [name for name, kind in zip(names, types) if _kind(kind) == "text" and name != data.target]
    cells = text_cells(path, texts) if texts else None  # read once, for the typos and the levels
    if texts and path.suffix.lower() in CSV_SUFFIXES:  # numbers with a typo: numeric, and the reader names it
        typos = typo_columns(cells, texts)
        types = [pa.float64() if name in typos else kind for name, kind in zip(names, types)]
        texts = [name for name in texts if name not in typos]
    counts = level_counts(cells, texts) if texts else {}
    many = [name for name in texts if counts[name] > data.max_levels]
    features = [name for name, kind in zip(names, types)
                if (is_numeric(kind) or _kind(kind) in ("text", "true/false")) and name != data.target
                and name not in many]
    others = [(name, kind) for name, kind in zip(names, types)
              if not (is_numeric(kind) or _kind(kind) in ("text", "true/false")) and name != data.target]
    said = f"{where}: data.features = {ALL_FEATURES}"
    notes = [f"{said}: left out {show(name)}, a text column of {counts[name]} levels (more than data.max_levels = "
             f"{data.max_levels}: an identifier? name it in data.features to fit it)" for name in many]
    if not features:
        found = f" ({skipped(others)})" if others else ""
        raise PipelineError(f"{said}: no numeric, text or true/false column besides the target "
                            f"{show(data.target)}{found}: expected at least one column to fit")
    if len(features) > MAX_FEATURES:
        kind = "numeric columns" if not texts and len(features) == sum(map(is_numeric, types)) - 1 else "columns"
        raise PipelineError(f"{said}: {len(features)} {kind} besides the target {show(data.target)}: "
                            f"expected at most {MAX_FEATURES} (list the ones to fit in data.features)")
    for name, times in Counter(features).items():
        if times > 1:
            raise PipelineError(f"{where}: column {show(name)} appears {times} times in the header: "
                                "expected one column of that name")
        if name in RESERVED_NAMES:
            raise PipelineError(f"{said}: column {show(name)} has a name the history and metrics use for themselves: "
                                f"expected none of {', '.join(RESERVED_NAMES)} (rename it, or list data.features)")
    resolved = DataParams.model_validate({**data.model_dump(), "features": features})
    notes += [f"{said}: skipped {skipped(others)}"] if others else []
    return Resolved(resolved, "\n".join(notes), kinds_of(names, types))


_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"


def text_cells(path: Path, names: list[str]) -> pa.Table | None:
    """The named text columns of a CSV or Parquet file, every row, as text; None where the file cannot be read
    (reading the rows then says what is wrong, in its own words)."""
    try:
        if path.suffix.lower() in CSV_SUFFIXES:
            convert = pyarrow.csv.ConvertOptions(include_columns=names, column_types=dict.fromkeys(names, pa.string()))
            return pyarrow.csv.read_csv(path, parse_options=CSV_PARSE, convert_options=convert)
        return pyarrow.parquet.read_table(path, columns=names)
    except (pa.ArrowException, OSError):
        return None


def typo_columns(cells: pa.Table | None, names: list[str]) -> list[str]:
    """The text columns of a CSV file (`cells`: text_cells) whose non-empty cells are mostly numbers as written:
    columns of numbers with a typo ("2,5"), which the reader names, rather than factors."""
    typos = []
    for name in names if cells is not None else []:
        values = cells.column(name).drop_null()
        numbers = pc.sum(pc.match_substring_regex(values, _NUMBER)).as_py() or 0
        if len(values) and numbers / len(values) > 0.5:
            typos.append(name)
    return typos


def level_counts(cells: pa.Table | None, names: list[str]) -> dict[str, int]:
    """How many distinct values (empty cells apart) each text column holds (`cells`: text_cells), over every
    row of the file; 0 where it cannot be read."""
    if cells is None:
        return dict.fromkeys(names, 0)
    return {name: pc.count_distinct(cells.column(name)).as_py() for name in names}


def skipped(others: list[tuple[str, pa.DataType]]) -> str:
    """The columns `all` leaves out, as "2 text columns: 'city', 'street'", or with each one's kind where
    some are not text: "2 columns that are not numbers: 'city' (text), 'sold' (true/false)"."""
    kinds = [(name, _kind(kind)) for name, kind in others]
    if all(kind == "text" for _, kind in kinds):
        return f"{counted(len(kinds), 'text column')}: {first_few([show(name) for name, _ in kinds], _NAMED)}"
    verb = "is" if len(kinds) == 1 else "are"
    return (f"{counted(len(kinds), 'column')} that {verb} not numbers: "
            f"{first_few([f'{show(name)} ({kind})' for name, kind in kinds], _NAMED)}")


def _kind(kind: pa.DataType) -> str:
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "text"
    if pa.types.is_boolean(kind):
        return "true/false"
    if pa.types.is_null(kind):
        return "empty"
    return show_type(kind)


def column_types(path: Path) -> tuple[list[str], list[pa.DataType]]:
    """Every column's name, in file order, and its type: Parquet's schema, or what pyarrow infers from a CSV
    file's first block (int64 or double for a column of numbers and empty cells; null for one of empty cells)."""
    where = where_of(path)
    require_file(where, path)
    try:
        if path.suffix.lower() in CSV_SUFFIXES:
            names, types = header_types(where, path)
        else:
            schema = pyarrow.parquet.read_schema(path)
            names, types = schema.names, schema.types
    except (pa.ArrowException, OSError) as error:  # worded as the readers in dataset.py word it
        if path.suffix.lower() in CSV_SUFFIXES:
            raise PipelineError(f"{where}: not readable as CSV ({arrow_message(error)}): "
                                "expected a header row, then rows of numbers") from None
        raise PipelineError(f"{where}: not a readable Parquet file ({arrow_message(error)}): "
                            "expected a complete Parquet file") from None
    return names, types


def is_numeric(kind: pa.DataType) -> bool:
    """A type the readers turn into float64: integers, floating point and decimals. Text, dates, times,
    true/false and a column with no value are not numbers."""
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)


# --- The header ----------------------------------------------------------------------------------------


def column_names(path: Path) -> list[str]:
    """The header of a table, or [] if it cannot be read: reading it again then says what is wrong."""
    try:
        if path.suffix.lower() in CSV_SUFFIXES:
            return header_names(where_of(path), path)
        return pyarrow.parquet.read_schema(path).names
    except (pa.ArrowException, OSError, PipelineError):
        return []


def header_names(where: str, source: Path | pa.BufferReader) -> list[str]:
    return header_types(where, source)[0]


def header_types(where: str, source: Path | pa.BufferReader) -> tuple[list[str], list[pa.DataType]]:
    """A CSV file's column names, and the types pyarrow infers from its first block (grown to hold the header)."""
    def read(options: pyarrow.csv.ReadOptions) -> tuple[list[str], list[pa.DataType]]:
        with pyarrow.csv.open_csv(source, read_options=options, parse_options=CSV_PARSE) as reader:
            try:
                return reader.schema.names, reader.schema.types
            except UnicodeDecodeError:
                raise PipelineError(f"{where}: the header row is not UTF-8 text: expected column names in UTF-8") from None

    if isinstance(source, Path):
        return with_long_lines(where, source, read, use_threads=False)
    # A header in memory: one block holds all of it.
    block = max(pyarrow.csv.ReadOptions().block_size, min(source.size() + 1, MAX_LINE_BYTES))
    return read(pyarrow.csv.ReadOptions(use_threads=False, block_size=block))


def with_long_lines(where: str, path: Path, read: "Callable[[pyarrow.csv.ReadOptions], T]", use_threads: bool = True) -> T:
    """read(options) with pyarrow's default block, or, where a line does not fit in it, with blocks 4 times larger
    until it does: the everyday read is the same, a wide header or a long line costs a read more per step."""
    block = pyarrow.csv.ReadOptions().block_size
    while True:
        try:
            return read(pyarrow.csv.ReadOptions(use_threads=use_threads, block_size=block))
        except pa.ArrowInvalid as error:
            # pyarrow says "straddling object" of a row that outgrows the block, and that the file is empty
            # when the header does.
            too_long = "straddling" in str(error) or ("Empty CSV file" in str(error) and path.stat().st_size > block)
            if not too_long:
                raise
            if block >= MAX_LINE_BYTES:
                raise PipelineError(f"{where}: a line longer than {MAX_LINE_BYTES:,} bytes, the longest line this "
                                    "project reads (schema.MAX_LINE_BYTES): expected shorter lines") from None
            block = min(block * 4, MAX_LINE_BYTES)


def require_file(where: str, path: Path) -> None:
    """A CSV or Parquet file by its extension, there, readable, and not empty; a CSV file that holds text."""
    note_input(path)
    if path.suffix.lower() not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        found = f"extension {show(path.suffix)}" if path.suffix else "no extension"
        raise PipelineError(f"{where}: {found}: expected {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}")
    if not path.exists():
        raise PipelineError(
            f"{where}: not found: expected a CSV or Parquet file "
            "(run `dvc repro` if a stage writes it, `dvc pull` if DVC tracks it)"
        )
    if not path.is_file():
        raise PipelineError(f"{where}: is not a file: expected a CSV or Parquet file")
    try:
        with path.open("rb") as file:
            head = file.read(SNIFF_BYTES)
    except OSError as error:
        raise PipelineError(f"{where}: cannot read it ({error.strerror}): expected a readable file") from None
    if not head:
        raise PipelineError(f"{where}: is empty (0 bytes): expected a header row, then rows of numbers")
    if path.suffix.lower() in CSV_SUFFIXES:
        if head.startswith(b"PAR1"):
            raise PipelineError(f"{where}: holds Parquet data: expected CSV text (name a Parquet file *.parquet)")
        nul = head.find(b"\0")
        if nul >= 0:
            raise PipelineError(f"{where}: holds binary data (a NUL byte at byte {nul}): expected CSV text")


def check_header(where: str, header: list[str], names: list[str]) -> None:
    """Each requested column is in the header exactly once."""
    missing = [name for name in names if name not in header]
    if missing:
        if len(missing) == 1:
            found = f"column {show(missing[0])} is missing{did_you_mean(missing[0], header)}"
        else:
            named = first_few([show(name) + did_you_mean(name, header) for name in missing], _LISTED_MISSING)
            found = f"columns {named} are missing"
        raise PipelineError(f"{where}: {found}: expected one of the columns {listed(header)}")
    for name in names:
        if header.count(name) > 1:
            raise PipelineError(
                f"{where}: column {show(name)} appears {header.count(name)} times in the header: "
                "expected one column of that name"
            )


def did_you_mean(name: str, header: list[str]) -> str:
    """A header name close to a missing column's: a misspelling, or one that spells it out longer ('age' for
    'age_years')."""
    close = get_close_matches(name, header, n=1) or [
        column for column in header if column.lower().startswith(name.lower())][:1]
    return f" (did you mean {show(close[0])}?)" if close else ""


# --- Words of messages ---------------------------------------------------------------------------------



def counted(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def where_of(path: Path) -> str:
    """The path as the message's first word; escaped if it holds a line break or other control."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def show(text: str) -> str:
    """A name or value in quotes, escaped and cut short so that the message stays one short line."""
    return repr(text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "...")


def listed(header: list[str]) -> str:
    """Column names as the user wrote them (quoted only where needed), cut short after _LISTED_CHARS."""
    shown = []
    length = 0
    for name in header:
        plain = name.isprintable() and name == name.strip() and "," not in name and 0 < len(name) <= _SHOWN_CHARS
        shown.append(name if plain else show(name))
        length += len(shown[-1]) + 2
        if length > _LISTED_CHARS and len(shown) < len(header):
            return f"{', '.join(shown)}, ... ({len(header) - len(shown)} more)"
    return ", ".join(shown) or "(none)"


def show_type(kind: pa.DataType) -> str:
    text = str(kind)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."


def arrow_message(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else type(error).__name__
    text = text if text.isprintable() else repr(text)[1:-1]
    return text if len(text) <= _ARROW_CHARS else text[:_ARROW_CHARS] + "..."


def column_kinds(path: Path, named: Sequence[str] = ()) -> dict[str, str]:
    """Each column's kind for terms: number, text, true/false, or (another type) its type's name; {} for a file
    whose header cannot be read (the reader then says why, in its words). A CSV column named in `named` that
    pyarrow infers as text but whose cells are mostly numbers is a column of numbers with a typo ("2,5"): a
    number, so that the reader names the bad cell, rather than a factor."""
    try:
        names, types = column_types(path)
    except PipelineError:
        return {}
    kinds = kinds_of(names, types)
    texts = [name for name in named if kinds.get(name) == TEXT and names.count(name) == 1]
    if texts and path.suffix.lower() in CSV_SUFFIXES:
        for name in typo_columns(text_cells(path, texts), texts):
            kinds[name] = NUMBER
    return kinds


def kinds_of(names: list[str], types: list[pa.DataType]) -> dict[str, str]:
    """Each column's kind for terms, from its type: number, text, true/false, or its type's name."""
    return {name: NUMBER if is_numeric(kind) else TEXT if pa.types.is_string(kind) or pa.types.is_large_string(kind)
            else BOOL if pa.types.is_boolean(kind) else show_type(kind) for name, kind in zip(names, types)}


def requested_columns(where: str, features: list[str], target: str) -> list[str]:
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
