"""What the optimiser sees: the rows scaled, as tensors on the device, a chunk or a mini-batch at a time.

The rows stream from data.source group by group (pipeline/rows.py) and are kept on the device between
epochs when a fit's rows fit in CACHE_BYTES (feeds), in one storage, each group a view of it: the same bits
either way.
"""

import math
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.params import TrainParams
from pipeline.least_squares import LeastSquares
from pipeline.levels import WithTerms
from pipeline.parts import Part, groups_of_parts, one_read_serves
from pipeline.qr import times_upper
from pipeline.rows import WHOLE, Rows, Share, Table, chunk_rows, rechunk
from pipeline.shuffle import Places, Shuffle
from pipeline.workers import SERIAL, Workers, read_ahead

CACHE_BYTES = 1 << 29  # rows a fit keeps between epochs on the CPU up to this size (feeds); beyond, read each epoch
GATHER_BYTES = 1 << 24  # a mini-batch epoch's worker gathers this many bytes of rows at a call (whole batches)
WINDOW_ROWS = 1 << 22  # a mini-batch epoch shuffles the rows of this many at a time (whole groups, seeded order)


@dataclass(frozen=True)
class Scaling:
    """The affine maps between the data's units and the units the optimiser sees."""

    x_shift: np.ndarray
    x_scale: np.ndarray
    y_shift: float
    y_scale: float
    # (d, d) upper triangular, or None: the standardised columns times it are uncorrelated (whitened)
    mixing: np.ndarray | None = None

    @classmethod
    def of(cls, fit: LeastSquares, params: TrainParams) -> "Scaling":
        """Mean 0 and sd 1 of the training rows, from their least-squares fit (no pass over the rows of its
        own); without an intercept nothing can be shifted, so the scale is the root mean square;
        standardize: false keeps the data as it is (the tutorial).

        More than one feature are also whitened by the fit's R⁻¹: the optimiser then sees columns with an
        identity covariance, on which gradient steps reach least squares however correlated the features (a
        degree-10 polynomial's powers are collinear to 1e-9), while one feature is trained exactly as the
        tutorial does."""
        d = len(fit.x_scale)
        if not params.standardize:
            return cls(np.zeros(d), np.ones(d), 0.0, 1.0)
        # The fit's scales are the norms of the columns about their means (about zero without an intercept).
        x_scale, y_scale = fit.x_scale / math.sqrt(fit.n), fit.y_scale / math.sqrt(fit.n)
        # A constant target (or an all-zero one) has nothing to scale.
        return cls(fit.x_mean, np.where(x_scale > 0, x_scale, 1.0), fit.y_mean, y_scale or 1.0,
                   fit.r_inverse if d > 1 else None)

    def features(self, features: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The scaled features, computed in float64 and, with `out` (float32 or float64), rounded once into it."""
        standard = np.subtract(features, self.x_shift)
        # Each row's bits depend on that row alone, however the rows are grouped.
        if self.mixing is None:
            return np.divide(standard, self.x_scale, out=out)
        standard /= self.x_scale
        if out is None:
            return times_upper(standard, self.mixing)
        out[...] = times_upper(standard, self.mixing)
        return out

    def target(self, target: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return np.divide(np.subtract(target, self.y_shift), self.y_scale, out=out)

    def to_data_units(self, weight: np.ndarray, bias: float) -> tuple[np.ndarray, float]:
        """Coefficients and intercept in the data's units of a model with `weight`, `bias` in scaled units."""
        if self.mixing is not None:  # the weights of the whitened columns, on the standardised ones
            weight = np.array([float(np.sum(self.mixing[j, j:] * weight[j:])) for j in range(len(weight))])
        coefficients = self.y_scale * weight / self.x_scale
        intercept = self.y_shift + self.y_scale * bias - float(np.sum(coefficients * self.x_shift))
        return coefficients, intercept


@dataclass(frozen=True)
class Batch:
    """Rows as tensors laid out for fast passes: features as (d, n), target as (n, 1)."""

    columns: torch.Tensor
    target: torch.Tensor

    def __len__(self) -> int:
        return len(self.target)

    def slice(self, start: int, stop: int) -> "Batch":
        if start == 0 and stop == len(self):
            return self
        return Batch(self.columns[:, start:stop], self.target[start:stop])

    def take(self, order: torch.Tensor) -> "Batch":
        # Gathered as flat vectors where they are (the target, one feature's row): the same values, faster than
        # along a dimension of a 2-D tensor (three times for the (n, 1) target).
        flat = len(self.columns) == 1 and self.columns.is_contiguous()
        columns = self.columns[0].index_select(0, order).unsqueeze(0) if flat else self.columns.index_select(1, order)
        return Batch(columns, self.target.view(-1).index_select(0, order).unsqueeze(1))

    def split(self, size: int) -> list["Batch"]:
        """The rows `size` at a time (the last maybe fewer), each batch laid out on its own."""
        columns = self.columns.split(size, 1)
        if len(self.columns) > 1:
            columns = [piece.contiguous() for piece in columns]
        return list(map(Batch, columns, self.target.split(size)))

    def contiguous(self) -> "Batch":
        return Batch(self.columns.contiguous(), self.target.contiguous())

    @staticmethod
    def join(batches: list["Batch"], storage: torch.Tensor | None = None) -> "Batch":
        """The batches' rows in order as one batch, in new tensors or at the start of `storage` (flat, of at
        least (d + 1) × n values): the columns (d, n), then the target (n, 1), each contiguous."""
        if len(batches) == 1:
            return batches[0]
        if storage is None:
            return Batch(torch.cat([batch.columns for batch in batches], 1),
                         torch.cat([batch.target for batch in batches]))
        n, d = sum(map(len, batches)), len(batches[0].columns)
        columns, target = storage[:d * n].view(d, n), storage[d * n:(d + 1) * n].view(n, 1)
        torch.cat([batch.columns for batch in batches], 1, out=columns)
        torch.cat([batch.target for batch in batches], out=target)
        return Batch(columns, target)


class Feed:
    """The training (or test) rows of one process, scaled, as Batches on the device: one per group of the
    table, read from the file each pass, or kept between passes when they fit in its budget.

    Kept where the feed has every row (its share is WHOLE), the groups are views of `held`, one Batch of all the
    rows in the table's order, the group's rows in it `runs`: a mini-batch epoch gathers its batches from there
    (shuffle.Places), its windows never copied in their order. At 10^7 rows the copies took 16 ms an epoch, and
    an epoch on one thread 104 ms against 111-117 ms (on two, where another thread gathers, no different)."""

    def __init__(self, rows: Rows, scaling: Scaling, dtype: torch.dtype, device: torch.device,
                 share: Share = WHOLE, read_now: bool = True, budget: int | None = None):
        """Rows kept between passes take at most `budget` bytes (cache_budget(device) by default). With
        read_now=False, rows the feed holds are handed to it by the caller (hold, then held_all: feeds)."""
        self.rows, self.scaling, self.dtype, self.device = rows, scaling, dtype, device
        self.readers = list(rows.groups(share))
        d = len(scaling.x_shift)
        # More than one feature's chunks are copies of the rows kept, laid out on their own (_chunks): they count.
        self.kept_bytes = len(rows) * (d + 1) * torch.finfo(dtype).bits // 8 // share[1] * (1 if d <= 1 else 2)
        self.keeps = self.kept_bytes <= (cache_budget(device) if budget is None else budget)
        self.held: Batch | None = None
        self.runs: list[range] = []
        self.cached: list[Batch] | None = None
        self.holds = self.keeps and share == WHOLE  # in one storage, `held`; a share, group by group
        if self.holds and read_now:
            self.hold_every_group()
        elif self.keeps and not self.holds:
            self.cached = list(map(self._batch, self._read(self.readers)))
        self._cached_chunks: list[Batch] | None = None
        self._window: torch.Tensor | None = None  # storage for the windows of mini-batch epochs, reused

    def hold_every_group(self) -> None:
        """Read every group (a group ahead, as a pass does) and hold it."""
        for table in self._read(self.readers):
            self.hold(table)
        self.held_all()

    def hold(self, table: Table) -> None:
        """The next group's rows scaled into `held`, which the first group makes for every row."""
        if self.held is None:
            n, d = len(self.rows), table.features.shape[1]
            self.held = Batch(torch.empty((d, n), dtype=self.dtype, device=self.device),
                              torch.empty((n, 1), dtype=self.dtype, device=self.device))
        start = self.runs[-1].stop if self.runs else 0
        self.runs.append(range(start, start + len(table)))
        self._batch(table, self.held.slice(start, start + len(table)))

    def held_all(self) -> None:
        """After the last group's hold(): the groups, as views of `held`, are what each pass reads."""
        self.cached = [self.held.slice(run.start, run.stop) for run in self.runs]

    def _batch(self, table: Table, into: Batch | None = None) -> Batch:
        """The group's rows scaled (into `into`, where given), a chunk's worth at a time: a wide group's float64
        temporaries stay small."""
        n, d = table.features.shape
        on_host = into is not None and into.columns.device.type == "cpu"
        columns, target = (into.columns, into.target) if on_host else (torch.empty((d, n), dtype=self.dtype),
                                                                      torch.empty((n, 1), dtype=self.dtype))
        step = chunk_rows(d)
        # Each piece's scaled values are rounded to the dtype by the divide that makes them, where they are kept:
        # 4·10^7 rows took 0.23 s against 0.41 s cast by torch from a float64 copy (the same bits: one rounding of
        # the same float64 quotients).
        column_values, target_values = columns.numpy(), target.numpy()[:, 0]
        for start in range(0, n, step):
            piece = table.slice(start, min(n, start + step))
            self.scaling.features(piece.features, out=column_values[:, start:start + len(piece)].T)
            self.scaling.target(piece.target, out=target_values[start:start + len(piece)])
        if into is None:
            return Batch(columns.to(self.device), target.to(self.device))
        if not on_host:
            into.columns.copy_(columns)
            into.target.copy_(target)
        return into

    def window(self, pieces: list[Batch]) -> Batch:
        """The pieces (consecutive rows of a mini-batch epoch) joined in storage kept from window to window and
        epoch to epoch: a new tensor for a window of 4M rows cost its page faults each time, 10-20 ms against
        3 ms (an epoch of 10^7 rows: 66-68 ms against 80-82 ms, the same bits). Safe because a window's batches
        are all gathered (copies) before the next is joined."""
        values = (len(pieces[0].columns) + 1) * sum(map(len, pieces))
        if len(pieces) > 1 and (self._window is None or len(self._window) < values):
            self._window = None  # the old storage goes before the new comes
            # A quarter more: the next windows hold the rows one carries over (less than a batch) too.
            self._window = torch.empty(values * 5 // 4, dtype=self.dtype, device=self.device)
        return Batch.join(pieces, self._window)

    def _read(self, readers: Iterable[Callable[[], Table]]) -> Iterator[Table]:
        """The groups' rows, read a group ahead where they are a part of the file's rows as read (a Part of a
        table's own columns). Coded terms are read in turn: each chunk's design columns are made from a whole row
        group of the file, and made on a second thread they took a memory of their own (a 50-level factor at 10^7
        points: train's peak 1,415 MiB against 1,176 MiB, near the 1.5 GB a stage may take)."""
        if not isinstance(self.rows, Part) or isinstance(self.rows.table, WithTerms):
            return (read() for read in readers)
        group_rows = len(self.rows) // max(1, len(self.readers))
        return read_ahead(readers, group_rows * (len(self.scaling.x_shift) + 1) * 8)

    def groups(self, order: Iterable[int] | None = None) -> Iterator[Batch]:
        indices = range(len(self.readers)) if order is None else order
        if self.cached is not None:
            yield from (self.cached[index] for index in indices)
            return
        # Read a group ahead while this thread scales the one before: the reads, picks and scaling of a pass over
        # rows too large to keep were one thread's work, the chunks' sums waiting on them (5·10^7 points: a pass
        # over the training rows took 1.2 s against 1.5 s, the same bits).
        yield from map(self._batch, self._read(self.readers[index] for index in indices))

    def chunks(self, every: tuple[int, int] = (0, 1)) -> Iterator[Batch]:
        """The rows in order, chunk_rows(d) at a time: the chunks every sum runs over; with every = (k, m),
        chunks k, k + m, k + 2m, …. At least one, empty where there is none, so that every process takes
        part in each sum."""
        empty = True
        for index, chunk in enumerate(self._chunks()):
            if index % every[1] == every[0]:
                empty = False
                yield chunk
        if empty:
            d = len(self.scaling.x_shift)
            yield Batch(torch.empty((d, 0), dtype=self.dtype, device=self.device),
                        torch.empty((0, 1), dtype=self.dtype, device=self.device))


    def _chunks(self) -> Iterable[Batch]:
        """The chunks; of rows kept between passes, cut (and, where cut from a group, copied) once."""
        size = chunk_rows(len(self.scaling.x_shift))
        if self.cached is None:
            return rechunk(self.groups(), size, chunk_of)
        if self._cached_chunks is None:
            if self.held is not None:
                # The groups lie end to end in `held`, so a chunk across two of them is a slice of it too: one
                # feature's is already laid out on its own, and joining copies took 0.6 s and a third more memory
                # at 4·10^7 rows (the same bits: the same values, the same layout).
                n = len(self.held)
                self._cached_chunks = [self.held.slice(start, min(n, start + size)).contiguous()
                                       for start in range(0, n, size)]
            else:
                self._cached_chunks = list(rechunk(self.groups(), size, chunk_of))
        return self._cached_chunks


def cache_budget(device: torch.device) -> int:
    """The bytes of rows that feeds may keep between passes: CACHE_BYTES, or on a GPU half its free memory (the
    bits are the same either way)."""
    return torch.cuda.mem_get_info(device)[0] // 2 if device.type == "cuda" else CACHE_BYTES


def feeds(parts: Sequence[Rows], scaling: Scaling, dtype: torch.dtype, device: torch.device,
          shares: Sequence[Share]) -> list[Feed]:
    """A Feed of each part, with its share. Where every one holds its rows and they are parts of one table too
    large to keep in memory (a Parquet file beyond KEPT_BYTES: parts.groups_of_parts), each group of the file is
    read once for all of them, not once for each: the same rows, the same bits, one read fewer."""
    made, budget = [], cache_budget(device)
    for part, share in zip(parts, shares):  # one budget for them all, the first part served first
        made.append(Feed(part, scaling, dtype, device, share, read_now=False, budget=budget))
        budget -= made[-1].kept_bytes if made[-1].keeps else 0
    if all(feed.holds for feed in made) and one_read_serves(parts):
        for tables in groups_of_parts(parts):
            for feed, table in zip(made, tables):
                feed.hold(table)
        for feed in made:
            feed.held_all()
    else:
        for feed in made:
            if feed.holds:
                feed.hold_every_group()
    return made


def chunk_of(pieces: list[Batch]) -> Batch:
    """Pieces of consecutive groups as one chunk laid out on its own: the bits of a product can depend on
    the layout, and must not depend on how the rows were grouped (a copy only where d > 1 and a group is cut)."""
    return Batch.join(pieces).contiguous()


def shuffled_batches(feed: Feed, batch_size: int, seed: int, epoch: int,
                     gatherer: Workers = SERIAL) -> Iterator[Batch]:
    """One epoch of mini-batches: the groups in a seeded order, WINDOW_ROWS of their rows at a time shuffled
    together (pipeline/shuffle.py); rows short of a whole batch wait for the next window.

    The gatherer (SERIAL, or one thread) joins the windows and gathers their batches ahead while the caller
    steps on this one (copies: the same bits either way), from now on: it works while the caller measures the
    epoch's loss too. The joins were the caller's: 3 windows of 10^7 rows, 14 ms an epoch of stepping alone."""
    spans = gatherer.ahead_of(gathered_spans(feed, batch_size, seed, epoch))
    return (batch for batches in spans for batch in batches)


def gathered_spans(feed: Feed, batch_size: int, seed: int, epoch: int) -> Iterator[list[Batch]]:
    """shuffled_batches's batches, as many as GATHER_BYTES hold (at least one) at a time: few hand-overs, each
    long enough to run beside the caller's steps instead of trading the interpreter with them batch by batch
    (153 batches of 65,536 rows, interleaved: 64-71 ms an epoch against 72-80 ms). Three such gathers are done
    while the loss pass before the epoch runs: of 2M float32 rows each (32 batches), where the epoch once took
    4 chunks' worth (8 batches), an epoch at 10^7 points took 60-63 ms against 65-74 ms; of float64 rows (1M a
    gather) no different."""
    order = np.random.default_rng([seed, epoch]).permutation(len(feed.readers)).tolist()
    row_bytes = (len(feed.scaling.x_shift) + 1) * torch.finfo(feed.dtype).bits // 8
    per_gather = max(1, GATHER_BYTES // (row_bytes * batch_size)) * batch_size
    held = feed.held
    # A window's pieces: its groups' rows, or where the rows are held, the runs of them and the held rows
    # carried over (np.ndarray) from the last window.
    window: list[Batch] | list[range | np.ndarray] = []
    count = 0
    windows = 0

    def shuffled(pieces: list, stop: int) -> Generator[list[Batch], None, list]:
        """The window of these pieces shuffled: its batches up to position `stop`, a gather at a time; returns
        the rows after it (fewer than a batch, for the next window)."""
        n = sum(map(len, pieces))
        if held is None:
            rows, shuffle = feed.window(pieces), Shuffle.of(n, batch_size, seed, epoch, windows)
        else:
            rows, shuffle = held, Shuffle.of(n, batch_size, seed, epoch, windows, Places.of(pieces, len(held)))

        def take(start: int, end: int) -> list[Batch]:
            return rows.take(torch.from_numpy(shuffle.rows(start, end)).to(rows.columns.device)).split(batch_size)

        for start in range(0, stop, per_gather):
            yield take(start, min(start + per_gather, stop))
        if stop == n:
            return []
        return take(stop, n) if held is None else [shuffle.rows(stop, n)]

    for group in feed.groups(order) if held is None else (feed.runs[index] for index in order):
        window.append(group)
        count += len(group)
        if count >= WINDOW_ROWS:
            whole = count - count % batch_size
            window = yield from shuffled(window, whole)
            count -= whole
            windows += 1
    if count:
        yield from shuffled(window, count)
