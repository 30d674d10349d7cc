"""Chunks worked on by several threads come back in chunk order, the order every sum adds them in."""

import threading

from pipeline.rows import SERIAL, workers


def test_results_come_in_the_blocks_order_even_when_a_later_block_is_done_first():
    third_done = threading.Event()

    def work(block: int) -> int:
        if block == 0:  # the first block finishes only after the third has, on another of the 3 threads
            assert third_done.wait(timeout=60)
        if block == 2:
            third_done.set()
        return block * 10

    with workers(3) as chunk_workers:
        assert list(chunk_workers.in_order(work, range(6))) == [0, 10, 20, 30, 40, 50]


def test_blocks_are_read_one_per_thread_ahead_of_the_one_given_back():
    read = []

    def blocks():
        for block in range(100):
            read.append(block)
            yield block

    with workers(2) as chunk_workers:
        results = chunk_workers.in_order(lambda block: block, blocks())
        assert next(results) == 0
        assert len(read) == 2 + 1
        assert list(results) == list(range(1, 100))


def test_one_thread_works_on_each_block_here_as_it_is_read():
    caller = threading.get_ident()
    with workers(1) as chunk_workers:
        assert chunk_workers is SERIAL
        assert list(chunk_workers.in_order(lambda block: (block, threading.get_ident()), range(3))) == [
            (0, caller), (1, caller), (2, caller)]
