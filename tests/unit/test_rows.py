"""Chunks worked on by several threads come back in chunk order, the order every sum adds them in; rows kept
between a stage's passes and held-out rows drawn ahead are the rows read and drawn on demand."""

import threading
import time
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet
import pytest

import pipeline.dataset
import pipeline.holdout
import pipeline.rows
import pipeline.split
from pipeline.split import load_split
from pipeline.params import DataParams
from pipeline.holdout import SPLIT_BLOCK, draw_ahead, drawing_while_reading, held_out
from pipeline.parts import chunks_of_parts
from pipeline.rows import KEPT_BYTES, Kept, Table, chunks
from pipeline.workers import READ_AHEAD, READ_AHEAD_BYTES, SERIAL, read_ahead, workers


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


def recorded(n_blocks: int, read: list[int]) -> Iterator[int]:
    """Blocks 0 … n_blocks − 1, each noted in `read` as it is taken."""
    for block in range(n_blocks):
        read.append(block)
        yield block


def test_blocks_are_read_one_per_thread_ahead_of_the_one_given_back():
    read: list[int] = []
    with workers(2) as chunk_workers:
        results = chunk_workers.in_order(lambda block: block, recorded(100, read))
        assert next(results) == 0
        assert len(read) == 2 + 1
        assert list(results) == list(range(1, 100))


def test_one_thread_can_be_handed_blocks_further_ahead_and_works_on_them_away_from_the_caller():
    read: list[int] = []
    caller = threading.get_ident()
    with workers(1, ahead=2) as gatherers:
        results = gatherers.in_order(lambda block: (block, threading.get_ident()), recorded(10, read))
        first, thread = next(results)
        assert (first, len(read)) == (0, 2 + 1)
        assert thread != caller
        assert list(results) == [(block, thread) for block in range(1, 10)]


def test_one_thread_makes_an_iterators_items_in_order_starting_before_the_first_is_asked_for():
    made: list[int] = []
    three_made = threading.Event()
    caller = threading.get_ident()

    def items() -> Iterator[tuple[int, int]]:
        for item in range(10):
            made.append(item)
            if len(made) == 3:
                three_made.set()
            yield item, threading.get_ident()

    with workers(1, ahead=2) as gatherer:
        handed = gatherer.ahead_of(items())
        assert three_made.wait(timeout=60)  # the one taken and the two ahead, made before any next()
        first, thread = next(handed)
        assert first == 0 and thread != caller
        assert list(handed) == [(item, thread) for item in range(1, 10)]
    assert made == list(range(10))


def test_an_error_while_making_items_ahead_reaches_the_caller_after_the_items_before_it():
    def items() -> Iterator[int]:
        yield 1
        raise ValueError("the third read failed")

    with workers(1, ahead=2) as gatherer:
        handed = gatherer.ahead_of(items())
        assert next(handed) == 1
        with pytest.raises(ValueError, match="the third read failed"):
            next(handed)


def test_serial_makes_each_item_here_when_asked_for():
    made: list[int] = []
    handed = SERIAL.ahead_of(recorded(3, made))
    assert made == []
    assert list(handed) == [0, 1, 2] and made == [0, 1, 2]


def test_one_thread_works_on_each_block_here_as_it_is_read():
    caller = threading.get_ident()
    with workers(1) as chunk_workers:
        assert chunk_workers is SERIAL
        assert list(chunk_workers.in_order(lambda block: (block, threading.get_ident()), range(3))) == [
            (0, caller), (1, caller), (2, caller)]


def test_read_ahead_gives_each_readers_result_in_order_made_on_one_other_thread_at_most_one_ahead():
    caller = threading.get_ident()
    made: list[int] = []

    def reader(group: int):
        def read() -> tuple[int, int]:
            made.append(group)
            return group, threading.get_ident()
        return read

    results = read_ahead((reader(group) for group in range(8)), size_each=1 << 20)
    first, thread = next(results)
    time.sleep(0.05)  # time for the thread to read further than it may
    assert (first, thread != caller) == (0, True)
    assert len(made) <= 1 + READ_AHEAD  # the one given back and the ones ahead: memory for two groups
    assert list(results) == [(group, thread) for group in range(1, 8)]
    assert made == list(range(8))


def test_groups_too_large_to_hold_two_of_are_read_in_turn_on_the_callers_thread():
    made: list[int] = []

    def reader(group: int):
        return lambda: made.append(group) or (group, threading.get_ident())

    results = read_ahead((reader(group) for group in range(3)), size_each=READ_AHEAD_BYTES + 1)
    assert next(results) == (0, threading.get_ident()) and made == [0]
    assert list(results) == [(1, threading.get_ident()), (2, threading.get_ident())]


def test_an_error_of_a_read_ahead_reaches_the_caller_after_the_groups_before_it():
    def read(group: int) -> int:
        if group == 2:
            raise OSError("the third group is unreadable")
        return group

    results = read_ahead((lambda group=group: read(group) for group in range(5)), size_each=1 << 20)
    assert [next(results), next(results)] == [0, 1]
    with pytest.raises(OSError, match="the third group is unreadable"):
        next(results)


# --- Rows kept between passes, held-out rows drawn ahead ------------------------------------------------


def write_points(path, n_rows: int, group_rows: int) -> np.ndarray:
    """x, y as a Parquet file of `group_rows`-row groups; y is each row's own number, so a part's rows read off it."""
    x = np.random.default_rng(1).normal(size=n_rows)
    pyarrow.parquet.write_table(pa.table({"x": x, "y": np.arange(n_rows, dtype=np.float64)}), path,
                                row_group_size=group_rows)
    return x


def passes(split, times: int) -> list[tuple[list[float], list[float]]]:
    """The rows of both parts, `times` passes over each, as a stage's passes read them."""
    return [(np.concatenate([t.target for t in chunks(split.train)]).tolist(),
             np.concatenate([t.target for t in chunks(split.test)]).tolist()) for _ in range(times)]


def counted_split(tmp_path, monkeypatch, kept_bytes: int) -> tuple[pipeline.split.Split, list[int]]:
    """The split of 1000 points in groups of 64 rows (a quarter held out, seed 3), a stage keeping `kept_bytes`
    of decoded rows; and the list of the groups decoded from then on, one entry a read."""
    monkeypatch.chdir(tmp_path)
    write_points(tmp_path / "t.parquet", 1000, 64)
    monkeypatch.setattr(pipeline.rows, "KEPT_BYTES", kept_bytes)
    monkeypatch.setattr(pipeline.dataset, "KEPT_BYTES", kept_bytes)
    decoded = []
    read_group = pipeline.dataset._read_group
    monkeypatch.setattr(pipeline.dataset, "_read_group", lambda file, group, *rest: decoded.append(group) or
                        read_group(file, group, *rest))
    data = DataParams(source="t.parquet", features=["x"], target="y", missing="error", degree=1,
                      test_fraction=0.25, split_seed=3, max_levels=50)
    return load_split(data, fit_intercept=True), decoded


@pytest.mark.parametrize("kept_bytes", [KEPT_BYTES, 0])
def test_a_table_that_fits_is_decoded_once_a_stage_and_every_pass_sees_the_same_rows(tmp_path, monkeypatch,
                                                                                     kept_bytes):
    split, decoded = counted_split(tmp_path, monkeypatch, kept_bytes)
    seen = passes(split, 3)
    mask = held_out(1000, 0.25, 3)  # the split as drawn on demand, by one thread
    assert seen == [(np.flatnonzero(~mask).tolist(), np.flatnonzero(mask).tolist())] * 3
    # The check reads each of the 16 groups; kept, no pass reads one again; else each pass reads them all.
    assert len(decoded) == (16 if kept_bytes else 16 + 3 * 2 * 16)


@pytest.mark.parametrize("kept_bytes", [KEPT_BYTES, 0])
def test_both_parts_come_from_one_read_of_each_group_in_the_chunks_each_part_gives_alone(tmp_path, monkeypatch,
                                                                                         kept_bytes):
    monkeypatch.setattr(pipeline.rows, "CHUNK_ROWS", 48)  # chunks that straddle the groups of 64 rows
    split, decoded = counted_split(tmp_path, monkeypatch, kept_bytes)
    parts = [split.train, split.test]
    alone = [[(chunk.features.tobytes(), chunk.target.tobytes()) for chunk in chunks(part)] for part in parts]
    decoded.clear()
    together: list[list[tuple[bytes, bytes]]] = [[], []]
    for index, chunk in chunks_of_parts(parts):
        together[index].append((chunk.features.tobytes(), chunk.target.tobytes()))
    assert together == alone and len(alone[0]) == 16 and len(alone[1]) == 6  # 750 and 250 rows, 48 a chunk
    # Kept, the parts hold their rows already; else each of the 16 groups is read once for both, not twice.
    assert len(decoded) == (0 if kept_bytes else 16)


def test_the_check_decodes_each_group_on_a_thread_of_its_own_while_the_caller_checks_the_one_before(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_points(tmp_path / "t.parquet", 1000, 64)
    decoders: list[tuple[int, int]] = []
    read_group = pipeline.dataset._read_group
    monkeypatch.setattr(pipeline.dataset, "_read_group", lambda file, group, *rest: decoders.append(
        (group, threading.get_ident())) or read_group(file, group, *rest))
    data = DataParams(source="t.parquet", features=["x"], target="y", missing="error", degree=1,
                      test_fraction=0.25, split_seed=3, max_levels=50)
    split = load_split(data, fit_intercept=True)
    assert [group for group, _ in decoders] == list(range(16))
    assert threading.get_ident() not in {thread for _, thread in decoders}
    assert len(split.train) + len(split.test) == 1000


def test_one_read_for_both_parts_is_made_by_a_thread_of_its_own_while_the_caller_picks(tmp_path, monkeypatch):
    split, _ = counted_split(tmp_path, monkeypatch, 0)
    readers: list[int] = []
    table = split.train.table
    original = type(table).read
    monkeypatch.setattr(type(table), "read", lambda self, span: readers.append(threading.get_ident()) or
                        original(self, span))
    assert [index for index, _ in chunks_of_parts([split.train, split.test])]
    # The first group read here, its size saying whether the others may be read ahead: they are, on one thread.
    assert len(readers) == 16 and readers[0] == threading.get_ident()
    assert len(set(readers[1:])) == 1 and threading.get_ident() not in readers[1:]


def test_rows_beyond_what_may_be_kept_are_read_again_each_pass_keeping_only_the_last_span():
    kept = Kept(limit=100)
    small, large = (Table(np.zeros((n, 1)), np.zeros(n)) for n in (5, 10))  # 80 and 160 bytes
    assert kept.keep((0, 5), small) is small and kept.get((0, 5)) is small
    kept.keep((5, 15), large)
    assert kept.get((5, 15)) is large and kept.used == 80
    kept.keep((15, 25), Table(np.zeros((10, 1)), np.zeros(10)))
    assert kept.get((5, 15)) is None and kept.get((0, 5)) is small
    assert not small.features.flags.writeable  # every pass shares the kept rows


def seeded_held_out(n_rows: int, fraction: float, seed: int, block_rows: int) -> np.ndarray:
    """Independently: block b of `block_rows` rows holds out the first round(len · fraction) (at least one) of
    the permutation its seed gives."""
    expected = np.zeros(n_rows, dtype=bool)
    for block in range(-(-n_rows // block_rows)):
        start = block * block_rows
        length = min(block_rows, n_rows - start)
        order = np.random.default_rng(seed if block == 0 else [seed, block]).permutation(length)
        expected[start + order[:max(1, round(length * fraction))]] = True
    return expected


def test_held_out_rows_drawn_ahead_or_by_racing_threads_are_each_blocks_own_seeded_draw(monkeypatch):
    n_rows, fraction, seed = 3 * SPLIT_BLOCK + 5, 0.2, 11
    draws = []
    draw_block = pipeline.holdout._draw_block
    monkeypatch.setattr(pipeline.holdout, "_draw_block", lambda *key: draws.append(key[3]) or draw_block(*key))
    monkeypatch.setattr(pipeline.holdout, "_drawn", {})
    draw_ahead(n_rows, fraction, seed)
    results = []
    racers = [threading.Thread(target=lambda: results.append(held_out(n_rows, fraction, seed))) for _ in range(3)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert sorted(draws) == [0, 1, 2, 3]  # each block drawn once, whoever asked first
    expected = seeded_held_out(n_rows, fraction, seed, SPLIT_BLOCK)
    assert all(np.array_equal(result, expected) for result in results) and len(results) == 3


def test_the_split_is_drawn_while_the_table_is_read_and_a_block_the_kept_rows_do_not_fill_is_drawn_for_them(
        tmp_path, monkeypatch):
    # 330 rows, 5 whole blocks of 64 by the footer's count; 71 rows miss x, so the 259 kept rows fill 4 blocks
    # and 3 rows of a fifth: the block of 64 drawn during the read is not theirs.
    monkeypatch.setattr(pipeline.holdout, "SPLIT_BLOCK", 64)
    monkeypatch.setattr(pipeline.holdout, "_drawn", {})
    x = np.random.default_rng(2).normal(size=330)
    x[:284:4] = np.nan
    pyarrow.parquet.write_table(pa.table({"x": x, "y": np.arange(330, dtype=np.float64)}), tmp_path / "t.parquet",
                                row_group_size=50)
    draws, early_blocks_drawn = [], threading.Event()
    draw_block = pipeline.holdout._draw_block

    def recorded(*key):
        draws.append((key, threading.current_thread().name))
        if threading.current_thread().name == "held-out-early" and key[3] == 4:
            early_blocks_drawn.set()
        return draw_block(*key)

    monkeypatch.setattr(pipeline.holdout, "_draw_block", recorded)
    read = pipeline.split.open_labeled_rows

    def read_after_the_early_draws(*args, **kwargs):  # a read long enough for every whole block of the footer
        assert early_blocks_drawn.wait(timeout=30), "no block was drawn while the table was read"
        return read(*args, **kwargs)

    monkeypatch.setattr(pipeline.split, "open_labeled_rows", read_after_the_early_draws)
    monkeypatch.chdir(tmp_path)
    data = DataParams(source="t.parquet", features=["x"], target="y", missing="drop", degree=1,
                      test_fraction=0.25, split_seed=3, max_levels=50)
    split = load_split(data, fit_intercept=True)
    kept = np.flatnonzero(~np.isnan(x))
    mask = seeded_held_out(len(kept), 0.25, 3, 64)
    assert np.concatenate([t.target for t in chunks(split.train)]).tolist() == kept[~mask].tolist()
    assert np.concatenate([t.target for t in chunks(split.test)]).tolist() == kept[mask].tolist()
    keys = [key for key, _ in draws]
    assert len(keys) == len(set(keys))  # each (length, fraction, seed, block) drawn once
    assert {key for key, thread in draws if thread == "held-out-early"} == {(64, 0.25, 3, b) for b in range(5)}
    assert (3, 0.25, 3, 4) in keys  # the kept rows' own short last block


def test_drawing_while_reading_stops_when_the_read_ends_however_it_ends(monkeypatch):
    monkeypatch.setattr(pipeline.holdout, "SPLIT_BLOCK", 64)
    monkeypatch.setattr(pipeline.holdout, "_drawn", {})
    draws, first = [], threading.Event()
    draw_block = pipeline.holdout._draw_block
    monkeypatch.setattr(pipeline.holdout, "_draw_block", lambda *key: draws.append(key) or first.set() or draw_block(*key))
    with pytest.raises(OSError):
        with drawing_while_reading(64 * 10**7, 0.2, 1):  # a footer's count of rows that no read will reach
            assert first.wait(timeout=30)
            raise OSError("the read failed")
    stopped_at = len(draws)
    time.sleep(0.5)
    assert len(draws) <= stopped_at + 1  # at most the block being drawn as the read ended


def test_a_parts_rows_at_chosen_positions_are_those_rows_of_the_whole_part(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_points(tmp_path / "t.parquet", 1000, 64)
    data = DataParams(source="t.parquet", features=["x"], target="y", missing="error", degree=1,
                      test_fraction=0.25, split_seed=3, max_levels=50)
    split = load_split(data, fit_intercept=True)
    mask = held_out(1000, 0.25, 3)
    for part, rows in ((split.train, np.flatnonzero(~mask)), (split.test, np.flatnonzero(mask))):
        positions = np.sort(np.random.default_rng(0).choice(len(part), 40, replace=False))
        assert part.rows_at(positions).target.tolist() == rows[positions].tolist()  # y is each row's number
        assert part.rows_at(positions[-1:]).target.tolist() == [rows[positions[-1]]]
