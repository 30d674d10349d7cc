"""Heteroskedasticity-robust standard errors (evaluate.cov_type HC0 … HC3) and the Wald F test, against the
exact sandwich in rational arithmetic; and what ranks models across experiments (r2, log_likelihood, aic,
bic), centred where the columns hold a constant of their own (indicator columns that sum to one)."""

import functools
import math
from fractions import Fraction

import numpy as np
import pytest

import pipeline.covariance
import pipeline.least_squares
import pipeline.qr
import pipeline.rows
from exact import correlated_table, exact_inference, exact_sandwich, exact_wald_f, reference_table, through_origin_table
from pipeline.split import Split
from pipeline.errors import PipelineError
from pipeline.evaluate import evaluate, summary
from pipeline.convergence import Tolerances
from pipeline.least_squares import LeastSquares
from pipeline.factoring import fit_least_squares
from pipeline.linear import INTERCEPT, LinearModel
from pipeline.params import EvaluateParams, load_params
from pipeline.rows import Table

TOLERANCES = Tolerances("float64", 1e-4, 0.01)
COV_TYPES = ("HC0", "HC1", "HC2", "HC3")


def lre(found: float, exact) -> float:
    """The log relative error: the significant digits that agree (16 when equal)."""
    exact = float(exact)
    return 16.0 if found == exact else -math.log10(abs(found - exact) / abs(exact))


def indicator_table(rows: int = 30, seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """x and three 0/1 columns, one per group, that sum to one on every row: without an intercept the
    columns hold a constant all the same (a full-rank factor's coding). The noise grows with x: a funnel."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.uniform(1, 20, rows), 1)
    group = np.arange(rows) % 3
    indicators = (group[:, None] == np.arange(3)).astype(float)
    y = np.round(1.5 * x + np.array([3.0, -2.0, 5.0])[group] + rng.normal(0, 0.3, rows) * x, 2)
    return np.column_stack([x, indicators]), y


TABLES = {  # name: (features and target, fit_intercept, digits of the HC standard errors)
    "a line": (reference_table(), True, 14),
    "a line through the origin": (through_origin_table(), False, 14),
    "six correlated features": (correlated_table(rows=24), True, 12.5),
    "indicators that sum to one, no intercept": (indicator_table(), False, 14),
}


@functools.cache
def exact(name: str) -> tuple[dict, dict]:
    (features, target), fit_intercept, _ = TABLES[name]
    return exact_inference(features, target, fit_intercept), exact_sandwich(features, target, fit_intercept)


def fitted(name: str, cov_type: str, level: float = 0.95) -> tuple[dict, LeastSquares, tuple[str, ...]]:
    """evaluate's metrics of least squares on the table, the fit, and the names in exact_inference's order."""
    (features, target), fit_intercept, _ = TABLES[name]
    names = tuple(f"c{k}" for k in range(features.shape[1]))
    split = Split("t.csv", Table(np.ascontiguousarray(features), target), None)
    fit = fit_least_squares(split.train, names, fit_intercept, "t.csv")
    metrics, _ = evaluate(split, fit.model, None, fit_intercept, TOLERANCES, level, cov_type)
    return metrics, fit, (INTERCEPT,) * fit_intercept + names


@pytest.mark.parametrize("qr", ["Gram-Schmidt", "Householder"])
@pytest.mark.parametrize("chunk", ["one chunk", "chunks of 16 rows"])
@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("name", TABLES)
def test_hc_standard_errors_match_the_exact_sandwich(name, cov_type, chunk, qr, monkeypatch):
    # A wide table's LAPACK QR and BLAS sums, a narrow one's NumPy sums; the middle summed chunk by chunk.
    if qr == "Householder":
        monkeypatch.setattr(pipeline.qr, "WIDE", 1)
    if chunk == "chunks of 16 rows":
        monkeypatch.setattr(pipeline.rows, "CHUNK_ROWS", 16)
    metrics, _, order = fitted(name, cov_type)
    covariance = exact(name)[1][cov_type]
    found = [metrics["inference"][key]["se"] for key in order]
    assert min(lre(se, math.sqrt(covariance[k][k])) for k, se in enumerate(found)) >= TABLES[name][2]
    assert metrics["cov_type"] == cov_type


def test_t_p_and_intervals_follow_the_robust_errors_with_students_t_on_the_residual_df():
    # Four points: n − p = 2, where Student's t has a closed form, F(t) = 1/2 + t / (2·sqrt(2 + t²)).
    features, target = np.array([[0.0], [1.0], [2.0], [4.0]]), np.array([1.0, 2.5, 4.5, 8.0])
    split = Split("t.csv", Table(features, target), None)
    fit = fit_least_squares(split.train, ("x",), True, "t.csv")
    metrics, _ = evaluate(split, fit.model, None, True, TOLERANCES, 0.9, "HC1")
    se = math.sqrt(exact_sandwich(features, target)["HC1"][1][1])
    row, estimate = metrics["inference"]["x"], fit.model.coefficients[0]
    assert lre(row["se"], se) >= 14
    t = estimate / se
    assert lre(row["t"], t) >= 14 and lre(row["p"], 1 - abs(t) / math.sqrt(2 + t * t)) >= 12
    quantile = math.sqrt(2 * 0.9 ** 2 / (1 - 0.9 ** 2))  # t with 2 df at 0.95
    assert lre(row["ci_low"], estimate - quantile * se) >= 13 and lre(row["ci_high"], estimate + quantile * se) >= 13
    # One feature: the Wald F is the robust t squared, on 1 and n − p degrees of freedom, with the same p.
    assert lre(metrics["f"], t * t) >= 13 and lre(metrics["f_p"], row["p"]) >= 11
    # The classical errors stay where cov_type does not reach: convergence is judged on them.
    assert metrics["coefficient_gap"] == 0.0 and fit.standard_errors()["x"] != row["se"]
    off = LinearModel(("x",), (estimate + 0.01,), fit.model.intercept)  # a learnt slope 0.01 away
    judged, _ = evaluate(split, off, None, True, TOLERANCES, 0.9, "HC1")
    assert judged["coefficient_gap"] == pytest.approx(0.01 / fit.standard_errors()["x"], rel=1e-9)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_the_f_test_is_the_exact_wald_test_of_every_coefficient_but_the_constant(cov_type):
    if cov_type in ("HC0", "HC1"):  # HC2's and HC3's exact fractions grow too long to solve quickly for six
        metrics, _, order = fitted("six correlated features", cov_type)
        estimates, covariance = exact("six correlated features")[0]["estimates"], \
            exact("six correlated features")[1][cov_type]
        slopes = [[int(j == k) for j in range(len(order))] for k in range(1, len(order))]
        assert lre(metrics["f"], exact_wald_f(estimates, covariance, slopes)) >= 11
        assert metrics["df_model"] == 6
    # Without an intercept, where the indicators hold a constant: "the model is a constant", that is x's
    # coefficient zero and the three groups' equal. statsmodels gives nan here; the test is the same one
    # as with an intercept, as the classical F is.
    metrics, _, order = fitted("indicators that sum to one, no intercept", cov_type)
    estimates, covariance = exact("indicators that sum to one, no intercept")[0]["estimates"], \
        exact("indicators that sum to one, no intercept")[1][cov_type]
    hypothesis = [[1, 0, 0, 0], [0, 1, -1, 0], [0, 1, 0, -1]]
    assert lre(metrics["f"], exact_wald_f(estimates, covariance, hypothesis)) >= 12
    assert metrics["df_model"] == 3


@pytest.mark.parametrize("name", TABLES)
def test_r2_log_likelihood_aic_and_bic_are_statsmodels_from_the_exact_residuals(name):
    metrics, fit, order = fitted(name, "nonrobust")
    (features, target), fit_intercept, _ = TABLES[name]
    rss, n, k = exact(name)[0]["rss"], len(target), len(order)
    constant = fit_intercept or name.startswith("indicators")
    ys = [Fraction(float(y)) for y in target]
    mean = sum(ys) / n if constant else 0
    total = sum((y - mean) ** 2 for y in ys)
    likelihood = -n / 2 * (math.log(2 * math.pi) + math.log(Fraction(rss, n)) + 1)  # log of the exact ratio
    assert lre(metrics["r2"], 1 - rss / total) >= 14
    assert lre(metrics["r2_adj"], 1 - rss / total * Fraction(n - constant, n - k)) >= 14
    assert lre(metrics["log_likelihood"], likelihood) >= 13
    assert lre(metrics["aic"], -2 * likelihood + 2 * k) >= 13
    assert lre(metrics["bic"], -2 * likelihood + math.log(n) * k) >= 13
    assert metrics["n_coefficients"] == k and metrics["cov_type"] == "nonrobust"
    if constant:  # the classical F of the model against a constant alone, on k − 1 and n − k df
        assert lre(metrics["f"], (total - rss) / (k - 1) / (rss / (n - k))) >= 12
    else:  # against zero
        assert lre(metrics["f"], (total - rss) / k / (rss / (n - k))) >= 12


def test_columns_that_sum_to_one_fit_as_an_intercept_and_one_fewer_would():
    # The same model spelled two ways: three indicators without an intercept, or an intercept and two.
    (features, target), _, _ = TABLES["indicators that sum to one, no intercept"]
    implicit, fit, _ = fitted("indicators that sum to one, no intercept", "HC3")
    explicit_split = Split("t.csv", Table(np.ascontiguousarray(features[:, :3]), target), None)
    explicit_fit = fit_least_squares(explicit_split.train, ("c0", "c1", "c2"), True, "t.csv")
    explicit, _ = evaluate(explicit_split, explicit_fit.model, None, True, TOLERANCES, 0.95, "HC3")
    assert fit.has_constant and not fit.fit_intercept and explicit_fit.constant is None
    for key in ("r2", "r2_adj", "f", "log_likelihood", "aic", "bic", "n_coefficients", "df_model", "df_resid"):
        assert implicit[key] == pytest.approx(explicit[key], rel=1e-12), key
    assert implicit["inference"]["c0"]["se"] == pytest.approx(explicit["inference"]["c0"]["se"], rel=1e-12)
    # One row in no group: the ones vector is no longer in the columns' span, and R² is about zero.
    features = features.copy()
    features[7, 1:] = 0.0
    apart = fit_least_squares(Table(features, target), ("c0", "c1", "c2", "c3"), False, "t.csv")
    assert apart.constant is None and apart.total_squares() == pytest.approx(float(np.sum(target ** 2)), rel=1e-14)


def test_the_least_squares_file_keeps_the_implicit_constant(tmp_path):
    _, fit, _ = fitted("indicators that sum to one, no intercept", "nonrobust")
    fit.save(tmp_path / "ols.safetensors")
    again = LeastSquares.load(tmp_path / "ols.safetensors")
    assert again.has_constant and np.array_equal(again.constant, fit.constant) and again.r2() == fit.r2()


def test_hc2_and_hc3_refuse_a_row_of_leverage_one_in_one_line_and_hc0_takes_it():
    # The last row alone has z = 1: its coefficient fits it exactly, leverage 1, residual 0.
    features = np.array([[float(k), 0.0] for k in range(8)] + [[3.0, 1.0]])
    target = np.array([1.0, 2.9, 5.2, 7.1, 8.8, 11.2, 13.1, 14.8, 40.0])
    split = Split("t.csv", Table(features, target), None)
    fit = fit_least_squares(split.train, ("x", "z"), True, "t.csv")
    for cov_type in ("HC2", "HC3"):
        with pytest.raises(PipelineError, match=rf"^evaluate.cov_type = '{cov_type}': 1 training row has leverage 1 "
                                                r".*: expected HC0 or HC1, or leave such rows out$"):
            evaluate(split, fit.model, None, True, TOLERANCES, 0.95, cov_type)
    metrics, _ = evaluate(split, fit.model, None, True, TOLERANCES, 0.95, "HC0")
    assert lre(metrics["inference"]["x"]["se"], math.sqrt(exact_sandwich(features, target)["HC0"][1][1])) >= 12


def test_an_exact_fit_has_zero_robust_errors_and_null_tests_and_likelihood():
    x = np.arange(10.0)[:, None]
    split = Split("t.csv", Table(x, 3 * x[:, 0] - 2), None)
    fit = fit_least_squares(split.train, ("x",), True, "t.csv")
    metrics, _ = evaluate(split, fit.model, None, True, TOLERANCES, 0.95, "HC3")
    assert metrics["inference"]["x"]["se"] == 0.0 and metrics["inference"]["x"]["t"] is None
    assert metrics["f"] is None and metrics["f_p"] is None
    assert metrics["log_likelihood"] is None and metrics["aic"] is None and metrics["bic"] is None
    assert "log-likelihood" not in summary(metrics, "y", 0.95)


def test_the_summary_names_the_covariance_and_keeps_its_columns_aligned_when_a_number_is_wide():
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1e4, 40)
    target = -0.000609 * x + 3.0 + rng.normal(0, 7, 40)  # an estimate of -0.00060885, 11 characters
    split = Split("t.csv", Table(x[:, None], target), None)
    fit = fit_least_squares(split.train, ("x",), True, "t.csv")
    metrics, _ = evaluate(split, fit.model, None, True, TOLERANCES, 0.95, "HC3")
    lines = summary(metrics, "y", 0.95).splitlines()
    assert lines[0] == "Least squares of y on 40 training rows; robust standard errors (HC3)"
    header, rows = lines[1], lines[2:4]
    assert any(len(f"{metrics['ols'][name]:.5g}") > 10 for name in ("x", "intercept"))
    def ends(line: str) -> list[int]:
        """Where each word of the line ends."""
        return [index + 1 for index, (here, after) in enumerate(zip(line, line[1:] + " ")) if here != " " == after]

    for row in rows:  # every number ends where its column's header ends
        assert ends(row)[1:] == ends(header)
    assert ", Wald F (HC3) " in lines[4] and f"on 1 and {metrics['df_resid']} df" in lines[4]
    assert lines[6] == (f"log-likelihood {metrics['log_likelihood']:.6g}, AIC {metrics['aic']:.6g}, "
                        f"BIC {metrics['bic']:.6g} (2 coefficients)")
    assert f"R² {metrics['r2']:.6g}," in lines[4]


def test_a_misspelled_cov_type_gets_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text("evaluate:\n  level: 0.95\n  cov_type: hc3\n")
    with pytest.raises(PipelineError) as raised:
        load_params(EvaluateParams, tmp_path / "params.yaml")
    assert str(raised.value) == (
        f"{tmp_path / 'params.yaml'}: evaluate.cov_type = 'hc3': expected one of nonrobust, HC0, HC1, HC2, HC3 (the "
        "standard errors' covariance; HC0 … HC3 are heteroskedasticity-robust) (input should be 'nonrobust', 'HC0', "
        "'HC1', 'HC2' or 'HC3')")
