"""visualize reads data.source a chunk at a time: its scatter shows the rows that the same seeded choice
picks from the whole table in memory, whatever the Parquet file's row groups and however the rows are cut
into chunks."""

import numpy as np
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet
import pytest

import pipeline.dataset
import pipeline.files
from pipeline import drawing, parts, rows
from pipeline.holdout import held_out as held_out_rows
from pipeline.split import load_split
from pipeline.params import DataParams

N_ROWS = 100


def whole_table() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(5).uniform(-5, 5, N_ROWS)
    return x, 2.5 * x - 1 + np.random.default_rng(6).normal(0, 1, N_ROWS)


def write_source(name: str, row_group_size: int) -> None:
    x, y = whole_table()
    if name.endswith(".csv"):
        pyarrow.csv.write_csv(pa.table({"x": x, "y": y}), name)
    else:
        pyarrow.parquet.write_table(pa.table({"x": x, "y": y}), name, row_group_size=row_group_size)


def expected_points(test_fraction: float, split_seed: int, max_points: int, seed: int,
                    table: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """(x, y) of each part's rows shown, chosen from the whole arrays in memory (whole_table, or `table`'s
    rows without a missing value): each part gets its share of max_points, and a part with more rows than its
    share shows a seeded choice of them, in their order."""
    x, y = whole_table() if table is None else table
    complete = ~(np.isnan(x) | np.isnan(y))
    x, y = x[complete], y[complete]
    held_out = held_out_rows(len(x), test_fraction, split_seed)
    parts = {"train": ~held_out, "test": held_out} if held_out.any() else {"train": ~held_out}
    shown = {}
    for name, mask in parts.items():
        part = np.column_stack([x[mask], y[mask]])
        budget = max(1, max_points * len(part) // len(x))
        if len(part) > budget:
            part = part[np.sort(np.random.default_rng(seed).choice(len(part), size=budget, replace=False))]
        shown[name] = part
    return shown


def shown_points(source: str, test_fraction: float, split_seed: int, max_points: int, seed: int,
                 missing: str = "error"):
    """What visualize shows: its EarlySample where it plans one, points_of."""
    data = DataParams(source=source, features=["x"], target="y", missing=missing, degree=1,
                      test_fraction=test_fraction, split_seed=split_seed, max_levels=50)
    early = drawing.EarlySample.planned(data, max_points, seed)
    points = drawing.points_of(load_split(data, fit_intercept=True, seen=early), max_points, seed, early)
    return {each.name: np.column_stack([each.features[:, 0], each.target]) for each in points}, points


@pytest.fixture
def rows_read_again(monkeypatch) -> list[np.ndarray]:
    """The positions each Part.rows_at call reads again, on a table too large to keep (KEPT_BYTES 0)."""
    monkeypatch.setattr(pipeline.dataset, "KEPT_BYTES", 0)
    calls, rows_at = [], parts.Part.rows_at
    monkeypatch.setattr(parts.Part, "rows_at", lambda part, positions: calls.append(positions) or rows_at(part, positions))
    return calls


@pytest.mark.parametrize("source, row_group_size", [("points.parquet", 7), ("points.parquet", 1 << 20),
                                                    ("points.csv", None)])
@pytest.mark.parametrize("chunk_rows", [1, 6, 1 << 18])
@pytest.mark.parametrize("test_fraction, max_points", [(0.2, 30), (0.0, 9), (0.3, 1000)])
def test_the_scatter_shows_the_rows_a_seeded_choice_picks_from_the_whole_table(
        tmp_path, monkeypatch, source, row_group_size, chunk_rows, test_fraction, max_points):
    monkeypatch.chdir(tmp_path)
    write_source(source, row_group_size)
    monkeypatch.setattr(pipeline.files, "GROUP_ROWS", 4)  # a CSV file is a table in memory, read in groups of GROUP_ROWS
    monkeypatch.setattr(drawing, "chunks", lambda part: rows.chunks(part, size=chunk_rows))
    shown, points = shown_points(source, test_fraction, split_seed=3, max_points=max_points, seed=11)
    expected = expected_points(test_fraction, split_seed=3, max_points=max_points, seed=11)
    assert list(shown) == list(expected)
    for name in expected:
        assert np.array_equal(shown[name], expected[name]), name
    assert sum(each.n_rows for each in points) == N_ROWS


def test_a_sample_differs_with_its_seed_and_shows_how_many_rows_it_stands_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_source("points.parquet", row_group_size=7)
    shown, points = shown_points("points.parquet", 0.2, split_seed=0, max_points=30, seed=0)
    other, _ = shown_points("points.parquet", 0.2, split_seed=0, max_points=30, seed=1)
    assert not np.array_equal(shown["train"], other["train"])
    assert [each.label for each in points] == ["train (24 of 80 rows)", "test (6 of 20 rows)"]


@pytest.mark.parametrize("row_group_size", [7, 1 << 20])
@pytest.mark.parametrize("test_fraction, max_points", [(0.2, 30), (0.0, 9), (0.3, 1000), (0.5, 2)])
def test_a_table_too_large_to_keep_shows_the_rows_picked_as_its_check_read_them(
        tmp_path, monkeypatch, rows_read_again, row_group_size, test_fraction, max_points):
    monkeypatch.chdir(tmp_path)
    write_source("points.parquet", row_group_size)
    shown, points = shown_points("points.parquet", test_fraction, split_seed=3, max_points=max_points, seed=11)
    expected = expected_points(test_fraction, split_seed=3, max_points=max_points, seed=11)
    assert list(shown) == list(expected)
    for name in expected:
        assert np.array_equal(shown[name], expected[name]), name
    assert rows_read_again == []  # picked during the check, not read again


def test_rows_left_out_of_a_table_too_large_to_keep_have_its_sample_read_again(tmp_path, monkeypatch,
                                                                                 rows_read_again):
    monkeypatch.chdir(tmp_path)
    x, y = whole_table()
    x[5], y[17] = np.nan, np.nan  # one row left out by data.missing: drop, one unlabeled
    pyarrow.parquet.write_table(pa.table({"x": x, "y": y}), "points.parquet", row_group_size=7)
    shown, points = shown_points("points.parquet", 0.2, split_seed=3, max_points=30, seed=11, missing="drop")
    expected = expected_points(0.2, split_seed=3, max_points=30, seed=11, table=(x, y))
    for name in expected:
        assert np.array_equal(shown[name], expected[name]), name
    assert len(rows_read_again) == 2  # the plan assumed every row split: each part's sample is read again
