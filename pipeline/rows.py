"""Rows of a table as a stream of blocks, so that no stage holds more than a few blocks whatever the size
(beyond what it keeps between passes, `Kept`: a table of up to KEPT_BYTES, and each part of its split up to
half that again).

A table is a sequence of groups: a Parquet file's row groups, read one at a time, or slices of a table
held in memory (a CSV file, a test's arrays). A split selects the training or the held-out rows of each
group. Every sum runs over chunks of exactly CHUNK_ROWS rows (fewer for a wide table: chunk_rows), cut
from the groups in order, so its bits depend on the rows alone: not on how the file was written, how it is
read, or the machine. The chunks may be worked on by several threads at once (pipeline/workers.py), but
their results are added up in chunk order. A split's parts, and their chunks from one read of each group, are
pipeline/parts.py.
"""

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar, Protocol, TypeVar

import numpy as np

from pipeline.files import rows_per_group  # a table held in memory is cut into groups as synthesize writes them

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
