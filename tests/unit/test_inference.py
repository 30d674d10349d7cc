"""Inference for the least-squares fit, against exact rational answers and closed forms: standard errors
from R, s², (XᵀX)⁻¹, leverage, t and F tests and intervals, and when training counts as converged."""

import math
import threading
import warnings

import numpy as np
import pytest

import pipeline.least_squares
import pipeline.qr
import pipeline.rows

from exact import (
    correlated_table, exact_inference, polynomial_table, reference_table, through_origin_table,
)
from pipeline.split import Split
from pipeline.errors import PipelineError
from pipeline.evaluate import evaluate
from pipeline.linear import INTERCEPT, LinearModel
from pipeline.convergence import convergence, Tolerances
from pipeline.factoring import fit_least_squares
from pipeline.rows import Table, powers

TOLERANCES = Tolerances("float64", 1e-4, 0.01)


def lre(found: float, exact) -> float:
    """The log relative error: −log10 of |found − exact| / |exact|, the digits that agree (16 when equal)."""
    exact = float(exact)
    return 16.0 if found == exact else -math.log10(abs(found - exact) / abs(exact))


def steep_degree_10() -> tuple[np.ndarray, np.ndarray]:
    """A steep, badly conditioned degree-10 polynomial on x in [-8.78, -3.13], like the certified table
    on which many packages fail: the raw power columns are collinear to 1e-15."""
    x = np.array([float(f"{value:.6g}") for value in np.linspace(-8.78, -3.13, 82)])
    return polynomial_table(10, x, [-1467.49, -2772.18, -2316.37, -1127.97, -354.48, -75.12, -10.875, -1.062,
                                    -0.067, -0.00247, -4.03e-5], noise=0.003)


TABLES = {  # name: (features and target, degree, fit_intercept, digits of coefficients, se, s)
    "a line": (reference_table(), 1, True, 9, 9, 9),
    "a line through the origin": (through_origin_table(), 1, False, 9, 9, 9),
    "six correlated features": (correlated_table(), 1, True, 8, 8, 9),
    "degree 5 on x = 0…20": (polynomial_table(5, np.arange(21.0), [1, 1, 1, 1, 1, 1], noise=100.0), 5, True, 9, 9, 9),
    "steep degree 10": (steep_degree_10(), 10, True, 6.5, 6.5, 7.5),
}


@pytest.mark.parametrize("qr", ["Gram-Schmidt", "Householder"])
@pytest.mark.parametrize("chunk", ["one chunk", "chunks of 16 rows"])
@pytest.mark.parametrize("name", TABLES)
def test_estimates_standard_errors_and_s_match_the_exact_rational_answers(name, chunk, qr, monkeypatch):
    # Both QRs (a wide table's LAPACK Householder, a narrow one's NumPy Gram-Schmidt), and factors merged
    # from chunk to chunk about each chunk's own means.
    if qr == "Householder":
        monkeypatch.setattr(pipeline.qr, "WIDE", 1)
    if chunk == "chunks of 16 rows":
        monkeypatch.setattr(pipeline.rows, "CHUNK_ROWS", 16)
    (features, target), degree, fit_intercept, coefficient_digits, se_digits, s_digits = TABLES[name]
    design = powers(features, degree)
    names = tuple(f"c{k}" for k in range(design.shape[1]))
    exact = exact_inference(design, target, fit_intercept)
    fit = fit_least_squares(Table(np.ascontiguousarray(design), target), names, fit_intercept, "t.csv")
    order = ([INTERCEPT] if fit_intercept else []) + list(names)
    estimates, errors = fit.model.as_dict(), fit.standard_errors()
    s = math.sqrt(exact["s2"])
    assert min(lre(estimates[key], value) for key, value in zip(order, exact["estimates"])) >= coefficient_digits
    assert lre(fit.residual_sd, s) >= s_digits
    assert min(lre(errors[key], s * math.sqrt(diagonal))
               for key, diagonal in zip(order, exact["inverse_diagonal"])) >= se_digits
    assert fit.df_resid == len(target) - len(order)


def test_a_householder_qr_of_pieces_stacked_column_by_column_has_the_bits_of_their_row_by_row_stack():
    # Least squares stacks the factor so far and each chunk in Fortran order, as LAPACK takes a matrix (no
    # strided copy); R must keep the bits of the row-major stack it replaced.
    generator = np.random.default_rng(0)
    pieces = [np.triu(generator.standard_normal((40, 40))), np.asfortranarray(generator.standard_normal((300, 40))),
              generator.standard_normal((1, 40))]
    stacked = pipeline.qr.stacked(pieces)
    assert stacked.flags.f_contiguous and np.array_equal(stacked, np.concatenate(pieces))
    assert np.array_equal(pipeline.qr.householder(stacked),
                          pipeline.qr.householder(np.concatenate(pieces)))


def test_leverage_is_the_exact_hat_value():
    features, target = correlated_table(rows=40)
    exact = exact_inference(features, target)
    fit = fit_least_squares(Table(features, target), tuple(f"c{k}" for k in range(6)), True, "t.csv")
    for row in (0, 17, 39):
        x0 = [1.0, *features[row]]
        hat = sum(x0[i] * exact["inverse"][i][j] * x0[j] for i in range(7) for j in range(7))
        assert lre(float(fit.leverage(features[row:row + 1])[0]), hat) >= 8
    # Hat values of the training rows sum to p, the trace of the hat matrix.
    assert float(np.sum(fit.leverage(features))) == pytest.approx(7, rel=1e-12)


def four_points() -> Split:
    """n − p = 2 degrees of freedom, where Student's t has a closed form: F(t) = 1/2 + t / (2·sqrt(2 + t²))."""
    x = np.array([[0.0], [1.0], [2.0], [4.0]])
    return Split("t.csv", Table(x, np.array([1.0, 2.5, 4.5, 8.0])), None)


def test_t_p_and_intervals_follow_students_t_with_n_minus_p_degrees_of_freedom():
    split = four_points()
    ols = fit_least_squares(split.train, ("x",), True, "t.csv").model
    metrics, _ = evaluate(split, ols, None, True, TOLERANCES, 0.9)
    row = metrics["inference"]["x"]
    t = row["t"]
    assert t == pytest.approx(ols.coefficients[0] / row["se"], rel=1e-15)
    assert row["p"] == pytest.approx(1 - abs(t) / math.sqrt(2 + t * t), rel=1e-12)  # two-sided, df = 2
    a = 0.9  # the quantile t* of 0.95 solves 2·F(t*) − 1 = 0.9: t*² = 2a² / (1 − a²)
    quantile = math.sqrt(2 * a * a / (1 - a * a))
    assert row["ci_low"] == pytest.approx(ols.coefficients[0] - quantile * row["se"], rel=1e-12)
    assert row["ci_high"] == pytest.approx(ols.coefficients[0] + quantile * row["se"], rel=1e-12)
    # One feature: the F test is the t test squared, with the same p.
    assert metrics["f"] == pytest.approx(t * t, rel=1e-12) and metrics["f_p"] == pytest.approx(row["p"], rel=1e-10)
    assert metrics["df_resid"] == 2
    r2 = metrics["train"]["r2"]
    assert metrics["r2_adj"] == pytest.approx(1 - (1 - r2) * 3 / 2, rel=1e-12)
    assert metrics["residual_sd"] == pytest.approx(math.sqrt(metrics["train"]["mse_ols"] * 4 / 2), rel=1e-12)


def test_without_an_intercept_f_and_r2_adj_are_the_uncentred_ones_statistics_packages_use():
    features, target = through_origin_table()
    fit = fit_least_squares(Table(features, target), ("x",), False, "t.csv")
    metrics, _ = evaluate(Split("t.csv", Table(features, target), None), fit.model, None,
                          False, TOLERANCES, 0.95)
    total = float(np.sum(target ** 2))  # about zero, not the mean
    rss = metrics["train"]["mse_ols"] * len(target)
    n = len(target)
    assert metrics["f"] == pytest.approx((total - rss) / (rss / (n - 1)), rel=1e-9)
    assert metrics["r2_adj"] == pytest.approx(1 - rss / total * n / (n - 1), rel=1e-12)
    assert "intercept" not in metrics["inference"]


def test_the_condition_number_is_that_of_the_standardised_design():
    features, target = correlated_table()
    fit = fit_least_squares(Table(features, target), tuple(f"c{k}" for k in range(6)), True, "t.csv")
    centred = features - features.mean(axis=0)
    standardised = centred / np.sqrt(np.sum(centred ** 2, axis=0))
    assert fit.condition_number() == pytest.approx(np.linalg.cond(standardised), rel=1e-5)


def test_an_exact_fit_has_zero_standard_errors_and_null_tests():
    x = np.arange(21.0)[:, None]
    target = sum(x[:, 0] ** k for k in range(6))  # y = 1 + x + … + x⁵, exactly
    split = Split("t.csv", Table(powers(x, 5), target), None)
    names = ("x", "x^2", "x^3", "x^4", "x^5")
    fit = fit_least_squares(split.train, names, True, "t.csv")
    metrics, _ = evaluate(split, fit.model, None, True, TOLERANCES, 0.95)
    assert fit.exact and metrics["residual_sd"] == 0.0 and metrics["f"] is None
    for name in (*names, "intercept"):
        row = metrics["inference"][name]
        assert row["se"] == 0.0 and row["t"] is None and row["p"] is None
        assert row["ci_low"] == row["ci_high"] == metrics["ols"][name]
        assert metrics["ols"][name] == pytest.approx(1.0, rel=1e-8)


def noisy_line(rows: int, seed: int = 0) -> Table:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-5, 5, rows)
    return Table(x[:, None], 2.5 * x - 1.0 + rng.normal(size=rows))


def test_converged_needs_every_coefficient_within_a_hundredth_of_a_standard_error():
    rows = noisy_line(1000)
    fit = fit_least_squares(rows, ("x",), True, "t.csv")
    se = fit.standard_errors()
    slope, intercept = fit.model.coefficients[0], fit.model.intercept
    close = LinearModel(("x",), (slope + 0.005 * se["x"],), intercept)
    far = LinearModel(("x",), (slope,), intercept + 0.05 * se[INTERCEPT])
    judged = convergence(close, fit, 1e-6, Tolerances("float64", 1e-4, 0.01))
    assert judged.coefficient_gap == pytest.approx(0.005, rel=1e-6) and judged.converged
    judged = convergence(far, fit, 1e-6, Tolerances("float64", 1e-4, 0.01))  # predictions close, intercept 0.05 se away
    assert judged.coefficient_gap == pytest.approx(0.05, rel=1e-6) and not judged.converged
    assert "NOT converged: raise train.epochs" in judged.verdict("y", TOLERANCES)


def test_standard_errors_below_what_float32_resolves_are_not_converged_and_suggest_float64():
    # 2,000,000 rows with little noise: se of the slope about 3e-7, a float32 step of 2.5 is 2.4e-7.
    rng = np.random.default_rng(1)
    x = rng.uniform(-5, 5, 2_000_000)
    rows = Table(x[:, None], 2.5 * x - 1.0 + rng.normal(0, 0.001, len(x)))
    fit = fit_least_squares(rows, ("x",), True, "t.csv")
    judged = convergence(fit.model, fit, 0.0, Tolerances("float32", 1e-4, 0.01))
    assert judged.float32_resolution > 0.01 and not judged.converged
    assert "set train.dtype: float64" in judged.verdict("y", TOLERANCES)
    assert convergence(fit.model, fit, 0.0, TOLERANCES).converged


def test_the_least_squares_file_round_trips_and_a_bad_one_gets_one_line(tmp_path):
    fit = fit_least_squares(noisy_line(50), ("x",), True, "t.csv")
    fit.save(tmp_path / "ols.safetensors")
    again = type(fit).load(tmp_path / "ols.safetensors")
    assert again.model == fit.model and again.n == 50 and again.rss == fit.rss and again.fit_intercept
    assert again.standard_errors() == fit.standard_errors()
    (tmp_path / "bad.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(PipelineError, match=r"bad\.safetensors: its 'least_squares' metadata is not .*: "
                                            r"expected each once \(not the least-squares fit evaluate writes: .*`dvc repro`\)"):
        type(fit).load(tmp_path / "bad.safetensors")


def test_prediction_intervals_widen_with_leverage_and_match_the_closed_form():
    split = four_points()
    fit = fit_least_squares(split.train, ("x",), True, "t.csv")
    x0 = np.array([[1.0], [10.0]])
    quantile = math.sqrt(2 * 0.9 ** 2 / (1 - 0.9 ** 2))  # t with 2 df at 0.95, as above
    x = split.train.features[:, 0]
    sxx = float(np.sum((x - x.mean()) ** 2))
    for row, value in enumerate(x0[:, 0]):
        leverage = 1 / 4 + (value - x.mean()) ** 2 / sxx  # a line's hat value, in closed form
        expected = quantile * fit.residual_sd * math.sqrt(1 + leverage)
        assert fit.half_width_at(fit.leverage(x0), 0.9, True)[row] == pytest.approx(expected, rel=1e-12)
        assert fit.half_width_at(fit.leverage(x0), 0.9, False)[row] == pytest.approx(
            expected / math.sqrt(1 + leverage) * math.sqrt(leverage), rel=1e-12)


def test_a_feature_near_1e_300_is_one_line_without_a_numpy_warning():
    """Its squares underflow: the fit would divide 0 by 0. No raw warning, and no advice to set a dtype."""
    rng = np.random.default_rng(0)
    x = rng.uniform(1, 2, (100, 1)) * 1e-300
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(PipelineError, match=r"^t\.csv: feature 'x' spans only 9\.\d+e-301: expected a spread of "
                                                r"at least 1e-100, whose squares float64 holds \(rescale it\)$"):
            fit_least_squares(Table(x, rng.normal(size=100)), ("x",), True, "t.csv")


def test_a_least_squares_coefficient_beyond_float64_does_not_advise_float64():
    from pipeline.train import require_representable

    with pytest.raises(PipelineError, match=r"in train\.dtype = float64 \(rescale that column\)$"):
        require_representable(LinearModel(("x",), (float("inf"),), 0.0), "float64", "t.csv")
    with pytest.raises(PipelineError, match=r"\(rescale that column, or set train\.dtype: float64\)$"):
        require_representable(LinearModel(("x",), (1e39,), 0.0), "float32", "t.csv")


# --- Least squares factored as the check reads the rows (EarlyFit) ---------------------------------------------


def a_large_table(tmp_path, n_rows: int = 600_000, unlabeled: tuple[int, ...] = (), dropped: tuple[int, ...] = ()):
    """t.parquet (in tmp_path, the working folder): two features in row groups of 70,000 rows, which the
    chunks of a pass (chunk_rows: 262,144) straddle; 450,000 training rows make a chunk before the last group."""
    import pyarrow as pa
    import pyarrow.parquet
    rng = np.random.default_rng(4)
    features = rng.uniform(-3, 3, size=(n_rows, 2))
    target = features @ [1.5, -0.5] + 2.0 + rng.normal(size=n_rows)
    target[list(unlabeled)] = np.nan
    features[list(dropped), 1] = np.nan
    pyarrow.parquet.write_table(pa.table({"x1": features[:, 0], "x2": features[:, 1], "y": target}),
                                tmp_path / "t.parquet", row_group_size=70_000)


def data_params(degree: int = 1, test_fraction: float = 0.25, missing: str = "error"):
    from pipeline.params import DataParams
    return DataParams(source="t.parquet", features=["x1", "x2"], target="y", missing=missing, degree=degree,
                      test_fraction=test_fraction, split_seed=7, max_levels=50)


@pytest.mark.parametrize("degree, test_fraction, fit_intercept", [
    (1, 0.25, True), (3, 0.25, True), (1, 0.0, True), (2, 0.25, False),
])
def test_least_squares_factored_as_the_check_reads_each_group_is_the_pass_after_it_bit_for_bit(
        tmp_path, monkeypatch, degree, test_fraction, fit_intercept):
    from pipeline.factoring import EarlyFit
    from pipeline.split import load_split
    monkeypatch.chdir(tmp_path)
    a_large_table(tmp_path)
    data = data_params(degree, test_fraction)
    early = EarlyFit(600_000, test_fraction, 7, degree, len(data.columns), fit_intercept)
    factored_on, take = [], early.take
    early.take = lambda chunk: factored_on.append(threading.get_ident()) or take(chunk)
    split = load_split(data, fit_intercept, seen=early)
    assert early.factoring.n >= 262_144  # a chunk or more factored before the read was over
    found = early.fit(split, data.columns)
    assert found is not None and early.factoring.n == len(split.train)
    # On a thread apart from the check's, but the last chunk: what the last group left, taken after the read.
    assert len(set(factored_on[:-1])) == 1 and threading.get_ident() not in factored_on[:-1]
    found.save(tmp_path / "early.safetensors")
    fit_least_squares(split.train, data.columns, fit_intercept, split.source).save(tmp_path / "pass.safetensors")
    assert (tmp_path / "early.safetensors").read_bytes() == (tmp_path / "pass.safetensors").read_bytes()


@pytest.mark.parametrize("left_out", [{"unlabeled": (12,)}, {"dropped": (599_999,)}])
def test_rows_the_plan_did_not_count_on_leave_the_fit_to_its_own_pass(tmp_path, monkeypatch, left_out):
    from pipeline.factoring import EarlyFit, fit_training_rows
    from pipeline.split import load_split
    monkeypatch.chdir(tmp_path)
    a_large_table(tmp_path, **left_out)
    data = data_params(missing="drop")
    early = EarlyFit(600_000, 0.25, 7, 1, 2, True)
    split = load_split(data, True, seen=early)
    assert early.fit(split, data.columns) is None
    fit_training_rows(split, data.columns, True, early).save(tmp_path / "fallen-back.safetensors")
    fit_least_squares(split.train, data.columns, True, split.source).save(tmp_path / "pass.safetensors")
    assert (tmp_path / "fallen-back.safetensors").read_bytes() == (tmp_path / "pass.safetensors").read_bytes()


def test_a_value_the_check_refuses_is_its_one_line_without_a_warning_from_the_plan(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet
    from pipeline.factoring import EarlyFit
    from pipeline.split import load_split
    monkeypatch.chdir(tmp_path)
    a_large_table(tmp_path)
    table = pyarrow.parquet.read_table(tmp_path / "t.parquet").to_pydict()
    table["y"][100:110] = [1e300] * 10  # their squares overflow in the plan's sums (training rows among them)
    pyarrow.parquet.write_table(pa.table(table), tmp_path / "t.parquet", row_group_size=70_000)
    early = EarlyFit(600_000, 0.25, 7, 1, 2, True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(PipelineError, match=r"^t.parquet: column 'y' has 10 values beyond ±1e\+15"):
            load_split(data_params(), True, seen=early)
    assert [str(warning.message) for warning in caught] == [] and early.rows_seen == -1


def test_a_parquet_table_a_stage_keeps_in_memory_gets_a_plan_as_one_it_reads_again_does_and_a_csv_file_none(
        tmp_path, monkeypatch):
    """Its QR overlaps the check instead of following it: the same fit, bit for bit (the tests above)."""
    import pyarrow.csv
    import pyarrow.parquet
    from pipeline.dataset import all_fit
    from pipeline.factoring import EarlyFit
    monkeypatch.chdir(tmp_path)
    a_large_table(tmp_path, n_rows=1000)
    assert all_fit(1000, 3)
    plan = EarlyFit.planned(data_params(), True)
    assert plan is not None and plan.n_rows == 1000
    pyarrow.csv.write_csv(pyarrow.parquet.read_table(tmp_path / "t.parquet"), tmp_path / "t.csv")
    assert EarlyFit.planned(data_params().model_copy(update={"source": "t.csv"}), True) is None
