"""Threads that work on blocks of rows beside the caller (`Workers`): the results come back in the blocks'
order, so whatever is added up from them is added in that order however many threads did the work; and the
row groups of a table read a group ahead (`read_ahead`)."""

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

Block = TypeVar("Block")  # a Table, or train's tensors of rows
Result = TypeVar("Result")


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


READ_AHEAD = 1  # what read_ahead reads beyond the one the caller takes
READ_AHEAD_BYTES = 64 << 20  # ... where each is at most this large; a larger one is read when it is taken


def read_ahead(readers: Iterable[Callable[[], Result]], size_each: int) -> Iterator[Result]:
    """Each reader's result (a row group's rows, about `size_each` bytes), in order, made by a thread of its
    own READ_AHEAD ahead of the one the caller takes: pyarrow decodes without the GIL, so the caller works on
    one group while the next is read. Groups larger than READ_AHEAD_BYTES (a wide table's) are read in turn, as
    before, so that memory holds one of them."""
    if size_each > READ_AHEAD_BYTES:
        yield from (reader() for reader in readers)
        return
    # Workers' `ahead` counts beyond the one the caller waits for: 0 reads one while the caller works on another.
    with workers(1, ahead=READ_AHEAD - 1) as reading:
        yield from reading.ahead_of(reader() for reader in readers)
