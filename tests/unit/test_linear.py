"""The fitted-model type, the least-squares baseline (against exact rational answers) and the weights file."""

import math
import pickle
import threading
import tracemalloc
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from safetensors.numpy import save

import pipeline.dataset
import pipeline.files
import pipeline.holdout
import pipeline.rows
from exact import correlated_table, exact_least_squares, reference_table, relative_errors, through_origin_table
from pipeline.dataset import open_table
from pipeline.errors import PipelineError
from pipeline.linear import LinearModel, load_weights, save_weights
from pipeline.factoring import least_squares
from pipeline.parts import Part
from pipeline.rows import Table
from pipeline.scores import ChunkSums, mse, prediction_gap, r2, scores, scores_of_parts


def coefficients_of(model: LinearModel, fit_intercept: bool = True) -> list[float]:
    return [model.intercept] * fit_intercept + list(model.coefficients)


@pytest.mark.parametrize("table", [reference_table, correlated_table], ids=["one feature", "six correlated"])
def test_least_squares_matches_the_exact_rational_solution(table):
    features, target = table()
    names = tuple(f"f{column}" for column in range(features.shape[1]))
    found = coefficients_of(least_squares(Table(features, target), names, True, "t.csv"))
    assert max(relative_errors(found, exact_least_squares(features, target))) < 1e-9


def test_least_squares_without_an_intercept_matches_the_exact_solution():
    features, target = through_origin_table()
    model = least_squares(Table(features, target), ("x",), False, "t.csv")
    assert model.intercept == 0.0
    assert max(relative_errors(list(model.coefficients), exact_least_squares(features, target, False))) < 1e-9


def test_least_squares_is_not_the_normal_equations():
    # A column far from zero and nearly constant: the normal equations in float64 lose every digit of
    # the slope, an orthogonal method keeps it.
    x = 1e8 + np.arange(6.0)
    y = 3.0 * (x - 1e8) + 0.5
    model = least_squares(Table(x[:, None], y), ("x",), True, "t.csv")
    assert model.coefficients[0] == pytest.approx(3.0, rel=1e-9)
    normal = np.linalg.solve(*(lambda design: (design.T @ design, design.T @ y))(np.column_stack([np.ones(6), x])))
    assert abs(normal[1] - 3.0) > 1e-3  # what this test would not notice if least_squares solved them


def test_linearly_dependent_features_are_named():
    x = np.arange(10.0)
    with pytest.raises(PipelineError, match=r"t.csv: feature 'double' is a linear combination of 'x' and the intercept"):
        least_squares(Table(np.column_stack([x, 2 * x + 1]), x), ("x", "double"), True, "t.csv")


def test_a_model_predicts_mse_r2_and_gap():
    model = LinearModel(("a", "b"), (2.0, -1.0), 0.5)
    features = np.array([[1.0, 2.0], [3.0, 0.0], [0.0, 1.0]])
    assert list(model.predict(features)) == [0.5, 6.5, -0.5]
    target = np.array([0.5, 6.5, 0.5])
    rows = Table(features, target)
    assert mse(model, rows) == pytest.approx(1 / 3)
    # SST about the mean (5/2 … ) and, without an intercept, about zero.
    mean = target.mean()
    assert r2(model, rows, True) == pytest.approx(1 - 1 / ((target - mean) ** 2).sum())
    assert r2(model, rows, False) == pytest.approx(1 - 1 / (target**2).sum())
    other = LinearModel(("a", "b"), (2.0, -1.0), 0.5 + target.std())
    assert prediction_gap(model, other, rows) == pytest.approx(1.0)
    assert model.as_dict() == {"a": 2.0, "b": -1.0, "intercept": 0.5}
    assert LinearModel.from_dict(("a", "b"), model.as_dict()) == model


def test_a_wide_model_predicts_each_row_as_its_terms_added_in_order():
    # Predictions go a block of rows at a time (files.row_blocks): each row's sum must still be the intercept,
    # then each coefficient's term in column order, as Python's floats add them one by one.
    generator = np.random.default_rng(0)
    features = generator.standard_normal((5000, 40)) * 10.0 ** generator.integers(-8, 8, 40)
    model = LinearModel(tuple(f"f{k}" for k in range(40)), tuple(generator.standard_normal(40).tolist()), 0.3)

    def one_by_one(row: np.ndarray) -> float:
        total = model.intercept
        for coefficient, value in zip(model.coefficients, row.tolist()):
            total += coefficient * value
        return total

    assert model.predict(features).tolist() == [one_by_one(row) for row in features]


# --- Streamed: chunk by chunk, whatever the number of rows -----------------------------------------------


@pytest.fixture
def tiny_chunks(monkeypatch):
    """Chunks, in-memory groups and split blocks of a few rows, so that a small table streams as a large one would."""
    def shrink(chunk_rows: int, group_rows: int = 5, split_block: int = 11):
        monkeypatch.setattr(pipeline.rows, "CHUNK_ROWS", chunk_rows)
        monkeypatch.setattr(pipeline.files, "GROUP_ROWS", group_rows)
        monkeypatch.setattr(pipeline.holdout, "SPLIT_BLOCK", split_block)
    return shrink


def names_of(features: np.ndarray) -> tuple[str, ...]:
    return tuple(f"f{column}" for column in range(features.shape[1]))


def sorted_correlated_table() -> tuple[np.ndarray, np.ndarray]:
    features, target = correlated_table()
    order = np.argsort(features[:, 5], kind="stable")
    return features[order], target[order]


def constant_at_first_table() -> tuple[np.ndarray, np.ndarray]:
    """Feature 1 is constant over the first 40 rows, then varies: constant within the first chunks alone."""
    features, target = correlated_table()
    features = features[:, :3].copy()
    features[:40, 1] = features[0, 1]
    return features, target


def dependent_at_first_table() -> tuple[np.ndarray, np.ndarray]:
    """Feature 1 is 2 × feature 0 + 1 over the first 40 rows only: a linear combination within early chunks."""
    features, target = correlated_table()
    features = features[:, :3].copy()
    features[:40, 1] = 2 * features[:40, 0] + 1
    return features, target


TABLES = {"one feature": reference_table, "six correlated": correlated_table,
          "sorted by a feature": sorted_correlated_table, "constant at first": constant_at_first_table,
          "dependent at first": dependent_at_first_table, "through the origin": through_origin_table}


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("chunk_rows", [1, 3, 7, 64])
def test_least_squares_over_many_chunks_matches_the_exact_rational_solution(tiny_chunks, chunk_rows, table,
                                                                           fit_intercept):
    tiny_chunks(chunk_rows)
    features, target = TABLES[table]()
    model = least_squares(Table(features, target), names_of(features), fit_intercept, "t.csv")
    exact = exact_least_squares(features, target, fit_intercept)
    assert max(relative_errors(coefficients_of(model, fit_intercept), exact)) < 1e-12


def write_parquet(path, features: np.ndarray, target: np.ndarray, row_group_size: int):
    columns = {name: features[:, column] for column, name in enumerate(names_of(features))} | {"y": target}
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return open_table(path, names_of(features), "y")


@pytest.mark.parametrize("table", ["six correlated", "constant at first"])
def test_a_parquet_file_gives_the_same_bits_whatever_its_row_groups(tmp_path, tiny_chunks, table):
    tiny_chunks(16)
    features, target = TABLES[table]()
    names = names_of(features)
    found = []
    for row_group_size in (7, 50, 1000):
        source = write_parquet(tmp_path / f"{row_group_size}.parquet", features, target, row_group_size)
        train = Part(source, False, 0.2, 3)
        model = least_squares(train, names, True, "t.parquet")
        found.append((model, scores(model, model, train, True), scores(model, model, Part(source, True, 0.2, 3), True)))
    assert found[0] == found[1] == found[2]
    # The training rows, picked in memory and solved exactly: the same answer.
    held_out = pipeline.holdout.held_out(len(target), 0.2, 3)
    assert found[0][1].n == np.count_nonzero(~held_out) and found[0][2].n == np.count_nonzero(held_out)
    exact = exact_least_squares(features[~held_out], target[~held_out])
    assert max(relative_errors(coefficients_of(found[0][0]), exact)) < 1e-12


@pytest.mark.parametrize("kept_bytes", [pipeline.rows.KEPT_BYTES, 0])
def test_both_parts_scored_in_one_pass_have_the_bits_of_each_part_scored_alone(tmp_path, tiny_chunks, monkeypatch,
                                                                              kept_bytes):
    tiny_chunks(16)
    monkeypatch.setattr(pipeline.dataset, "KEPT_BYTES", kept_bytes)  # 0: a file read again each pass
    features, target = correlated_table()
    source = write_parquet(tmp_path / "t.parquet", features, target, 7)
    parts = [Part(source, False, 0.2, 3), Part(source, True, 0.2, 3)]
    model = LinearModel(names_of(features), (1.0, -2.0, 0.3, 0.04, -0.005, 1e-4), 5.0)
    baseline = least_squares(parts[0], names_of(features), True, "t.parquet")
    seen: dict[str, list[bytes]] = {"alone": [], "together": []}

    def each_chunk(way: str):
        return lambda chunk, residuals: seen[way].append(chunk.target.tobytes() + residuals.tobytes())

    alone = [scores(model, baseline, parts[0], True, each_chunk("alone")), scores(model, baseline, parts[1], True)]
    assert scores_of_parts(model, baseline, parts, True, each_chunk("together")) == alone
    assert seen["together"] == seen["alone"] and len(seen["alone"]) > 1  # the training rows' chunks, in order


@pytest.mark.parametrize("kept_bytes", [pipeline.rows.KEPT_BYTES, 0])
def test_the_prediction_gap_is_scores_gap_to_the_bit_from_a_pass_that_sums_only_what_it_needs(
        tmp_path, tiny_chunks, monkeypatch, kept_bytes):
    """train's report: the largest difference of prediction over the sd of the target, rows streamed in chunks."""
    tiny_chunks(16)
    monkeypatch.setattr(pipeline.dataset, "KEPT_BYTES", kept_bytes)  # 0: a file read again each pass
    features, target = correlated_table()
    training = Part(write_parquet(tmp_path / "t.parquet", features, target, 7), False, 0.2, 3)
    model = LinearModel(names_of(features), (1.0, -2.0, 0.3, 0.04, -0.005, 1e-4), 5.0)
    baseline = least_squares(training, names_of(features), True, "t.parquet")
    gap = prediction_gap(model, baseline, training)
    assert gap == scores(model, baseline, training, True).gap
    rows = ~pipeline.holdout.held_out(len(target), 0.2, 3)
    x, y = features[rows], target[rows]
    largest = np.max(np.abs(model.predict(x) - baseline.predict(x)))  # elementwise: the same differences
    assert gap == pytest.approx(largest / float(np.std(y)), rel=1e-12)


def test_each_chunk_is_scored_by_another_thread_and_added_up_in_chunk_order(tiny_chunks, monkeypatch):
    """While the rows are read: the sums are a plain loop's over the chunks in order, to the bit."""
    tiny_chunks(7)
    features, target = correlated_table()
    model = LinearModel(names_of(features), (1.0, -2.0, 0.3, 0.04, -0.005, 1e-4), 5.0)
    baseline = LinearModel(names_of(features), (1.0, -2.0, 0.3, 0.04, -0.005, 2e-4), 4.0)
    scored_on = []
    of = ChunkSums.of.__func__
    monkeypatch.setattr(ChunkSums, "of", classmethod(lambda cls, *args: scored_on.append(threading.get_ident())
                                                     or of(cls, *args)))
    found = scores(model, baseline, Table(features, target), True)
    assert len(scored_on) == -(-len(target) // 7) and threading.get_ident() not in scored_on
    errors = about = mean = largest = 0.0
    n = 0
    for start in range(0, len(target), 7):
        x, y = features[start:start + 7], target[start:start + 7]
        errors += float(np.sum((y - model.predict(x)) ** 2))
        chunk_mean = float(np.sum(y)) / len(y)
        difference = chunk_mean - mean
        about += float(np.sum((y - chunk_mean) ** 2)) + difference ** 2 * n * len(y) / (n + len(y))
        mean += difference * len(y) / (n + len(y))
        n += len(y)
        largest = max(largest, float(np.max(np.abs(model.predict(x) - baseline.predict(x)))))
    assert (found.mse, found.r2, found.gap) == (errors / n, 1.0 - errors / n * n / about,
                                              largest / math.sqrt(about / n))


def test_a_prediction_beyond_float64_warns_from_no_thread_where_the_caller_ignores_it(tiny_chunks):
    """numpy's error settings are each thread's own: the scoring thread takes the caller's."""
    tiny_chunks(5)
    features, target = reference_table()
    huge = LinearModel(("x",), (1e308,), 1e308)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="ignore", invalid="ignore"):
            found = scores(huge, huge, Table(features * 10, target), True)
    assert not math.isfinite(found.mse)


def test_streamed_mse_r2_and_gap_equal_their_formulas_over_every_row(tiny_chunks):
    tiny_chunks(3)
    features, target = correlated_table()
    rows = Table(features, target)
    model = LinearModel(names_of(features), (1.0, -2.0, 0.3, 0.04, -0.005, 1e-4), 5.0)
    other = LinearModel(names_of(features), (1.0, -2.0, 0.3, 0.04, -0.005, 2e-4), 4.0)
    residuals = target - model.predict(features)
    assert mse(model, rows) == pytest.approx(np.mean(residuals**2), rel=1e-13)
    assert r2(model, rows, True) == pytest.approx(1 - np.sum(residuals**2) / np.sum((target - target.mean()) ** 2),
                                                  rel=1e-13)
    assert r2(model, rows, False) == pytest.approx(1 - np.sum(residuals**2) / np.sum(target**2), rel=1e-13)
    gap = np.max(np.abs(model.predict(features) - other.predict(features))) / target.std()
    assert prediction_gap(model, other, rows) == pytest.approx(gap, rel=1e-13)


def test_features_dependent_over_every_chunk_are_named_from_the_whole_factorisation(tiny_chunks):
    tiny_chunks(4)
    x = np.arange(30.0)
    with pytest.raises(PipelineError, match=r"t.csv: feature 'double' is a linear combination of 'x' and the intercept"):
        least_squares(Table(np.column_stack([x, 2 * x + 1, x**2]), x), ("x", "double", "square"), True, "t.csv")
    with pytest.raises(PipelineError, match=r"t.csv: feature 'one' is constant: expected at least two distinct values"):
        least_squares(Table(np.column_stack([x, np.ones(30), 2 * x]), x), ("x", "one", "double"), True, "t.csv")


class GeneratedRows:
    """Rows made group by group as they are read, never held together: 300 groups of 1000 rows."""

    def __len__(self) -> int:
        return 300_000

    def groups(self, share=pipeline.rows.WHOLE):
        return [lambda group=group: self.group(group) for group in range(300)]

    @staticmethod
    def group(group: int) -> Table:
        x = np.random.default_rng(group).uniform(-5, 5, (1000, 1))
        return Table(x, 2.5 * x[:, 0] - 1.0 + np.random.default_rng([group, 1]).normal(size=1000))


def test_memory_is_one_chunk_whatever_the_number_of_rows(tiny_chunks):
    tiny_chunks(1000)
    rows = GeneratedRows()
    least_squares(GeneratedRows.group(0), ("x",), True, "t.parquet")  # first calls allocate caches once
    tracemalloc.start()
    model = least_squares(rows, ("x",), True, "t.parquet")
    found = scores(model, model, rows, True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 500_000  # the rows are 4.8 MB; a chunk 16 kB
    assert model.coefficients[0] == pytest.approx(2.5, abs=0.01) and found.n == 300_000


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_weights_round_trip_through_safetensors(tmp_path, dtype, fit_intercept):
    model = LinearModel(("a", "b"), (0.1, -2.0), 0.3 if fit_intercept else 0.0)
    path = tmp_path / "model.safetensors"
    save_weights(path, model, dtype, fit_intercept)
    loaded = load_weights(path, ("a", "b"), fit_intercept)
    rounded = np.dtype(dtype).type
    assert loaded.coefficients == tuple(float(rounded(value)) for value in model.coefficients)
    assert loaded.intercept == float(rounded(model.intercept))
    save_weights(tmp_path / "again.safetensors", model, dtype, fit_intercept)
    assert (tmp_path / "again.safetensors").read_bytes() == path.read_bytes()


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def good_weights() -> dict:
    return {"weight": np.zeros((1, 2), np.float32), "bias": np.zeros(1, np.float32)}


WEIGHT_FILES = {
    "a pickle": (lambda marker: pickle.dumps(Payload(marker)), "is a pickle"),
    "a torch.save zip archive": (lambda marker: b"PK\x03\x04" + b"\0" * 100, "is a pickle"),
    "an empty file": (lambda marker: b"", "not a readable safetensors file"),
    "a truncated file": (lambda marker: save(good_weights())[:-3], "not a readable safetensors file"),
    "an oversized header": (lambda marker: (2**62).to_bytes(8, "little") + b"{}", "not a readable safetensors file"),
    "binary junk": (lambda marker: bytes(range(256)) * 4, "not a readable safetensors file"),
    "a missing bias": (lambda marker: save({"weight": np.zeros((1, 2), np.float32)}), r"holds tensors \['weight'\]"),
    "a wrong shape": (lambda marker: save({**good_weights(), "weight": np.zeros((1, 3), np.float32)}),
                      r"weight is \(1, 3\) float32: expected float32 or float64 of shape \(1, 2\)"),
    "integer weights": (lambda marker: save({**good_weights(), "weight": np.zeros((1, 2), np.int32)}), "int32"),
    "a NaN": (lambda marker: save({**good_weights(), "bias": np.array([np.nan], np.float32)}), "expected finite"),
}


@pytest.mark.parametrize("case", WEIGHT_FILES)
def test_a_bad_weights_file_gets_one_line_and_a_payload_never_runs(tmp_path, case):
    write, message = WEIGHT_FILES[case]
    marker = tmp_path / "payload-ran"
    path = tmp_path / "model.safetensors"
    path.write_bytes(write(marker))
    with pytest.raises(PipelineError, match=message) as raised:
        load_weights(path, ("a", "b"), True)
    assert str(raised.value).startswith(f"{path}: ") and "\n" not in str(raised.value)
    assert not marker.exists()
