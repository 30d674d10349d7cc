"""synthesize draws y = m·x + c + noise from its seed alone, with one feature x or several x1 … xd, chunk by
chunk, and streams them to Parquet: the same bytes whatever the chunk size, in memory that does not grow with
n_points."""

import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet
import pytest

import pipeline.files
from pipeline.files import TableWriter, row_blocks
from pipeline.params import SynthesizeParams
from pipeline.synthesize import CHUNK_ROWS, DRAWN_RANGE, draw_points, true_line, write_points


def params(**changes) -> SynthesizeParams:
    values = dict(m=2.0, c=-1.0, noise=0.5, n_points=500, x_min=-3.0, x_max=4.0, seed=7) | changes
    return SynthesizeParams(**values)


def drawn(params: SynthesizeParams, chunk_rows: int = CHUNK_ROWS) -> dict[str, np.ndarray]:
    """Every chunk of draw_points, joined."""
    chunks = list(draw_points(params, chunk_rows))
    return {name: np.concatenate([chunk[name] for chunk in chunks]) for name in chunks[0]}


def test_the_same_seed_gives_the_same_points_and_another_seed_other_points():
    first, again, other = drawn(params()), drawn(params()), drawn(params(seed=8))
    assert list(first) == ["x", "y"]
    assert all(np.array_equal(first[name], again[name]) for name in first)
    assert not np.array_equal(first["x"], other["x"])


def test_x_is_in_range_and_y_scatters_around_the_true_line_with_the_given_noise():
    columns = drawn(params(n_points=100_000))
    assert columns["x"].dtype == columns["y"].dtype == np.float64
    assert columns["x"].min() >= -3.0 and columns["x"].max() <= 4.0
    residuals = columns["y"] - (2.0 * columns["x"] - 1.0)
    assert abs(residuals.mean()) < 0.01
    assert residuals.std() == pytest.approx(0.5, rel=0.02)
    assert true_line(params()).as_dict() == {"x": 2.0, "intercept": -1.0}


def test_a_list_of_slopes_draws_one_uniform_column_per_slope():
    several = params(m=[1.0, -2.0, 0.5], noise=0.0, n_points=20_000)
    columns = drawn(several)
    assert list(columns) == ["x1", "x2", "x3", "y"]
    assert true_line(several).as_dict() == {"x1": 1.0, "x2": -2.0, "x3": 0.5, "intercept": -1.0}
    for name in ("x1", "x2", "x3"):
        assert -3.0 <= columns[name].min() and columns[name].max() <= 4.0
        assert columns[name].mean() == pytest.approx(0.5, abs=0.05)
    assert abs(np.corrcoef(columns["x1"], columns["x2"])[0, 1]) < 0.05  # drawn independently
    expected = columns["x1"] - 2.0 * columns["x2"] + 0.5 * columns["x3"] - 1.0
    assert np.allclose(columns["y"], expected, rtol=0, atol=1e-12)


def test_zero_noise_puts_every_point_on_the_line():
    columns = drawn(params(noise=0.0))
    assert np.allclose(columns["y"], 2.0 * columns["x"] - 1.0, rtol=0, atol=1e-12)


def test_null_m_and_c_are_drawn_from_the_seed_and_recorded():
    line = true_line(params(m=None, c=None))
    m_true, c_true = line.coefficients[0], line.intercept
    assert DRAWN_RANGE[0] <= m_true <= DRAWN_RANGE[1] and DRAWN_RANGE[0] <= c_true <= DRAWN_RANGE[1]
    assert true_line(params(m=None, c=None)) == line
    assert true_line(params(m=None, c=None, seed=8)).coefficients[0] != m_true


def test_fixing_m_and_c_to_the_drawn_values_keeps_the_same_points():
    line = true_line(params(m=None, c=None))
    at_random, fixed = drawn(params(m=None, c=None)), drawn(params(m=line.coefficients[0], c=line.intercept))
    assert all(np.array_equal(at_random[name], fixed[name]) for name in at_random)


# Chunk by chunk: the same values and the same bytes whatever the chunk and row group sizes ---------------------

@pytest.mark.parametrize("shape", [(101,), (101, 3)])
def test_numpy_draws_k_values_and_then_k_more_as_it_draws_2k_at_once(shape):
    """What draw_points relies on: Generator.uniform and .normal consume their stream one value after another."""
    sizes = [1, 7, 0, 30, 63]  # rows per piece, 101 in all
    for draw in (lambda stream, size: stream.uniform(-3.0, 4.0, size), lambda stream, size: stream.normal(0, 2, size)):
        at_once = draw(np.random.default_rng(5), shape)
        stream = np.random.default_rng(5)
        pieces = np.concatenate([draw(stream, (size, *shape[1:])) for size in sizes])
        assert np.array_equal(pieces, at_once)


def all_at_once(params: SynthesizeParams) -> dict[str, np.ndarray]:
    """The points as documented, drawn in one go: three streams spawned from SeedSequence(seed) for the line,
    x (n values, or an (n, d) block row by row) and the noise; y = c + m1·x1 + … + md·xd + noise."""
    _, x_stream, noise_stream = (np.random.default_rng(seed) for seed in np.random.SeedSequence(params.seed).spawn(3))
    slopes = params.m if isinstance(params.m, list) else [params.m]
    shape = params.n_points if len(slopes) == 1 else (params.n_points, len(slopes))
    features = x_stream.uniform(params.x_min, params.x_max, shape).reshape(params.n_points, len(slopes))
    y = np.full(params.n_points, params.c)
    for column, slope in enumerate(slopes):
        y = y + slope * features[:, column]
    columns = {name: features[:, column] for column, name in enumerate(params.feature_names)}
    return {**columns, "y": y + noise_stream.normal(0.0, params.noise, params.n_points)}


SHAPES = {"one feature": {}, "three features": {"m": [1.0, -2.0, 0.5]}}


@pytest.mark.parametrize("changes", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("chunk_rows", [1, 7, 100, 1000, CHUNK_ROWS])
def test_the_points_are_the_all_at_once_draw_whatever_the_chunk_size(changes, chunk_rows):
    few = params(n_points=100, **changes)
    chunks = list(draw_points(few, chunk_rows))
    lengths = [min(chunk_rows, 100 - start) for start in range(0, 100, chunk_rows)]  # the last one shorter
    assert [len(chunk["y"]) for chunk in chunks] == lengths
    expected = all_at_once(few)
    columns = drawn(few, chunk_rows)
    assert list(columns) == list(expected)
    assert all(np.array_equal(columns[name], expected[name]) for name in expected)


def test_a_draw_of_two_billion_points_starts_at_once_with_the_first_rows_of_a_small_one():
    """Nothing is drawn or allocated for the whole of n_points: memory depends on the chunk size alone."""
    first = next(draw_points(params(n_points=2_000_000_000), chunk_rows=10))
    few = all_at_once(params(n_points=100))
    assert all(np.array_equal(first[name], few[name][:10]) for name in few)


def test_a_wide_table_is_written_in_groups_of_fewer_rows_so_that_a_group_holds_at_most_group_cells_values(
        tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline.files, "GROUP_ROWS", 64)
    monkeypatch.setattr(pipeline.files, "GROUP_CELLS", 100)
    path = tmp_path / "points.parquet"
    write_points(path, params(n_points=10, m=[1.0] * 12))  # 13 columns: 64 → 32 → 16 → 8 → 4 rows a group
    file = pyarrow.parquet.ParquetFile(path)
    assert [file.metadata.row_group(index).num_rows for index in range(file.num_row_groups)] == [4, 4, 2]
    write_points(path, params(n_points=100))  # x and y: 64 rows hold 128 values, over 100: halved once
    file = pyarrow.parquet.ParquetFile(path)
    assert file.metadata.row_group(0).num_rows == 32


@pytest.mark.parametrize("changes", SHAPES.values(), ids=SHAPES.keys())
def test_the_parquet_file_has_the_same_bytes_whatever_the_chunk_size_in_row_groups_of_group_rows(tmp_path, changes):
    few = params(n_points=100, **changes)
    written = {}
    for chunk_rows in (1, 7, 1000, CHUNK_ROWS):
        path = tmp_path / f"points-{chunk_rows}.parquet"
        write_points(path, few, chunk_rows=chunk_rows, group_rows=16)
        written[chunk_rows] = path.read_bytes()
    assert len(set(written.values())) == 1
    file = pyarrow.parquet.ParquetFile(path)
    assert [file.metadata.row_group(index).num_rows for index in range(file.num_row_groups)] == [16] * 6 + [4]
    expected = all_at_once(few)
    table = file.read()
    assert table.column_names == list(expected)
    assert all(np.array_equal(table.column(name).to_numpy(), expected[name]) for name in expected)


def test_pieces_of_any_lengths_write_the_bytes_of_one_piece_and_only_on_success(tmp_path):
    rows = np.random.default_rng(0).normal(size=(2, 50))
    with TableWriter(tmp_path / "whole.parquet", ("a", "b"), group_rows=8) as writer:
        writer.write({"a": rows[0], "b": rows[1]})
    with TableWriter(tmp_path / "pieces.parquet", ("a", "b"), group_rows=8) as writer:
        for start, stop in [(0, 0), (0, 3), (3, 3), (3, 21), (21, 22), (22, 50)]:  # shorter and longer than a group
            writer.write({"b": rows[1, start:stop], "a": rows[0, start:stop]})
    assert (tmp_path / "pieces.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    with pytest.raises(RuntimeError), TableWriter(tmp_path / "failed.parquet", ("a",), group_rows=8) as writer:
        writer.write({"a": rows[0]})
        raise RuntimeError("interrupted")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["pieces.parquet", "whole.parquet"]


@pytest.mark.parametrize("n_rows, width", [(0, 3), (1, 1), (1023, 500), (5000, 1), (5000, 64), (300_001, 20)])
def test_row_blocks_take_every_row_once_in_order_at_least_1024_at_a_time(n_rows, width):
    blocks = list(row_blocks(n_rows, width))
    assert [row for block in blocks for row in range(n_rows)[block]] == list(range(n_rows))
    assert all(len(range(n_rows)[block]) >= 1024 for block in blocks[:-1])


def test_the_columns_of_a_wide_matrix_written_in_pieces_are_read_back_exactly(tmp_path):
    # Copied into the groups 1,024 rows at a time (row_blocks): pieces and groups end within those blocks.
    matrix = np.random.default_rng(1).normal(size=(3000, 150))
    names = [f"c{k}" for k in range(150)]
    with TableWriter(tmp_path / "wide.parquet", names, group_rows=2500) as writer:
        for rows in (slice(0, 1700), slice(1700, 3000)):
            writer.write({name: matrix[rows, k] for k, name in enumerate(names)})
    table = pyarrow.parquet.read_table(tmp_path / "wide.parquet")
    assert np.array_equal(np.column_stack([table.column(name).to_numpy() for name in names]), matrix)


def test_a_group_written_while_the_caller_fills_the_next_holds_the_values_given_whatever_the_caller_does_after(
        tmp_path):
    """The group in writing and the one filling are apart: a caller may reuse its arrays (and NaN is written
    as null) as soon as write() returns. Each group's write is held until the call that handed it over has
    returned, having filled the next group meanwhile: a group refilled while in writing would show. Checked
    against pyarrow writing the whole table at once."""
    values = np.random.default_rng(0).normal(size=(2, 100))
    values[0, ::7] = np.nan
    reused = np.empty((2, 10))
    returned = threading.Condition()
    calls = [0, False]  # write() calls returned so far; whether the caller writes no more

    def handed_back(done: bool = False) -> None:
        with returned:
            calls[0] += 1
            calls[1] = done
            returned.notify_all()

    with TableWriter(tmp_path / "groups.parquet", ("a", "b"), group_rows=16) as writer:
        submit = writer._background.submit

        def held(function, *args, **kwargs):
            """The group's write, begun only once the write() call that handed it over has returned."""
            during = calls[0]

            def once_returned():
                with returned:
                    assert returned.wait_for(lambda: calls[0] > during or calls[1], timeout=10)
                return function(*args, **kwargs)

            return submit(once_returned)

        writer._background.submit = held
        for start in range(0, 100, 10):
            reused[:] = values[:, start:start + 10]
            writer.write({"a": reused[0], "b": reused[1]})
            reused[:] = -1.0  # at once: the caller's arrays are its own again
            handed_back()
        handed_back(done=True)  # the last, shorter group is handed over as the block ends
    whole = pa.table({"a": pa.array(values[0], from_pandas=True), "b": values[1]})
    pyarrow.parquet.write_table(whole, tmp_path / "whole.parquet", row_group_size=16)
    assert pyarrow.parquet.read_table(tmp_path / "groups.parquet").equals(whole)
    assert (tmp_path / "groups.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()
