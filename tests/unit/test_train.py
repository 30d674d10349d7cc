"""train fits torch.nn.Linear(d, 1) with torch.optim and reaches the least-squares answer on real tables,
checked against exact rational solutions."""

import itertools
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from exact import correlated_table, exact_least_squares, reference_table, relative_errors, through_origin_table
import pyarrow
import pyarrow.parquet

import pipeline.dataset
import pipeline.rows as rows
import pipeline.feed as feed
import pipeline.shuffle as shuffle
from pipeline.dataset import Table, gather
from pipeline.split import Split, load_split
from pipeline.errors import PipelineError
from pipeline.factoring import least_squares
from pipeline.params import DataParams, TrainParams, load_params
from pipeline.distributed import SOLO
from pipeline.feed import Batch
from pipeline.training import fit, squared_error, summed_loss
from pipeline.workers import SERIAL, workers
from workspace import ROOT

DEFAULTS = load_params(TrainParams, ROOT / "params.yaml")  # the committed train section
LINE = (np.linspace(-2.0, 2.0, 50)[:, None], 3.0 * np.linspace(-2.0, 2.0, 50) + 0.5)


def params(**changes) -> TrainParams:
    # Every epoch, unless a test says otherwise: these tests measure how close each optimiser gets, well
    # below the tolerances at which train stops by default.
    return TrainParams(**(DEFAULTS.model_dump() | {"stop_when_converged": False} | changes))


def train_on(features, target, test=None, **changes):
    names = tuple(f"x{column}" for column in range(features.shape[1])) if features.shape[1] > 1 else ("x",)
    split = Split("table.csv", Table(features, target), None if test is None else Table(*test))
    return fit(split, names, params(**changes))


def test_the_history_has_a_row_per_epoch_from_the_initial_weights_to_the_learnt_ones():
    model, history = train_on(*LINE, test=LINE, epochs=40)
    assert list(history) == ["epoch", "train_loss", "test_loss", "x", "intercept"]
    assert list(history["epoch"]) == list(range(41))
    assert (history["x"][-1], history["intercept"][-1]) == (np.float32(model.coefficients[0]), np.float32(model.intercept))
    features, target = LINE
    assert history["train_loss"][-1] == pytest.approx(np.mean((model.predict(features) - target) ** 2), rel=1e-3, abs=1e-9)
    assert history["train_loss"][0] > 100 * history["train_loss"][-1]
    assert "test_loss" not in train_on(*LINE, epochs=3)[1]


def test_the_seed_alone_sets_the_initial_weights():
    first, again, other = (train_on(*LINE, epochs=1, seed=seed)[1] for seed in (1, 1, 2))
    assert (first["x"][0], first["intercept"][0]) == (again["x"][0], again["intercept"][0])
    assert (first["x"][0], first["intercept"][0]) != (other["x"][0], other["intercept"][0])


def test_without_standardize_the_first_step_is_the_tutorials_sgd_step_on_the_mse_gradient():
    _, history = train_on(*LINE, epochs=1, lr=0.1, standardize=False)
    m0, c0 = np.float32(history["x"][0]), np.float32(history["intercept"][0])
    x32, y32 = LINE[0][:, 0].astype(np.float32), LINE[1].astype(np.float32)
    error = m0 * x32 + c0 - y32
    assert history["x"][1] == pytest.approx(m0 - 0.1 * 2 * np.mean(error * x32), rel=1e-5)
    assert history["intercept"][1] == pytest.approx(c0 - 0.1 * 2 * np.mean(error), rel=1e-5)


def test_float64_defaults_reach_the_exact_least_squares_line_of_the_reference_table():
    features, target = reference_table()
    model, _ = train_on(features, target, dtype="float64")
    found = [model.intercept, model.coefficients[0]]
    assert max(relative_errors(found, exact_least_squares(features, target))) < 1e-9


def test_float32_defaults_predict_within_1e_5_sd_of_the_least_squares_line():
    features, target = reference_table()
    model, _ = train_on(features, target)
    intercept, slope = exact_least_squares(features, target)
    exact_predictions = intercept + slope * features[:, 0]
    assert np.max(np.abs(model.predict(features) - exact_predictions)) < 1e-5 * target.std()


def test_a_line_through_the_origin_reaches_the_exact_slope():
    features, target = through_origin_table()
    model, history = train_on(features, target, dtype="float64", fit_intercept=False)
    assert model.intercept == 0.0 and (history["intercept"] == 0).all()
    assert relative_errors(list(model.coefficients), exact_least_squares(features, target, False))[0] < 1e-9


def test_lbfgs_reaches_six_correlated_features_of_very_different_scales_within_100_epochs():
    features, target = correlated_table()
    model, _ = train_on(features, target, optimizer="lbfgs", lr=1.0, dtype="float64", epochs=100)
    found = [model.intercept, *model.coefficients]
    assert max(relative_errors(found, exact_least_squares(features, target))) < 1e-6


@pytest.mark.parametrize("changes", [
    dict(optimizer="adam", lr=0.05, epochs=1000),
    dict(optimizer="sgd", momentum=0.9, lr=0.01),
    dict(batch_size=8, lr=0.01, epochs=400),
])
def test_other_optimisers_and_mini_batches_approach_least_squares(changes):
    features, target = reference_table()
    model, history = train_on(features, target, dtype="float64", **changes)
    assert len(history["epoch"]) == changes.get("epochs", DEFAULTS.epochs) + 1
    baseline = least_squares(Table(features, target), ("x",), True, "t")
    assert np.max(np.abs(model.predict(features) - baseline.predict(features))) < 1e-2 * target.std()


# Every optimiser, the full batch and mini-batches (L-BFGS takes only the full batch), float32 and float64.
EVERY_WAY = [dict(optimizer=optimizer, batch_size=batch_size, dtype=dtype, lr=1.0 if optimizer == "lbfgs" else 0.1)
             for optimizer in ("sgd", "adam", "lbfgs") for batch_size in (None, 50_000) for dtype in ("float32", "float64")
             if not (optimizer == "lbfgs" and batch_size)]


@pytest.mark.parametrize("changes", EVERY_WAY, ids=lambda changes: "-".join(map(str, changes.values())))
def test_every_optimiser_batch_size_and_dtype_gives_the_same_bits_on_1_2_3_or_more_threads_than_cores(changes):
    # Three chunks of training rows and one of held-out rows, each above torch's 32768-element grain,
    # beyond which its own threads would split a sum.
    features, target = reference_table(rows=2 * rows.CHUNK_ROWS + 40_000)
    test = reference_table(rows=40_000, seed=5)
    before = torch.get_num_threads()
    runs = []
    try:
        for threads in (1, 2, 3, max(4, (os.cpu_count() or 1) + 1)):
            torch.set_num_threads(threads)
            runs.append(train_on(features, target, test=test, epochs=3, **changes))
            assert torch.get_num_threads() == threads  # fit gives torch its threads back
    finally:
        torch.set_num_threads(before)
    first = runs[0]
    for again in runs[1:]:
        assert first[0] == again[0]
        assert all(np.array_equal(first[1][name], again[1][name]) for name in first[1])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_mini_batch_epoch_is_torch_optims_own_step_on_each_shuffled_batch_in_turn(optimizer, dtype):
    """The textbook loop, with torch.optim's class and backward(), gives fit's weights bit for bit."""
    generator = np.random.default_rng(2)
    features = generator.normal(size=(1000, 3))
    target = features @ [1.0, -2.0, 0.5] + 1.0 + generator.normal(size=1000)
    names = tuple(f"x{column}" for column in range(features.shape[1]))
    changes = dict(optimizer=optimizer, dtype=dtype, batch_size=64, epochs=3, lr=0.01, standardize=False, seed=3)
    _, history = fit(Split("t.csv", Table(features, target), None), names, params(**changes))

    torch_dtype = getattr(torch, dtype)
    batches = feed.Feed(Table(features, target), feed.Scaling(np.zeros(len(names)), np.ones(len(names)), 0.0, 1.0),
                        torch_dtype, torch.device("cpu"))
    torch.manual_seed(3)
    model = torch.nn.Linear(len(names), 1, dtype=torch_dtype)
    optimizer_class = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
    textbook = optimizer_class(model.parameters(), lr=0.01)
    for epoch in range(3):
        for batch in feed.shuffled_batches(batches, 64, 3, epoch):
            textbook.zero_grad()
            loss = torch.nn.functional.mse_loss(model(batch.columns.T), batch.target, reduction="sum")
            (loss * (1.0 / len(batch))).backward()
            textbook.step()
    assert [history[name][3] for name in names] == model.weight.detach().view(-1).tolist()
    assert history["intercept"][3] == model.bias.item()


def test_mini_batches_are_shuffled_by_the_seed():
    features, target = reference_table()
    first, again, other = (train_on(features, target, batch_size=5, epochs=3, seed=seed)[1] for seed in (0, 0, 1))
    assert np.array_equal(first["x"], again["x"]) and not np.array_equal(first["x"][1:], other["x"][1:])


def test_raw_sgd_diverges_on_the_reference_table_and_says_what_to_try():
    features, target = reference_table()
    with pytest.raises(PipelineError) as raised:
        train_on(features, target, standardize=False)
    message = str(raised.value)
    assert message.startswith("training diverged: train loss = ")
    assert message.endswith("try train.standardize: true")  # train.lr is already 0.1, safe with it
    assert train_on(features, target, standardize=True) is not None


def test_training_stops_at_the_first_epoch_whose_loss_is_not_finite():
    features, target = reference_table()
    with pytest.raises(PipelineError, match=r"train loss = (inf|nan) at epoch (\d+)") as long_run:
        train_on(features, target, standardize=False, epochs=1000)
    epoch = int(str(long_run.value).split(" at epoch ")[1].split(" ")[0])
    _, history = train_on(features, target, standardize=False, epochs=epoch - 1)
    assert np.isfinite(history["train_loss"]).all()


def test_the_default_train_section_converges_on_x_in_the_thousands_and_y_in_the_millions():
    features, target = reference_table()
    features, target = features * 10 + 3000, target * 1e4 + 2e6
    model, _ = train_on(features, target)
    intercept, slope = exact_least_squares(features, target)
    assert np.max(np.abs(model.predict(features) - (intercept + slope * features[:, 0]))) < 1e-5 * target.std()


def parquet_split(tmp_path, features, target, row_group_size: int, test_fraction: float = 0.25):
    path = Path("table.parquet")  # data.source is relative to the project: tests run it in tmp_path
    columns = {f"x{column}": features[:, column] for column in range(features.shape[1])} | {"y": target}
    pyarrow.parquet.write_table(pyarrow.table(columns), path, row_group_size=row_group_size)
    data = DataParams(source=str(path), features=list(columns)[:-1], target="y", missing="error", degree=1,
                      test_fraction=test_fraction, split_seed=3, max_levels=50)
    return load_split(data, fit_intercept=True), tuple(data.features)


@pytest.mark.parametrize("table_kept", [True, False])
@pytest.mark.parametrize("changes", [dict(), dict(dtype="float64", optimizer="lbfgs", lr=1.0),
                                     dict(batch_size=16), dict(batch_size=50, optimizer="adam", lr=0.01)])
def test_rows_streamed_from_a_file_of_tiny_row_groups_train_as_the_same_rows_held_in_memory(
        tmp_path, monkeypatch, changes, table_kept):
    """The same code paths as a file larger than memory: chunks, windows and groups of a few rows; with the
    table not kept, the training and held-out rows are held from one read (feed.feeds)."""
    features, target = correlated_table(rows=300)
    monkeypatch.chdir(tmp_path)
    if not table_kept:
        monkeypatch.setattr(pipeline.dataset, "KEPT_BYTES", 0)
    split, names = parquet_split(tmp_path, features, target, row_group_size=7)
    monkeypatch.setattr(rows, "CHUNK_ROWS", 16)
    monkeypatch.setattr(feed, "WINDOW_ROWS", 40)
    held = fit(split, names, params(epochs=5, **changes))
    monkeypatch.setattr(feed, "CACHE_BYTES", 0)  # nothing kept between epochs: read from the file every pass
    streamed = fit(split, names, params(epochs=5, **changes))
    assert held[0] == streamed[0]
    assert all(np.array_equal(held[1][name], streamed[1][name]) for name in held[1])
    if "batch_size" not in changes:  # the full batch does not depend on how the file is cut into groups
        in_memory = Split("t.csv", gather(split.train), gather(split.test))
        assert fit(in_memory, names, params(epochs=5, **changes))[0] == held[0]


@pytest.mark.parametrize("cache_bytes", [0, 1 << 28])
def test_a_feeds_groups_are_read_by_a_thread_of_its_own_while_the_caller_scales_them(tmp_path, monkeypatch,
                                                                                     cache_bytes):
    """Kept or read each pass, the rows come in order from the file's groups, read off the caller's thread."""
    features, target = correlated_table(rows=300)
    monkeypatch.chdir(tmp_path)
    split, _ = parquet_split(tmp_path, features, target, row_group_size=7)
    monkeypatch.setattr(feed, "CACHE_BYTES", cache_bytes)
    table, readers = split.train.table, []
    read = type(table).read
    monkeypatch.setattr(type(table), "read", lambda self, span: readers.append(threading.get_ident()) or read(self, span))
    scaled = raw_feed(split.train)
    passed = [np.concatenate([chunk.target.view(-1).numpy() for chunk in scaled.chunks()]) for _ in range(2)]
    assert all(np.array_equal(each, gather(split.train).target) for each in passed)
    # The table is small enough that its training rows, once read, are kept (Part): 43 groups read once.
    assert len(readers) == 43 and threading.get_ident() not in readers


@pytest.mark.parametrize("width", [1, 3])
def test_parts_of_a_table_too_large_to_keep_are_held_from_one_read_of_each_group(tmp_path, monkeypatch, width):
    """Each group is read once for the training and the held-out rows, and each part's feed holds what a feed of
    its own reads; a chunk of held rows is a slice of them, laid out on its own, as a chunk read each pass."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pipeline.dataset, "KEPT_BYTES", 0)  # a file read again each pass
    monkeypatch.setattr(rows, "CHUNK_ROWS", 16)  # chunks across the groups of 7 rows
    features, target = correlated_table(rows=300)
    features = features[:, [0] * width] * np.arange(1, width + 1)
    split, _ = parquet_split(tmp_path, features, target, row_group_size=7)
    table = split.train.table
    spans, read = [], type(table).read
    monkeypatch.setattr(type(table), "read", lambda self, span: spans.append(span) or read(self, span))
    scaling = feed.Scaling(np.full(width, 0.5), np.full(width, 3.0), -1.0, 7.0)
    together = feed.feeds([split.train, split.test], scaling, torch.float32, torch.device("cpu"), [(0, 1), (0, 1)])
    assert sorted(spans) == table.spans()  # 43 groups, each read once
    for part, held in zip([split.train, split.test], together):
        alone = feed.Feed(part, scaling, torch.float32, torch.device("cpu"))
        assert torch.equal(held.held.columns, alone.held.columns) and torch.equal(held.held.target, alone.held.target)
        each_pass = feed.Feed(part, scaling, torch.float32, torch.device("cpu"), budget=0)
        assert each_pass.cached is None
        for chunk, read_chunk in zip(held.chunks(), each_pass.chunks(), strict=True):
            assert torch.equal(chunk.columns, read_chunk.columns) and torch.equal(chunk.target, read_chunk.target)
            assert chunk.columns.is_contiguous() and chunk.target.is_contiguous()
            if width == 1:  # a slice of the held rows, never a copy
                assert chunk.columns.untyped_storage().data_ptr() == held.held.columns.untyped_storage().data_ptr()


@pytest.mark.parametrize("width", [1, 2])
def test_the_feeds_of_a_fit_keep_their_rows_within_one_budget_the_training_rows_first(tmp_path, monkeypatch, width):
    """Rows and, for more than one feature, the chunks copied from them: 4 or 8 bytes a value in all."""
    monkeypatch.chdir(tmp_path)
    features, target = correlated_table(rows=300)
    split, _ = parquet_split(tmp_path, features[:, :width], target, row_group_size=7)
    copies = 1 if width == 1 else 2  # more than one feature: the rows, and the chunks copied from them
    train_bytes = len(split.train) * (width + 1) * 4 * copies  # float32
    test_bytes = len(split.test) * (width + 1) * 4 * copies
    scaling = feed.Scaling(np.zeros(width), np.ones(width), 0.0, 1.0)
    for budget, kept in [(train_bytes + test_bytes, [True, True]), (train_bytes + test_bytes - 1, [True, False]),
                         (train_bytes - 1, [False, True]), (test_bytes - 1, [False, False])]:
        monkeypatch.setattr(feed, "CACHE_BYTES", budget)
        made = feed.feeds([split.train, split.test], scaling, torch.float32, torch.device("cpu"), [(0, 1), (0, 1)])
        assert [fed.held is not None for fed in made] == kept
        assert all(fed.kept_bytes == expected for fed, expected in zip(made, [train_bytes, test_bytes]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_feed_scales_each_value_in_float64_and_rounds_it_once_to_the_dtype(dtype):
    """(x − shift) / scale, each operation rounded to float64 as Python's floats do, then once to the dtype:
    struct's 'f' rounds a float to the nearest float32."""
    generator = np.random.default_rng(5)
    features = generator.normal(size=(2_000, 2)) * 10.0 ** generator.integers(-30, 30, size=(2_000, 2))
    target = generator.normal(size=2_000) * 10.0 ** generator.integers(-30, 30, size=2_000)
    shift, scale = np.array([0.1, -3e-7]), np.array([3.0, 7e-3])
    scaled = feed.Feed(Table(features, target), feed.Scaling(shift, scale, 1e-3, 0.7), dtype, torch.device("cpu"))
    code = "f" if dtype == torch.float32 else "d"

    def rounded(value: float) -> float:
        return struct.unpack(code, struct.pack(code, value))[0]

    columns, labels = scaled.held.columns.tolist(), scaled.held.target.view(-1).tolist()
    for row in range(len(target)):
        for column in range(2):
            expected = (float(features[row, column]) - float(shift[column])) / float(scale[column])
            assert columns[column][row] == rounded(expected)
        assert labels[row] == rounded((float(target[row]) - 1e-3) / 0.7)


def batches_of(scaled: feed.Feed, batch_size: int, seed: int, epoch: int, workers=SERIAL) -> list[np.ndarray]:
    return [batch.target.view(-1).numpy().copy()
            for batch in feed.shuffled_batches(scaled, batch_size, seed, epoch, workers)]


def raw_feed(rows_):
    d = rows_.features.shape[1] if hasattr(rows_, "features") else 1
    return feed.Feed(rows_, feed.Scaling(np.zeros(d), np.ones(d), 0.0, 1.0), torch.float64, torch.device("cpu"))


@pytest.mark.parametrize("batch_size", [16, 200, 1000, 70_000])
def test_an_epoch_visits_every_row_once_in_an_order_of_the_seed_and_epoch_alone(batch_size):
    target = np.arange(300_007.0)  # not a whole number of blocks: the short one lands in the order too
    scaled = raw_feed(Table(target[:, None] * 2, target))
    first = batches_of(scaled, batch_size, seed=4, epoch=0)
    assert [len(batch) for batch in first] == [batch_size] * (len(target) // batch_size) + [len(target) % batch_size]
    assert np.array_equal(np.sort(np.concatenate(first)), target)
    with workers(1, ahead=3) as ahead:
        assert all(map(np.array_equal, batches_of(scaled, batch_size, seed=4, epoch=0, workers=ahead), first))
    for other in (batches_of(scaled, batch_size, seed=4, epoch=1), batches_of(scaled, batch_size, seed=5, epoch=0)):
        assert np.array_equal(np.sort(np.concatenate(other)), target)
        assert not np.array_equal(np.concatenate(other), np.concatenate(first))
    # A batch draws from all over the table: at least BLOCKS_PER_BATCH places, and no row beside its table neighbour.
    places = np.unique(first[0] // shuffle.block_rows(batch_size))
    assert len(places) >= min(len(first[0]), shuffle.BLOCKS_PER_BATCH)
    assert places.max() - places.min() > len(target) // shuffle.block_rows(batch_size) // 2


def test_a_shuffle_is_a_permutation_however_its_spans_are_cut():
    for n, batch_size in [(1, 5), (7, 5), (100, 16), (1000, 64), (12_345, 1792), (70_000, 65_536)]:
        order = shuffle.Shuffle.of(n, batch_size, seed=0, epoch=1, window=2)
        whole = order.rows(0, n)
        assert np.array_equal(np.sort(whole), np.arange(n))
        cuts = sorted({0, n, *np.random.default_rng(n).integers(0, n + 1, 12).tolist()})
        assert np.array_equal(np.concatenate([order.rows(start, stop) for start, stop in zip(cuts, cuts[1:])]), whole)


@pytest.mark.parametrize("gathered_rows", [8, 16, 96, 10**6])
def test_the_batches_are_the_same_however_many_rows_a_worker_gathers_at_once(tmp_path, monkeypatch, gathered_rows):
    """Windows with rows left over for the next, a short last batch: cut from gathers of any size, the same batches."""
    monkeypatch.setattr(feed, "WINDOW_ROWS", 20)
    monkeypatch.chdir(tmp_path)
    target = np.arange(103.0)
    split, _ = parquet_split(tmp_path, np.stack([target * 2, -target], axis=1), target, row_group_size=9,
                             test_fraction=0.0)
    scaled = raw_feed(split.train)
    monkeypatch.setattr(feed, "GATHER_BYTES", 0)  # a batch at a time
    one_at_a_time = [batches_of(scaled, 8, seed=1, epoch=epoch) for epoch in range(2)]
    # Gathers of 8 rows (one batch), 16, 96 and every row: 2 features and the target, float64.
    monkeypatch.setattr(feed, "GATHER_BYTES", gathered_rows * 3 * 8)
    # A thread a gather ahead, and train's two gathers ahead (training.gather_thread), joining the windows too.
    with workers(1, ahead=1) as one, workers(1, ahead=2) as two:
        for (epoch, expected), gatherers in itertools.product(enumerate(one_at_a_time), (one, two)):
            batches = list(feed.shuffled_batches(scaled, 8, 1, epoch, gatherers))
            assert [batch.target.view(-1).tolist() for batch in batches] == [batch.tolist() for batch in expected]
            # Each batch's features are its own rows' (x0 = 2 y, x1 = -y), laid out as a batch of its own.
            for batch in batches:
                assert batch.columns.is_contiguous()
                assert torch.equal(batch.columns, torch.stack([batch.target.view(-1) * 2, -batch.target.view(-1)]))


def test_a_feed_joins_each_window_in_storage_it_keeps_from_window_to_window(tmp_path, monkeypatch):
    """A new tensor for each window (4M rows) cost its page faults every time: 10-20 ms, against 3 ms."""
    monkeypatch.setattr(feed, "CACHE_BYTES", 0)  # rows read each epoch are joined (those held are not)
    monkeypatch.chdir(tmp_path)
    target = np.arange(103.0)
    split, _ = parquet_split(tmp_path, np.stack([target * 2, -target], axis=1), target, row_group_size=9,
                             test_fraction=0.0)
    scaled = raw_feed(split.train)
    groups = list(scaled.groups())
    first = scaled.window(groups[:3])
    joined = feed.Batch.join(groups[:3])
    for found, expected in ((first.columns, joined.columns), (first.target, joined.target)):
        assert torch.equal(found, expected) and found.is_contiguous() and found.stride() == expected.stride()
    storage = first.columns.untyped_storage().data_ptr()
    # The next window, with a few rows more (those a window carries over) and other rows, in the same storage.
    second = scaled.window([groups[5].slice(0, 5), *groups[6:9]])
    rows = torch.cat([groups[5].target[:5], *(group.target for group in groups[6:9])])
    assert torch.equal(second.target, rows)
    assert torch.equal(second.columns, torch.stack([second.target.view(-1) * 2, -second.target.view(-1)]))
    assert second.columns.untyped_storage().data_ptr() == storage == second.target.untyped_storage().data_ptr()
    # An epoch's windows go there too (of 27 rows and those carried over), and a window of one group is that group.
    monkeypatch.setattr(feed, "WINDOW_ROWS", 20)
    assert np.array_equal(np.sort(np.concatenate(batches_of(scaled, 4, seed=1, epoch=0))), target)
    assert scaled.window(groups[:3]).columns.untyped_storage().data_ptr() == storage
    assert scaled.window(groups[:1]) is groups[0]


class WindowsRecorded(feed.Feed):
    """A feed that notes the thread that joins each window (a whole epoch's windows, their joins counted)."""

    def window(self, pieces: list[Batch]) -> Batch:
        self.joined_on.append(threading.get_ident())
        self.first_joined.set()
        return super().window(pieces)


def test_the_gathering_thread_joins_every_window_starting_before_the_first_batch_is_asked_for(tmp_path, monkeypatch):
    """The stepping thread only steps: it joined the windows itself, 14 ms an epoch at 10^7 rows."""
    monkeypatch.setattr(feed, "WINDOW_ROWS", 20)
    monkeypatch.setattr(feed, "CACHE_BYTES", 0)  # rows read each epoch are joined (those held are not)
    monkeypatch.chdir(tmp_path)
    target = np.arange(103.0)
    split, _ = parquet_split(tmp_path, target[:, None] * 2, target, row_group_size=9, test_fraction=0.0)
    scaled = WindowsRecorded(split.train, feed.Scaling(np.zeros(1), np.ones(1), 0.0, 1.0), torch.float64,
                             torch.device("cpu"))
    scaled.joined_on, scaled.first_joined = [], threading.Event()
    expected = batches_of(scaled, 8, seed=1, epoch=0)  # SERIAL: every window joined here
    windows = len(scaled.joined_on)
    assert windows > 2 and set(scaled.joined_on) == {threading.get_ident()}
    scaled.joined_on, scaled.first_joined = [], threading.Event()
    with workers(1, ahead=2) as gatherer:
        batches = feed.shuffled_batches(scaled, 8, 1, 0, gatherer)
        assert scaled.first_joined.wait(timeout=60)  # before any batch was asked for
        assert [batch.target.view(-1).tolist() for batch in batches] == [batch.tolist() for batch in expected]
    assert len(scaled.joined_on) == windows and threading.get_ident() not in scaled.joined_on


def test_a_shuffle_of_held_rows_visits_the_storage_rows_a_joined_window_holds_at_the_same_positions():
    """Places as runs of storage rows (any length, empty too) after rows carried over in any order: a shuffle
    given them names, position for position, the storage row that the window's own shuffle reaches through an
    explicit list of where each window row is held."""
    generator = np.random.default_rng(0)
    for _ in range(300):
        held = int(generator.integers(1, 5000))
        pieces = []
        if generator.random() < 0.5:
            pieces.append(generator.choice(held, size=int(generator.integers(0, 50)), replace=False))
        for _ in range(int(generator.integers(0 if pieces else 1, 5))):
            start = int(generator.integers(0, held))
            pieces.append(range(start, int(generator.integers(start, held + 1))))
        where = np.concatenate([np.asarray(piece, dtype=np.int64) for piece in pieces])
        if not len(where):
            continue
        batch_size = int(generator.choice([1, 5, 64, 128, 200, 1000, 70_000]))
        window = shuffle.Shuffle.of(len(where), batch_size, seed=1, epoch=2, window=3)
        placed = shuffle.Shuffle.of(len(where), batch_size, seed=1, epoch=2, window=3,
                                    places=shuffle.Places.of(pieces, held))
        cuts = sorted({0, len(where), *generator.integers(0, len(where) + 1, 5).tolist()})
        for start, stop in zip(cuts, cuts[1:]):
            assert np.array_equal(placed.rows(start, stop), where[window.rows(start, stop)])


@pytest.mark.parametrize("batch_size, window_rows, group_rows, test_fraction, width", [
    (8, 20, 9, 0.0, 1), (8, 20, 9, 0.3, 2), (3, 50, 7, 0.25, 1), (200, 300, 64, 0.0, 1), (200, 1000, 97, 0.1, 3),
    (16, 40, 1, 0.0, 1), (1000, 100, 333, 0.2, 1)])
def test_rows_held_give_the_batches_of_windows_joined_without_joining_one(
        tmp_path, monkeypatch, batch_size, window_rows, group_rows, test_fraction, width):
    """Held rows are gathered where they are (runs of a group's rows, and the rows a window carried over):
    blocks across runs, the short block, and the carried rows land where a joined window puts them."""
    monkeypatch.setattr(feed, "WINDOW_ROWS", window_rows)
    monkeypatch.chdir(tmp_path)
    target = np.arange(2_011.0)
    features = np.stack([target * (column + 2) for column in range(width)], axis=1)
    split, _ = parquet_split(tmp_path, features, target, row_group_size=group_rows, test_fraction=test_fraction)

    def scaled() -> feed.Feed:
        return feed.Feed(split.train, feed.Scaling(np.zeros(width), np.ones(width), 0.0, 1.0), torch.float64,
                         torch.device("cpu"))

    def epochs(fed: feed.Feed) -> list[list[Batch]]:
        return [list(feed.shuffled_batches(fed, batch_size, 1, epoch)) for epoch in range(3)]

    monkeypatch.setattr(feed, "CACHE_BYTES", 0)
    joined = epochs(scaled())
    monkeypatch.setattr(feed, "CACHE_BYTES", 1 << 28)
    held = scaled()
    assert held.held is not None and len(held.held) == len(split.train)
    monkeypatch.setattr(feed.Feed, "window", None)  # never called: nothing is joined
    for found, expected in zip(epochs(held), joined, strict=True):
        assert [batch.target.view(-1).tolist() for batch in found] == [batch.target.view(-1).tolist()
                                                                          for batch in expected]
        assert all(torch.equal(one.columns, other.columns) and one.columns.is_contiguous()
                   for one, other in zip(found, expected))


def test_a_shuffle_holds_rows_as_int32_up_to_2_to_the_31_rows_and_as_int64_beyond():
    assert shuffle.Shuffle.of(2**31 - 1, 65_536, seed=0, epoch=0, window=0).rows(0, 10).dtype == np.int32
    n = 2**31 + 5
    beyond = shuffle.Shuffle.of(n, 65_536, seed=0, epoch=0, window=0)
    visited = np.concatenate([beyond.rows(0, 3), beyond.rows(n - 3000, n)])
    assert visited.dtype == np.int64
    assert visited.min() >= 0 and visited.max() < n
    # The rows past 2³¹: the short block's 5, at a seeded place among the whole blocks, and the last whole block's.
    tail = beyond.rows(beyond.tail_at * beyond.size, beyond.tail_at * beyond.size + 5)
    assert sorted(tail.tolist()) == list(range(n - 5, n))
    last = int(np.argmax(beyond.first_rows)) * beyond.size + 5 * (beyond.tail_at <= np.argmax(beyond.first_rows))
    assert sorted(beyond.rows(last, last + beyond.size).tolist()) == list(range(n - 5 - beyond.size, n - 5))


def test_a_window_shuffles_whole_groups_in_a_seeded_order_and_every_row_comes_once_an_epoch(tmp_path, monkeypatch):
    monkeypatch.setattr(feed, "WINDOW_ROWS", 20)
    monkeypatch.chdir(tmp_path)
    target = np.arange(103.0)
    split, _ = parquet_split(tmp_path, target[:, None] * 2, target, row_group_size=9, test_fraction=0.0)
    scaled = raw_feed(split.train)
    epochs = [batches_of(scaled, 8, seed=1, epoch=epoch) for epoch in range(3)]
    for batches in epochs:
        assert sorted(np.concatenate(batches).tolist()) == target.tolist()
        assert [len(batch) for batch in batches[:-1]] == [8] * (len(batches) - 1)
    assert not np.array_equal(np.concatenate(epochs[0]), np.concatenate(epochs[1]))
    # A window holds whole groups: the first batch draws from the first groups of the epoch's seeded order.
    order = np.random.default_rng([1, 0]).permutation(12)
    first_window = {row for group in order[:3] for row in range(9 * group, min(9 * group + 9, 103))}
    assert set(epochs[0][0].tolist()) <= first_window


@pytest.mark.parametrize("changes", [dict(), dict(batch_size=40, lr=0.01),
                                     dict(optimizer="lbfgs", lr=1.0, dtype="float64", epochs=100),
                                     dict(optimizer="adam", lr=0.01, batch_size=120)],
                         ids=["full batch", "mini-batches", "lbfgs", "adam"])
def test_given_least_squares_training_stops_at_a_converged_epoch_with_the_history_of_a_full_run(changes):
    from pipeline.scores import prediction_gap
    from pipeline.convergence import Tolerances, convergence
    from pipeline.factoring import fit_least_squares

    rng = np.random.default_rng(4)
    features = rng.normal(size=(120, 3)) * [1.0, 10.0, 0.1]
    target = features @ [2.0, -0.3, 5.0] + 1.0 + rng.normal(size=120)
    names = ("x0", "x1", "x2")
    split = Split("table.csv", Table(features, target), None)
    baseline = fit_least_squares(split.train, names, True, "table.csv")
    full_params = params(stop_when_converged=True, **changes)
    model, history = fit(split, names, full_params, baseline=baseline)
    _, every_epoch = fit(split, names, full_params.model_copy(update={"stop_when_converged": False}))
    run = len(history["epoch"]) - 1
    assert 0 < run < full_params.epochs
    # Stopping changes nothing before the stop: the same bits as a run of every epoch, up to it.
    for name, column in history.items():
        assert np.array_equal(column, every_epoch[name][:run + 1]), name
    # The model it stopped on is converged by evaluate's own test, with the exact gap over the rows.
    tolerances = Tolerances(full_params.dtype, full_params.tolerance, full_params.coefficient_tolerance)
    judged = convergence(model, baseline, prediction_gap(model, baseline.model, split.train), tolerances)
    assert judged.converged
    # The epoch before was not converged by the bound train uses, or it would have stopped there.
    previous = type(model)(names, tuple(float(history[name][run - 1]) for name in names),
                           float(history["intercept"][run - 1]))
    assert not convergence(previous, baseline, baseline.gap_bound(previous), tolerances).converged
    # Reruns give the same bits.
    again_model, again = fit(split, names, full_params, baseline=baseline)
    assert again_model == model and all(np.array_equal(again[name], history[name]) for name in history)


def test_the_gap_bound_is_never_below_the_exact_prediction_gap():
    from pipeline.linear import LinearModel
    from pipeline.scores import prediction_gap
    from pipeline.factoring import fit_least_squares

    rng = np.random.default_rng(5)
    features, target = correlated_table(rows=300)
    for fit_intercept in (True, False):
        baseline = fit_least_squares(Table(features, target), tuple(f"c{k}" for k in range(6)), fit_intercept, "t")
        for _ in range(50):
            nudged = LinearModel(baseline.model.features,
                                 tuple(c * (1 + rng.normal(0, 1e-4)) for c in baseline.model.coefficients),
                                 baseline.model.intercept + fit_intercept * rng.normal(0, 1e-3))
            exact = prediction_gap(nudged, baseline.model, Table(features, target))
            assert exact <= baseline.gap_bound(nudged) * (1 + 1e-12)


def test_standardize_whitens_correlated_columns_so_that_a_degree_10_curve_reaches_least_squares():
    from exact import exact_least_squares, polynomial_table
    from pipeline.feed import Scaling
    from pipeline.factoring import fit_least_squares
    from pipeline.rows import powers

    rng = np.random.default_rng(0)
    x = np.round(rng.uniform(-8.78, -3.13, 82), 6)
    coefficients = [-1467.48961422980, -2772.17959193342, -2316.37108160893, -1127.97394098372, -354.478233703349,
                    -75.1242017393757, -10.8753180355343, -1.06221498588947, -0.0670191154593408,
                    -0.00246781078275479, -0.0000402962525080404]  # a published steep degree-10 curve
    features, target = polynomial_table(10, x, coefficients, noise=0.00335)
    design = np.ascontiguousarray(powers(features, 10))
    names = ("x", *(f"x^{k}" for k in range(2, 11)))
    split = Split("table.csv", Table(design, target), None)
    baseline = fit_least_squares(split.train, names, True, "table.csv")
    # The optimiser's columns are uncorrelated with unit variance, though the powers are collinear to 1e-9.
    scaling = Scaling.of(baseline, params())
    seen = scaling.features(design)
    assert np.allclose(seen.T @ seen / len(seen), np.eye(10), atol=1e-5)
    model, history = fit(split, names, params(optimizer="lbfgs", lr=1.0, dtype="float64", epochs=30))
    exact = exact_least_squares(design, target)
    assert max(relative_errors([model.intercept, *model.coefficients], exact)) < 1e-6
    # One feature has nothing to decorrelate: standardised as the tutorial's, nothing mixed.
    assert Scaling.of(fit_least_squares(Table(features, target), ("x",), True, "table.csv"), params()).mixing is None


def test_a_diverging_run_that_would_stop_when_converged_ends_with_the_divergence_line():
    # The stopping bound of a model with enormous coefficients is inf, not an OverflowError.
    features, target = reference_table()
    with pytest.raises(PipelineError, match="training diverged"):
        train_on(features, target, standardize=False, lr=0.5, stop_when_converged=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_scaled_loss_gives_the_gradient_of_a_scale_passed_as_grad_outputs_bit_for_bit(dtype):
    """squared_error scales the loss instead of passing the scale to torch.autograd.grad: the same gradient."""
    generator = torch.Generator().manual_seed(0)
    columns, target = torch.randn(3, 1000, generator=generator, dtype=dtype), torch.randn(1000, 1, dtype=dtype)
    model = torch.nn.Linear(3, 1, dtype=dtype)
    parameters = list(model.parameters())
    for scale in (1.0, 1 / 1000, 1e6 / 7, 0.1 / 3):
        loss = torch.nn.functional.mse_loss(model(columns.T), target, reduction="sum")
        passed = torch.autograd.grad(loss, parameters, torch.tensor(scale * (1.0 / 1000), dtype=dtype))
        squared_error(model, [Batch(columns, target)], 1000, SOLO, gradient_scale=scale)
        assert all(torch.equal(a, parameter.grad) for a, parameter in zip(passed, parameters))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("d", [1, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_summed_loss_is_autograds_loss_and_gradient_bit_for_bit(dtype, d, bias):
    """summed_loss runs the kernels of torch.autograd's backward itself: the loss and each gradient are those of
    mse_loss and torch.autograd.grad, on whole tensors and on the strided slices a chunk of a group is."""
    generator = torch.Generator().manual_seed(d)
    model = torch.nn.Linear(d, 1, bias=bias, dtype=dtype)
    parameters = list(model.parameters())
    columns = torch.randn(d, 70_001, generator=generator, dtype=dtype) * 3 + 1
    target = torch.randn(70_001, 1, generator=generator, dtype=dtype) * 5 - 2
    for start, stop in [(0, 70_001), (0, 65_536), (1, 70_001), (12_345, 12_346)]:
        batch = Batch(columns[:, start:stop], target[start:stop])
        for scale in (1.0, 1 / 65_536, 1 / (stop - start), 1e6 / 7, 0.1 / 3):
            loss = torch.nn.functional.mse_loss(model(batch.columns.T), batch.target, reduction="sum")
            expected = torch.autograd.grad(loss * scale, parameters)
            summed, gradient = summed_loss(model, batch, scale)
            assert torch.equal(summed, loss.detach())
            assert len(gradient) == len(expected) and all(
                a.shape == b.shape and torch.equal(a, b) for a, b in zip(gradient, expected))
            assert summed_loss(model, batch, scale, with_loss=False)[0] is None


def test_a_training_step_loads_neither_sympy_nor_torchs_compiler():
    # A fresh interpreter: this one may have loaded either for another test.
    script = """
import sys, torch
from pipeline.distributed import SOLO
from pipeline.feed import Batch
from pipeline.training import squared_error
model = torch.nn.Linear(1, 1)
batch = Batch(torch.ones(1, 8), torch.zeros(8, 1))
squared_error(model, [batch], 8, SOLO, gradient_scale=1.0)
assert model.weight.grad is not None
print(sorted(name for name in ("sympy", "torch._dynamo") if name in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
