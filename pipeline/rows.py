"""Rows of a table as a stream of blocks, so that no stage holds more than a few blocks whatever the size
(beyond what it keeps between passes, `Kept`: a table of up to KEPT_BYTES, and each part of its split up to
half that again).

A table is a sequence of groups: a Parquet file's row groups, read one at a time, or slices of a table
held in memory (a CSV file, a test's arrays). A split selects the training or the held-out rows of each
group. Every sum runs over chunks of exactly CHUNK_ROWS rows (fewer for a wide table: chunk_rows), cut
from the groups in order, so its bits depend on the rows alone: not on how the file was written, how it is
read, or the machine. The chunks may be worked on by several threads at once (`Workers`), but their results
are added up in chunk order.
"""

import functools
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar, Protocol, TypeVar

import numpy as np

from pipeline.files import rows_per_group  # a table held in memory is cut into groups as synthesize writes them
from pipeline.holdout import held_out, held_out_count

CHUNK_ROWS = 1 << 18  # rows per chunk: small enough for its temporaries to stay in cache
CHUNK_CELLS = 1 << 22  # values per chunk at most (32 MiB of float64): wide tables take fewer rows at a time
# Decoded rows a Parquet table keeps in memory between a stage's passes (the check, least squares, the scores)
# when all of them fit: the tutorial's 10^7 points are read once a stage. A larger table is read each pass.
KEPT_BYTES = 1 << 28

Block = TypeVar("Block")  # a Table, or train's tensors of rows
Result = TypeVar("Result")
Share = tuple[int, int]  # (rank, processes): this process's part of a table's rows
WHOLE: Share = (0, 1)


@dataclass(frozen=True)
class Table:
    """Columns as float64: features[:, j] is the j-th requested feature."""

    features: np.ndarray  # float64, shape (n, d), C-contiguous
    target: np.ndarray  # float64, shape (n,)
    keeps_all: ClassVar[bool] = False  # rows already in memory: its parts select theirs on each pass

    def __len__(self) -> int:
        return len(self.target)

    @property
    def nbytes(self) -> int:
        return self.features.nbytes + self.target.nbytes

    def spans(self, share: Share = WHOLE) -> list[tuple[int, int]]:
        start, stop = share_of(len(self), share)
        size = rows_per_group(self.features.shape[1] + 1)
        return [(a, min(a + size, stop)) for a in range(start, stop, size)]

    def read(self, span: tuple[int, int]) -> "Table":
        return self.slice(*span)

    def groups(self, share: Share = WHOLE) -> list[Callable[[], "Table"]]:
        return groups_of(self, share)

    def slice(self, start: int, stop: int) -> "Table":
        if start == 0 and stop == len(self):
            return self
        return Table(self.features[start:stop], self.target[start:stop])

    def select(self, rows: np.ndarray) -> "Table":
        """The rows a boolean mask (or indices) picks, in order."""
        # Indices taken along axis 0: three times as fast as a boolean mask on the 2-D features.
        indices = np.flatnonzero(rows) if rows.dtype == bool else rows
        return Table(self.features.take(indices, axis=0), self.target.take(indices))


class Rows(Protocol):
    """Anything stages read rows from: a Table, a Parquet file, the training or held-out part of either."""

    def __len__(self) -> int: ...

    def groups(self, share: Share = WHOLE) -> Sequence[Callable[[], Table]]:
        """Readers of this share's groups, in the table's order; each reads one group when called."""
        ...


class Source(Protocol):
    """A whole table: its groups are row ranges, read one at a time."""

    # Whether the source holds every row in memory once read (a Parquet file of up to KEPT_BYTES), so that
    # its parts may keep theirs too (Part).
    keeps_all: bool

    def __len__(self) -> int: ...

    def spans(self, share: Share = WHOLE) -> list[tuple[int, int]]:
        """The rows [start, stop) of each group in this share, in order."""
        ...

    def read(self, span: tuple[int, int]) -> Table:
        """The rows of one span that `spans` gave."""
        ...


def powers(features: np.ndarray, degree: int) -> np.ndarray:
    """The columns of `features` (n, d), then their squares, … up to the power `degree`: (n, d·degree) float64,
    in the order of DataParams.columns. Each power is np.power of the raw value, rounded once."""
    if degree == 1:
        return features
    raw = np.asarray(features, dtype=np.float64)
    return np.concatenate([raw] + [np.power(raw, float(power)) for power in range(2, degree + 1)], axis=1)


@dataclass(frozen=True)
class WithPowers:
    """A Source whose tables carry the power columns of its features as well (data.degree)."""

    source: Source
    degree: int

    def __len__(self) -> int:
        return len(self.source)

    @property
    def keeps_all(self) -> bool:
        return self.source.keeps_all

    def spans(self, share: Share = WHOLE) -> list[tuple[int, int]]:
        return self.source.spans(share)

    def read(self, span: tuple[int, int]) -> Table:
        table = self.source.read(span)
        return Table(powers(table.features, self.degree), table.target)


def with_powers(source: Source, degree: int) -> Source:
    return source if degree == 1 else WithPowers(source, degree)


def groups_of(source: Source, share: Share = WHOLE) -> list[Callable[[], Table]]:
    return [lambda span=span: source.read(span) for span in source.spans(share)]


def share_of(n_rows: int, share: Share) -> tuple[int, int]:
    """The rows [start, stop) of `share`: contiguous, as equal as whole rows allow."""
    rank, processes = share
    return n_rows * rank // processes, n_rows * (rank + 1) // processes


def chunks(rows: Rows, size: int | None = None, share: Share = WHOLE) -> Iterator[Table]:
    """The rows in order, `size` (chunk_rows of their width) at a time, the last chunk maybe shorter; a
    chunk that is a whole group is that group, not a copy."""
    tables = (read() for read in rows.groups(share))
    first = next(tables, None)
    if first is not None:
        yield from rechunk(itertools.chain([first], tables), size or chunk_rows(first.features.shape[1]))


def chunk_rows(width: int) -> int:
    """CHUNK_ROWS, halved until a chunk of `width` features and the target holds at most CHUNK_CELLS values,
    so that a wide table's chunk stays about 32 MiB however many columns it has."""
    rows = CHUNK_ROWS
    while rows > 1 and rows * (width + 1) > CHUNK_CELLS:
        rows //= 2
    return rows


def rechunk(blocks: Iterable[Block], size: int, join: Callable[[list[Block]], Block] | None = None) -> Iterator[Block]:
    """The rows of `blocks` (Tables, or anything with len() and slice()) `size` at a time, each chunk the
    `join` (by default `concatenate`) of the pieces it takes from consecutive blocks."""
    cutter = Chunker(size, join)
    for block in blocks:
        yield from cutter.add(block)
    yield from cutter.rest()


class Chunker:
    """rechunk, for blocks handed over one at a time: each call returns the chunks the block completes."""

    def __init__(self, size: int, join: Callable[[list[Block]], Block] | None = None) -> None:
        self.size, self.join = size, join or concatenate
        self.pending: list[Block] = []
        self.count = 0

    def add(self, block: Block) -> list[Block]:
        done, start = [], 0
        while start < len(block):
            piece = block.slice(start, min(len(block), start + self.size - self.count))
            start += len(piece)
            self.pending.append(piece)
            self.count += len(piece)
            if self.count == self.size:
                done.append(self.join(self.pending))
                self.pending, self.count = [], 0
        return done

    def rest(self) -> list[Block]:
        """The last, shorter chunk, if rows are left."""
        return [self.join(self.pending)] if self.count else []


class ChunksAsRead:
    """A plan for the rows of a table as its check reads them, row group by row group (dataset.open_source's
    `seen`): each group's rows (rows_of) cut in chunks as chunks() cuts them after the read, every chunk handed
    to take() at once, so that a pass over them starts with the read. It counts on the table's n_rows, in order;
    a group out of order fails it, as does take() raising one of `failures` or anything NumPy would warn of (an
    overflow in a value the check refuses after): the stage then makes its pass after the read, which raises
    or warns in its place. finished() takes the last chunk and says whether every row was taken.

    A plan `apart` works on the groups on a thread of its own, in order, at most GROUPS_AHEAD behind the check,
    which reads on meanwhile (train's least squares at 5·10^7 points: 0.5 s less); finished() or drop() waits
    for it."""

    failures: ClassVar[tuple[type[BaseException], ...]] = (FloatingPointError,)
    apart: ClassVar[bool] = False
    GROUPS_AHEAD = 2

    def __init__(self, n_rows: int) -> None:
        self.n_rows = n_rows
        self.chunker: Chunker | None = None
        self.rows_seen = 0  # -1 once the plan fails: nothing more is taken
        self.rows_handed = 0  # the rows the check has handed over, in order; -1 once a group came out of order
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="as-read") if self.apart else None
        self._pending: deque[Future[None]] = deque()

    def rows_of(self, span: tuple[int, int], rows: Table) -> Table:
        """The rows of the group to chunk: all of them by default."""
        return rows

    def take(self, chunk: Table) -> None:
        raise NotImplementedError

    def __call__(self, span: tuple[int, int], rows: Table) -> None:
        start, stop = span
        if start != self.rows_handed or stop > self.n_rows:
            self.rows_handed = -1
            return
        self.rows_handed = stop
        if self._thread is None:
            self._group(span, rows)
            return
        self._pending.append(self._thread.submit(self._group, span, rows))
        while len(self._pending) > self.GROUPS_AHEAD:
            self._pending.popleft().result()

    def _group(self, span: tuple[int, int], rows: Table) -> None:
        if self.rows_seen < 0:
            return
        rows = self.rows_of(span, rows)
        self.chunker = self.chunker or Chunker(chunk_rows(rows.features.shape[1]))
        self._take(self.chunker.add(rows))
        if self.rows_seen >= 0:
            self.rows_seen = span[1]

    def finished(self) -> bool:
        self.drop()
        if self.rows_handed != self.n_rows or self.rows_seen != self.n_rows or self.chunker is None:
            return False
        self._take(self.chunker.rest())
        return self.rows_seen == self.n_rows

    def drop(self) -> None:
        """Wait for the groups handed over: no work of the plan's goes on after."""
        while self._pending:
            self._pending.popleft().result()
        if self._thread is not None:
            self._thread.shutdown()

    def _take(self, chunks: list[Table]) -> None:
        if self.rows_seen < 0:
            return
        try:
            with np.errstate(divide="raise", over="raise", invalid="raise"):
                for chunk in chunks:
                    self.take(chunk)
        except self.failures:
            self.rows_seen = -1


def chunks_of_parts(parts: Sequence[Rows]) -> Iterator[tuple[int, Table]]:
    """The chunks of each part as chunks(part) yields them, each with its part's index, in order within each
    part. Parts of one table that keeps none of its rows in memory (a Parquet file beyond KEPT_BYTES) take
    theirs from one read of each group, not one read per part; other parts come one after the other."""
    if not _one_read_serves(parts):
        for index, part in enumerate(parts):
            yield from ((index, chunk) for chunk in chunks(part))
        return
    table = parts[0].table
    cutters: list[Chunker] = []
    for span in table.spans():
        rows = table.read(span)
        cutters = cutters or [Chunker(chunk_rows(rows.features.shape[1])) for _ in parts]
        for index, (part, cutter) in enumerate(zip(parts, cutters)):
            yield from ((index, chunk) for chunk in cutter.add(part.pick(span, rows)))
    for index, cutter in enumerate(cutters):
        yield from ((index, chunk) for chunk in cutter.rest())


def _one_read_serves(parts: Sequence[Rows]) -> bool:
    """Whether the parts are several Parts of one table that keeps none of its rows in memory."""
    return (len(parts) > 1 and all(isinstance(part, Part) and part.table is parts[0].table for part in parts)
            and not parts[0].table.keeps_all)


@dataclass(frozen=True)
class Workers:
    """Threads that work on blocks at once: a pool, or none, each block then worked on by the caller. `ahead`
    blocks are handed to the pool beyond the one whose result the caller waits for."""

    pool: Executor | None = None
    ahead: int = 1

    def in_order(self, work: Callable[[Block], Result], blocks: Iterable[Block]) -> Iterator[Result]:
        """work(block) for each block, yielded in the blocks' order, so that whatever is added up from them is
        added in that order however many threads did the work. The blocks are read here, one after another,
        `ahead` of the one yielded, so that no thread waits and no more blocks are held than that."""
        if self.pool is None:
            yield from map(work, blocks)
            return
        pending: deque[Future[Result]] = deque()
        for block in blocks:
            pending.append(self.pool.submit(work, block))
            if len(pending) > self.ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def ahead_of(self, items: Iterator[Result]) -> Iterator[Result]:
        """The items, each made on the pool's one thread (never two: a generator runs on one thread at a
        time) `ahead` of the one the caller takes, in order. The first are handed over at once, not at the
        first next(): the thread works while the caller does something else first."""
        if self.pool is None:
            return items
        done = object()

        def following() -> Result:
            return next(items, done)

        pending = deque(self.pool.submit(following) for _ in range(self.ahead + 1))

        def taken() -> Iterator[Result]:
            while (item := pending.popleft().result()) is not done:
                pending.append(self.pool.submit(following))
                yield item

        return taken()


SERIAL = Workers()


@contextmanager
def workers(threads: int, ahead: int | None = None) -> Iterator[Workers]:
    """A pool of `threads`, handed a block a thread ahead unless `ahead` says otherwise; SERIAL for one thread
    with nothing said."""
    if threads == 1 and ahead is None:
        yield SERIAL
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="chunks") as pool:
        yield Workers(pool, threads if ahead is None else ahead)


def concatenate(tables: list[Table]) -> Table:
    if len(tables) == 1:
        return tables[0]
    return Table(np.concatenate([table.features for table in tables]),
                 np.concatenate([table.target for table in tables]))


class Kept:
    """The rows of spans read, kept for a stage's later passes while they fit in `limit` bytes; beyond, the
    last span read (the passes over one large group, a wide table's often, then read it once). Read-only,
    since every pass shares them."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self.tables: dict[tuple[int, int], Table] = {}
        self.last: tuple[tuple[int, int], Table] | None = None

    def get(self, span: tuple[int, int]) -> Table | None:
        if span in self.tables:
            return self.tables[span]
        return self.last[1] if self.last is not None and self.last[0] == span else None

    def keep(self, span: tuple[int, int], table: Table) -> Table:
        table.features.flags.writeable = table.target.flags.writeable = False
        if self.used + table.nbytes <= self.limit:
            self.tables[span] = table
            self.used += table.nbytes
        else:
            self.last = (span, table)
        return table


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
        return Kept(KEPT_BYTES // 2 if self.table.keeps_all else 0)

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
