"""Factors read from a table: a text or true/false column as level codes, the levels found among the training
rows in one pass, and a table's raw columns read as the design's columns, group by group (pipeline/terms.py
says what the columns are)."""

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.errors import PipelineError
from pipeline.params import MAX_NAME_CHARS  # a level's name is held to a column's length
from pipeline.holdout import held_out
from pipeline.rows import WHOLE, Rows, Share, Source, Table, chunk_rows
from pipeline.terms import BOOL, TEXT, Design, Term, design, level_name, sort_levels, unseen_level


class Coder:
    """A text or true/false column's cells as float64 codes: the index of each among `levels` (-1 for a value not
    among them; NaN for an empty cell); while levels are found (levels None), among the values seen so far, in
    the order first seen. strict: a value not among the levels is an error (new rows to predict)."""

    def __init__(self, name: str, kind: str, levels: tuple | None = None, strict: bool = False, where: str = ""):
        self.name, self.kind, self.strict, self.where = name, kind, strict, where
        self.finding = levels is None
        self.values: list = [] if levels is None else list(levels)
        self._index = {value: i for i, value in enumerate(self.values)}

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.bool_() if self.kind == BOOL else pa.string()

    def code(self, cells: pa.Array) -> np.ndarray:
        if isinstance(cells, pa.ChunkedArray):
            cells = cells.combine_chunks()
        if pa.types.is_dictionary(cells.type):
            cells = cells.dictionary_decode()
        if pa.types.is_large_string(cells.type):
            cells = cells.cast(pa.string())
        if self.finding:
            for value in pc.unique(cells.drop_null()).to_pylist():
                if value not in self._index:
                    self._index[value] = len(self.values)
                    self.values.append(value)
        value_set = pa.array(self.values, type=cells.type)
        indices = pc.index_in(cells, value_set=value_set)
        codes = indices.cast(pa.float64()).fill_null(-1.0).to_numpy(zero_copy_only=False).copy()
        codes[cells.is_null().to_numpy(zero_copy_only=False)] = np.nan
        if self.strict and (codes == -1).any():
            unseen = cells.filter(pc.equal(indices.fill_null(-1), -1)).drop_null()[0].as_py()
            raise PipelineError(f"{self.where or 'the rows'}: "
                                + unseen_level(repr(self.name), level_name(unseen), tuple(self.values)))
        return codes


def coders_for(raw: tuple[str, ...], kinds: dict[str, str], levels: dict[str, tuple] | None = None,
               strict: bool = False, where: str = "") -> dict[str, Coder]:
    """A Coder for each text or true/false column: its codes index `levels` where given, else levels found."""
    return {column: Coder(column, kinds[column], None if levels is None else levels[column], strict, where)
            for column in raw if kinds[column] in (TEXT, BOOL)}


@dataclass(frozen=True)
class WithTerms:
    """A Source of raw columns (numbers and codes) read as the design's columns; a row of a level the design
    does not know is NaN in every column (Known leaves it out). Each group of the source is read once and cut
    into spans of a chunk's rows, each coded when read: the indicator columns of a whole group (50 levels of a
    million rows: 400 MB) are never held at once."""

    source: Source
    design: Design
    remaps: dict[str, np.ndarray] = field(default_factory=dict)  # a Coder's codes → the index of its level

    def __len__(self) -> int:
        return len(self.source)

    @property
    def keeps_all(self) -> bool:  # the source holds every row: the parts may keep theirs (parts.Part)
        return self.source.keeps_all

    def spans(self, share: Share = WHOLE) -> list[tuple[int, int]]:
        step = chunk_rows(len(self.design.names))
        return [(start, min(start + step, stop)) for low, stop in self.source.spans(share)
                for start in range(low, stop, step)]

    def read(self, span: tuple[int, int]) -> Table:
        whole = next(group for group in self.source.spans() if group[0] <= span[0] < group[1])
        table = self.source.read(whole)  # the same group again for each of its spans: the source keeps it
        rows = table.slice(span[0] - whole[0], span[1] - whole[0])
        return Table(self.design.encode(self.raw_of(rows.features))[0], rows.target)

    def raw_of(self, raw: np.ndarray) -> np.ndarray:
        if not self.remaps:
            return raw
        raw = raw.copy()
        for column, remap in self.remaps.items():
            j = self.design.raw.index(column)
            raw[:, j] = remap[raw[:, j].astype(np.int64)]
        return raw


@dataclass(frozen=True)
class Known:
    """The rows of `rows` whose every level the design knows (the others are NaN: WithTerms)."""

    rows: "Rows"
    n_unknown: int

    def __len__(self) -> int:
        return len(self.rows) - self.n_unknown

    def groups(self, share: Share = WHOLE) -> list:
        return [lambda read=read: _known(read()) for read in self.rows.groups(share)]


def _known(table: Table) -> Table:
    unknown = np.isnan(table.features[:, 0])
    return table.select(~unknown) if unknown.any() else table


@dataclass
class Found:
    """What one pass over a table's raw rows finds: each factor's levels among the training rows, the
    combinations of levels they hold, and the held-out rows of a level they do not."""

    levels: dict[str, tuple]
    remaps: dict[str, np.ndarray]
    rows_unseen: int
    factor_columns: list[str] = field(default_factory=list)
    seen: np.ndarray | None = None  # the combinations of level indices among the training rows


def find_levels(source: Source, terms: tuple[Term, ...], kinds: dict[str, str], coders: dict[str, Coder],
                test_fraction: float, seed: int, where: str) -> Found:
    """One pass over the rows: the levels of every factor among the training rows (sorted as patsy sorts them),
    log's and sqrt's domain on every row, and how many held-out rows have a level training never saw."""
    raw = tuple(dict.fromkeys(f.column for term in terms for f in term))
    factor_columns = [c for c in raw if any(f.is_factor and f.column == c for term in terms for f in term)]
    positions = [raw.index(c) for c in factor_columns]
    checker = design(terms, kinds, {c: (0.0, 1.0) for c in factor_columns}, True)
    train_combinations, test_combinations = [], []
    offset = 0
    for span in source.spans():
        table = source.read(span)
        checker.check_domain(table.features, offset, where)
        offset += len(table)
        if not positions:
            continue
        held = held_out(len(source), test_fraction, seed, *span)
        values = table.features[:, positions]
        train_combinations.append(np.unique(values[~held], axis=0))
        if held.any():
            test_combinations.append(np.unique(values[held], axis=0, return_counts=True))
    if not positions:
        return Found({}, {}, 0)
    seen = np.unique(np.concatenate(train_combinations), axis=0)
    levels, remaps, indices = {}, {}, []
    for k, column in enumerate(factor_columns):
        codes = np.unique(seen[:, k])
        if column in coders:
            values = sort_levels(coders[column].values[int(code)] for code in codes)
            remap = np.full(len(coders[column].values) + 1, -1.0)  # the last for -1: unseen
            for index, value in enumerate(values):
                remap[coders[column].values.index(value)] = index
            remaps[column] = remap
            indices.append(remap[seen[:, k].astype(np.int64)])
        else:
            values = tuple(float(code) for code in codes)
            indices.append(np.searchsorted(codes, seen[:, k]).astype(np.float64))
        long = [value for value in values if len(level_name(value)) > MAX_NAME_CHARS]
        if long:
            raise PipelineError(f"{where}: factor {column!r} has a level of {len(level_name(long[0]))} characters "
                                f"({level_name(long[0])[:32]!r}...): expected at most {MAX_NAME_CHARS} (shorten it)")
        if len(values) < 2:
            shown = level_name(values[0]) if values else ""
            raise PipelineError(f"{where}: factor {column!r} has a single level among the training rows "
                                f"({shown!r}): expected at least two (drop {column!r} from data.features)")
        levels[column] = values
    unseen = sum(int(counts.sum()) for _, counts in test_combinations) - _known_count(
        test_combinations, factor_columns, remaps, levels)
    return Found(levels, remaps, unseen, factor_columns, np.column_stack(indices))


def _known_count(test_combinations, factor_columns, remaps, levels) -> int:
    total = 0
    for combinations, counts in test_combinations:
        known = np.ones(len(combinations), dtype=bool)
        for k, column in enumerate(factor_columns):
            if column in remaps:
                known &= remaps[column][combinations[:, k].astype(np.int64)] >= 0
            else:
                known &= np.isin(combinations[:, k], levels[column])
        total += int(counts[known].sum())
    return total


def require_cells(found: Found, built: Design, where: str) -> None:
    """Every combination of levels a column of an interaction of factors codes must be among the training rows:
    else the column would be all zeros."""
    for pieces, name in zip(built.columns, built.names):
        coded = [piece for piece in pieces if piece.factor.is_factor]
        if len(coded) < 2:
            continue
        positions = [found.factor_columns.index(piece.factor.column) for piece in coded]
        wanted = np.array([piece.level for piece in coded], dtype=np.float64)
        if not (found.seen[:, positions] == wanted).all(axis=1).any():
            cell = ", ".join(f"{piece.factor.column} = {level_name(found.levels[piece.factor.column][piece.level])!r}"
                             for piece in coded)
            raise PipelineError(f"{where}: column {name!r} of an interaction has no training row with {cell}: "
                                "it would be all zeros (drop the interaction, or add rows of that combination)")
