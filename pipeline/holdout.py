"""The split's held-out rows: a seeded choice in each block of SPLIT_BLOCK rows, so that any range of a table
finds its own without drawing for the whole table; drawn once a process, on a thread of its own while a stage
reads, and kept as one bit a row. parts.Part picks a part's rows with them."""

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager

import numpy as np

SPLIT_BLOCK = 1 << 20  # rows that share one seeded draw of held-out rows


def n_held_out(n_rows: int, test_fraction: float) -> int:
    """How many of `n_rows` rows are held out: the nearest whole number, at least one if any are asked
    for, and never every row."""
    n_test = round(n_rows * test_fraction)
    if test_fraction > 0:
        n_test = max(n_test, 1)
    return max(min(n_test, n_rows - 1), 0)


def held_out(n_rows: int, test_fraction: float, seed: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Boolean mask of the held-out rows among rows [start, stop) of a table of `n_rows` rows.

    Each block of SPLIT_BLOCK rows holds out its own seeded choice, so any range is found without drawing
    for the whole table; block 0 draws from `seed` alone, as the whole table did before there were blocks,
    so a table of up to SPLIT_BLOCK rows splits as it always has.
    """
    stop = n_rows if stop is None else stop
    if not 0 <= start <= stop <= n_rows or not 0 <= test_fraction < 1:
        raise ValueError(f"held_out({n_rows}, {test_fraction}, {seed}, {start}, {stop}): "
                         "expected 0 <= start <= stop <= n_rows, 0 <= test_fraction < 1")
    mask = np.zeros(stop - start, dtype=bool)
    if test_fraction == 0:
        return mask
    for block in range(start // SPLIT_BLOCK, -(-stop // SPLIT_BLOCK)):
        first = block * SPLIT_BLOCK
        in_block = _held_out_in_block(n_rows, test_fraction, seed, block)
        low, high = max(start, first), min(stop, first + len(in_block))
        mask[low - start:high - start] = in_block[low - first:high - first]
    return mask


def _block_length(n_rows: int, block: int) -> int:
    """The rows of block `block` of a table of `n_rows`: SPLIT_BLOCK, fewer in a short last block."""
    return min(SPLIT_BLOCK, n_rows - block * SPLIT_BLOCK)


def _held_out_in_block(n_rows: int, test_fraction: float, seed: int, block: int) -> np.ndarray:
    length = _block_length(n_rows, block)
    in_block = np.unpackbits(_packed_held_out(length, test_fraction, seed, block), count=length)
    in_block = in_block.view(bool)
    in_block.flags.writeable = False
    return in_block


# Each block is drawn once per process, not once per pass (a permutation of 2^20 rows takes about 16 ms,
# as long as reading the block), and kept as one bit a row: 125 MB at 10^9 rows. draw_ahead draws them on a
# thread of its own while the stage reads; a block asked for before that thread gets to it is drawn by the
# thread that asks. Either way once: the first to start a block publishes it, the others wait for it. A
# block's draw depends on its length, not on the table's: a whole block is the same in any table that fills it.
_drawn: dict[tuple[int, float, int, int], Future[np.ndarray]] = {}
_drawing = threading.Lock()


def _packed_held_out(length: int, test_fraction: float, seed: int, block: int) -> np.ndarray:
    key = (length, test_fraction, seed, block)
    with _drawing:
        drawn, mine = _drawn.get(key), False
        if drawn is None:
            drawn, mine = _drawn.setdefault(key, Future()), True
    if mine:
        try:
            drawn.set_result(_draw_block(*key))
        except BaseException as error:
            drawn.set_exception(error)
            raise
    return drawn.result()


def _draw_block(length: int, test_fraction: float, seed: int, block: int) -> np.ndarray:
    in_block = np.zeros(length, dtype=bool)
    generator = np.random.default_rng(seed if block == 0 else [seed, block])
    in_block[generator.permutation(length)[:n_held_out(length, test_fraction)]] = True
    return np.packbits(in_block)


def draw_ahead(n_rows: int, test_fraction: float, seed: int) -> None:
    """Start drawing every block of held_out(n_rows, test_fraction, seed), in order, on a thread of its own:
    NumPy shuffles without the GIL, so the draws overlap the stage's reading and sums. The same bits: each
    block has a generator of its own."""
    _draw_on_a_thread("held-out", n_rows, test_fraction, seed)


@contextmanager
def drawing_while_reading(rows_at_most: int, test_fraction: float, seed: int) -> Iterator[None]:
    """Draw the held-out rows of the whole blocks of `rows_at_most` rows (a Parquet footer's count, which rows
    left out may lower) on a thread of its own while the body reads the table, before its count of rows is
    known: the draws then overlap the read as well as the passes after it (draw_ahead, once it is known).
    The thread stops when the body ends, however it ends; a block the table does not fill is a draw wasted."""
    read = threading.Event()
    _draw_on_a_thread("held-out-early", rows_at_most - rows_at_most % SPLIT_BLOCK, test_fraction, seed, until=read)
    try:
        yield
    finally:
        read.set()


def _draw_on_a_thread(name: str, n_rows: int, test_fraction: float, seed: int,
                      until: threading.Event | None = None) -> None:
    """Draw every block of a table of `n_rows` rows, in order, on a thread of its own; stop before the next
    block once `until` is set."""
    if test_fraction == 0 or n_rows <= 0:
        return

    def draw() -> None:
        for block in range(-(-n_rows // SPLIT_BLOCK)):
            if until is not None and until.is_set():
                return
            _packed_held_out(_block_length(n_rows, block), test_fraction, seed, block)

    threading.Thread(target=draw, name=name, daemon=True).start()


def held_out_count(n_rows: int, test_fraction: float) -> int:
    """The number of rows `held_out` marks, without drawing them."""
    whole_blocks, rest = divmod(n_rows, SPLIT_BLOCK)
    return whole_blocks * n_held_out(SPLIT_BLOCK, test_fraction) + (n_held_out(rest, test_fraction) if rest else 0)
