"""The order in which a mini-batch epoch visits a window's rows: seeded by (seed, epoch, window), any span of
it computed on its own, so threads can gather batches in parallel and the bits never depend on their number.

The rows are cut into blocks of consecutive rows; the epoch takes the blocks in a seeded order, and each
block's rows in an order of their own: one seeded permutation of the block, XORed with the block's seeded
key (a bijection of a power-of-two range). A block is at most 1/64 of a batch, so each batch draws from at
least 64 places in the window (and from single rows, a uniform shuffle, below 128 rows a batch); its rows
are read a block at a time, which keeps the gather in cache. The short last block, if any, goes to a seeded
place in the order, its rows shuffled by a permutation of their own.

Where the rows are held in one storage but not in the window's order (groups kept between epochs, taken in
a seeded order: `Places`), the shuffle gives the storage's rows directly: a block that lies in one run of
consecutive storage rows is shifted as a whole, so the window is never copied into its order.
"""

from dataclasses import dataclass

import numpy as np

BLOCKS_PER_BATCH = 64
LARGEST_BLOCK = 1024


def block_rows(batch_size: int) -> int:
    """The largest power of two at most batch_size / BLOCKS_PER_BATCH, between 1 and LARGEST_BLOCK."""
    return min(LARGEST_BLOCK, 1 << max(0, (batch_size // BLOCKS_PER_BATCH).bit_length() - 1))


@dataclass(frozen=True)
class Places:
    """Where a window's rows are held: its first len(listed) rows at the storage rows `listed`, then runs of
    consecutive storage rows, run k holding the window's rows starts[k] … starts[k + 1] − 1 from storage row
    firsts[k]. `held` is the storage's length."""

    listed: np.ndarray
    starts: np.ndarray
    firsts: np.ndarray
    held: int

    @classmethod
    def of(cls, pieces: "list[np.ndarray | range]", held: int) -> "Places":
        """The places of a window of `pieces`, in order: storage rows listed (the first piece only), or a range."""
        carried = isinstance(pieces[0], np.ndarray)
        listed = pieces[0] if carried else np.empty(0, dtype=np.int64)
        runs = (pieces[1:] if carried else pieces) or [range(0)]  # a window of carried rows alone has no run
        sizes = np.array([len(run) for run in runs], dtype=np.int64)
        starts = len(listed) + np.cumsum(sizes) - sizes
        return cls(listed, starts, np.array([run.start for run in runs], dtype=np.int64), held)

    def of_rows(self, window_rows: np.ndarray) -> np.ndarray:
        """The storage rows of these window rows, one by one."""
        run = np.maximum(np.searchsorted(self.starts, window_rows, side="right") - 1, 0)
        placed = (self.firsts[run] + (window_rows - self.starts[run])).astype(window_rows.dtype)
        early = window_rows < len(self.listed)
        placed[early] = self.listed[window_rows[early]]
        return placed

    def of_blocks(self, size: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """For each of the window's first `count` blocks of `size` rows: the shift from its window rows to its
        storage rows, and whether it lies in one run (where not, its rows are placed one by one)."""
        first = np.arange(count, dtype=np.int64) * size
        run = np.searchsorted(self.starts, first, side="right") - 1
        whole = (first >= len(self.listed)) & (run == np.searchsorted(self.starts, first + size - 1, "right") - 1)
        run = np.maximum(run, 0)
        return self.firsts[run] - self.starts[run], whole


@dataclass(frozen=True)
class Shuffle:
    """A permutation of n rows: `rows(start, stop)` are the rows at positions start … stop − 1 of the epoch:
    the window's rows, or with `places` the storage rows where they are held."""

    n: int
    size: int  # rows of a block, a power of two
    first_rows: np.ndarray  # of each whole block, in the epoch's order
    keys: np.ndarray  # each whole block's XOR key, in the same order
    within: np.ndarray  # a permutation of range(size)
    tail: np.ndarray  # rows n - len(tail) … n - 1 in their order
    tail_at: int  # the position of the short last block in the order: after tail_at whole blocks
    places: Places | None = None
    shifts: np.ndarray | None = None  # with places: each window block's shift to its storage rows …
    in_run: np.ndarray | None = None  # … where the block lies in one run of them

    @classmethod
    def of(cls, n: int, batch_size: int, seed: int, epoch: int, window: int,
           places: Places | None = None) -> "Shuffle":
        size = block_rows(batch_size)
        whole = n // size
        generator = np.random.default_rng([seed, epoch, window])
        # Rows held as int32 where they fit: half the bytes to compute and hand to the gather.
        index = np.int32 if max(n, places.held if places else 0) <= np.iinfo(np.int32).max else np.int64
        first_rows = (generator.permutation(whole) * size).astype(index)
        keys = generator.integers(0, size, whole).astype(index)
        within = generator.permutation(size).astype(index)
        tail_at = int(generator.integers(0, whole + 1))
        tail = (whole * size + generator.permutation(n - whole * size)).astype(index)
        if places is None:
            return cls(n, size, first_rows, keys, within, tail, tail_at)
        shifts, in_run = places.of_blocks(size, whole)
        return cls(n, size, first_rows, keys, within, places.of_rows(tail), tail_at, places, shifts.astype(index),
                   in_run)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """The rows (int32, or int64 beyond 2³¹ rows in the window or the storage) the epoch visits at positions
        start … stop − 1."""
        tail_start = self.tail_at * self.size
        tail_stop = tail_start + len(self.tail)
        parts = [self._whole(start, min(stop, tail_start), 0),
                 self.tail[max(start, tail_start) - tail_start:max(0, min(stop, tail_stop) - tail_start)],
                 self._whole(max(start, tail_stop), stop, len(self.tail))]
        filled = [part for part in parts if len(part)]
        return filled[0] if len(filled) == 1 else np.concatenate(parts)  # a batch rarely spans the short block

    def _whole(self, start: int, stop: int, shift: int) -> np.ndarray:
        """Positions start … stop − 1 of whole blocks, which begin `shift` positions after block k × size."""
        if start >= stop:
            return np.empty(0, dtype=self.within.dtype)
        first, last = (start - shift) // self.size, (stop - 1 - shift) // self.size
        # A block's first row is a multiple of size and its key is below it, so (row ^ key) + first equals
        # row ^ (first | key): one pass over the batch's rows, not two (an epoch of 10^7: 4 ms less).
        starts = self.first_rows[first:last + 1] | self.keys[first:last + 1]
        blocks = np.bitwise_xor(self.within, starts[:, None])
        if self.places is not None:
            number = self.first_rows[first:last + 1] // self.size
            blocks += self.shifts[number][:, None]  # a pass over the rows, not a copy of the window's
            for split in np.flatnonzero(~self.in_run[number]):  # a few: the listed rows', those across runs
                blocks[split] = self.places.of_rows(np.bitwise_xor(self.within, starts[split]))
        offset = start - shift - first * self.size
        return blocks.ravel()[offset:offset + stop - start]
