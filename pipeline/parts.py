"""The training or the held-out part of a table (`Part`): its rows read group by group, kept beside the table's
where it keeps them, picked at positions (`Picker`); and the chunks of several parts of one table from one
read of each group (`chunks_of_parts`)."""

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

import pipeline.rows
from pipeline.holdout import held_out, held_out_count
from pipeline.rows import (
    WHOLE, Chunker, Kept, Rows, Share, Source, Table, chunk_rows, chunks, concatenate, groups_of,
)
from pipeline.workers import Result, read_ahead


class Picker:
    """The rows at `positions` (sorted, counted among a part's rows from 0), taken span by span in the table's
    order: Part.rows_at reads a span only where it holds some; drawing.EarlySample is handed each row group as
    the check reads it; drawing.sample, each chunk of a table's rows."""

    def __init__(self, positions: np.ndarray) -> None:
        self.positions = positions
        self.before = 0  # the part's rows in the spans so far
        self.pieces: list[Table] = []

    def add(self, in_part: np.ndarray, read: Callable[[], Table]) -> None:
        """The next span: which of its rows are the part's, and its rows, read only where some are wanted."""
        mine = np.flatnonzero(in_part)
        wanted = self._wanted(len(mine))
        if len(wanted):
            self.pieces.append(read().select(mine[wanted]))

    def add_rows(self, rows: Table) -> None:
        """The next span, every row of it the part's (a chunk of a whole table)."""
        wanted = self._wanted(len(rows))
        if len(wanted):
            self.pieces.append(rows.select(wanted))

    def _wanted(self, count: int) -> np.ndarray:
        """Which of the next `count` rows of the part are wanted, counted from the first of them."""
        low, high = np.searchsorted(self.positions, [self.before, self.before + count])
        wanted = self.positions[low:high] - self.before
        self.before += count
        return wanted

    def rows(self) -> Table:
        return concatenate(self.pieces)


@dataclass(frozen=True)
class Part:
    """The training rows (held_out False) or the held-out rows (True) of a table. Where the table keeps all
    its rows in memory (`keeps_all`: a Parquet file of up to KEPT_BYTES), each part keeps its own up to half
    that, so that later passes select nothing again."""

    table: Source
    is_held_out: bool
    test_fraction: float
    seed: int

    @functools.cached_property
    def _kept(self) -> Kept:
        return Kept(pipeline.rows.KEPT_BYTES // 2 if self.table.keeps_all else 0)

    def __len__(self) -> int:
        n_test = held_out_count(len(self.table), self.test_fraction)
        return n_test if self.is_held_out else len(self.table) - n_test

    def groups(self, share: Share = WHOLE) -> list[Callable[[], Table]]:
        if self.test_fraction == 0 and not self.is_held_out:
            return groups_of(self.table, share)
        return [lambda span=span: self._select(span) for span in self.table.spans(share)]

    def rows_at(self, positions: np.ndarray) -> Table:
        """The part's rows at `positions` (at least one, sorted, counted among the part's rows from 0), span by
        span, only they gathered: a sample of a few rows without a copy of the whole part."""
        picker = Picker(positions)
        for span in self.table.spans():
            picker.add(self.in_part(span), lambda span=span: self.table.read(span))
        return picker.rows()

    def pick(self, span: tuple[int, int], rows: Table) -> Table:
        """The part's rows among `rows`, the table's rows of `span`."""
        return rows.select(self.in_part(span))

    def in_part(self, span: tuple[int, int]) -> np.ndarray:
        """Which of the table's rows of `span` are the part's."""
        mask = held_out(len(self.table), self.test_fraction, self.seed, *span)
        return mask if self.is_held_out else ~mask

    def _select(self, span: tuple[int, int]) -> Table:
        kept = self._kept.get(span)
        if kept is not None:
            return kept
        return self._kept.keep(span, self.pick(span, self.table.read(span)))


def chunks_of_parts(parts: Sequence[Rows]) -> Iterator[tuple[int, Table]]:
    """The chunks of each part as chunks(part) yields them, each with its part's index, in order within each
    part. Parts of one table that keeps none of its rows in memory (a Parquet file beyond KEPT_BYTES) take
    theirs from one read of each group, not one read per part, made by a thread of its own a group ahead while
    this one picks the parts' rows (one part alone too: at 5·10^7 points train's pass over its training rows
    for the gap took 1.4-1.5 s against 1.7 s); other parts come one after the other."""
    if not one_read_serves(parts):
        for index, part in enumerate(parts):
            yield from ((index, chunk) for chunk in chunks(part))
        return
    cutters: list[Chunker] = []
    for span, rows in _each_group_once(parts[0].table, lambda span, rows: (span, rows)):
        if not cutters:
            cutters = [Chunker(chunk_rows(rows.features.shape[1])) for _ in parts]
        for index, (part, cutter) in enumerate(zip(parts, cutters)):
            yield from ((index, chunk) for chunk in cutter.add(part.pick(span, rows)))
    for index, cutter in enumerate(cutters):
        yield from ((index, chunk) for chunk in cutter.rest())


def groups_of_parts(parts: Sequence[Rows]) -> Iterator[list[Table]]:
    """For parts of one table that keeps none of its rows in memory (one_read_serves), each group of the table
    read once, as the list of each part's rows of it: read and picked by a thread of its own a group ahead of
    the one the caller takes."""
    return _each_group_once(parts[0].table, lambda span, rows: [part.pick(span, rows) for part in parts])


def _each_group_once(table: Source, work: Callable[[tuple[int, int], Table], Result]) -> Iterator[Result]:
    """work(span, rows) for each group of the table, in order, each group read once: the first by the caller
    (its size says whether the next ones may be read ahead), the next ones a group ahead (read_ahead)."""
    spans = table.spans()
    if not spans:
        return
    rows = table.read(spans[0])
    size = rows.nbytes
    first = work(spans[0], rows)
    del rows  # held no longer than the pass's first group
    yield first
    del first
    yield from read_ahead((lambda span=span: work(span, table.read(span)) for span in spans[1:]), size)


def one_read_serves(parts: Sequence[Rows]) -> bool:
    """Whether the parts are Parts of one table that keeps none of its rows in memory."""
    return (len(parts) >= 1 and all(isinstance(part, Part) and part.table is parts[0].table for part in parts)
            and not parts[0].table.keeps_all)
