"""Stage evaluate: measure the learnt model on training and held-out rows, beside least squares and,
for synthetic data, the true line; the inference for the least-squares fit (standard errors, classical or
heteroskedasticity-robust, t tests, intervals, the F test); and what ranks models across experiments
(R², log-likelihood, AIC, BIC). Reads the weights with safetensors and computes in float64: no torch."""

import math
from pathlib import Path
from typing import Any

import numpy as np

from scipy.special import fdtrc, stdtr

from pipeline.covariance import NONROBUST, Robust, Sandwich
from pipeline.errors import PipelineError, first_few, run_stage_process
from pipeline.split import Split, load_split
from pipeline.files import (
    HISTORY, METRICS, MODEL, OLS, POINTS, TRUTH, numbers, read_history, read_json, write_json,
)
from pipeline.guard import prepare_outputs
from pipeline.linear import INTERCEPT, RESTORE, SHOWN_COEFFICIENTS, LinearModel, load_weights, terms_of
from pipeline.convergence import convergence, Tolerances
from pipeline.least_squares import LeastSquares
from pipeline.factoring import EarlyFit, fit_training_rows
from pipeline.params import DataParams, EvaluateParams, TrainParams, load_params
from pipeline.schema import resolve_features
from pipeline.scores import Scores, scores_of_parts

SUMMARY_ROWS = 20  # coefficients the printed summary shows at most: those of the largest |t|


def evaluate(split: Split, learnt: LinearModel, true_line: LinearModel | None, fit_intercept: bool,
             tolerances: Tolerances, level: float, cov_type: str = NONROBUST,
             early: EarlyFit | None = None) -> tuple[dict[str, Any], LeastSquares]:
    """metrics.json: the models by name (learnt, ols, true), how each does on the rows, whether training
    reached least squares, and the inference for least squares under `cov_type`; and the least-squares fit
    itself. Streams the rows: one pass over the training rows for least squares (none where `early` factored
    them as the check read them), then one over both parts for the scores (a robust covariance sums its middle
    in it)."""
    fit = fit_training_rows(split, learnt.features, fit_intercept, early)
    sandwich = None if cov_type == NONROBUST else Sandwich(fit, cov_type)
    parts = [split.train] if split.test is None else [split.train, split.test]
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float64: refused below, naming the weights
        on_train, *on_test = scores_of_parts(learnt, fit.model, parts, fit_intercept,
                                             sandwich.add if sandwich else None)
    if not math.isfinite(on_train.mse + on_train.gap):
        raise PipelineError(f"{MODEL}: its predictions of the training rows are beyond float64 (mse {on_train.mse:g}): "
                            f"expected finite numbers (if the file is damaged, {RESTORE})")
    robust = sandwich.result() if sandwich else None
    metrics: dict[str, Any] = {"learnt": learnt.as_dict(), "ols": fit.model.as_dict()}
    if true_line is not None:
        metrics["true"] = true_line.as_dict()
    # gap: the largest difference of learnt and least-squares predictions on the training rows, in
    # standard deviations of the target; coefficient_gap: the largest difference of a coefficient, in its
    # standard errors. One threshold each fits every dataset.
    judged = convergence(learnt, fit, on_train.gap, tolerances)
    metrics["gap"] = on_train.gap
    metrics["coefficient_gap"] = judged.coefficient_gap
    metrics["converged"] = judged.converged
    metrics["train"] = as_metrics(on_train)
    if on_test:
        metrics["test"] = as_metrics(on_test[0])
    metrics |= overall(fit, robust) | comparison(fit, cov_type)
    return metrics | {"inference": inference(fit, level, robust)}, fit


def as_metrics(found: Scores) -> dict[str, Any]:
    return {"mse": found.mse, "mse_ols": found.mse_baseline, "r2": found.r2, "n": found.n}


def inference(fit: LeastSquares, level: float, robust: Robust | None = None) -> dict[str, dict[str, float | None]]:
    """Per coefficient: se (classical, or robust's), t = estimate / se, the two-sided p of Student's t with
    n − p degrees of freedom, and the confidence interval at `level`, as statsmodels' use_t=True and R's
    lmtest::coeftest. An exact fit has se 0, and t and p null (JSON has no infinity)."""
    quantile = fit.t_quantile(level)
    table = {}
    estimates = fit.model.as_dict()
    errors = fit.standard_errors() if robust is None else robust.standard_errors
    for name, se in errors.items():
        estimate = estimates[name]
        t = estimate / se if se > 0 else None
        table[name] = {"se": float(se), "t": t, "p": None if t is None else float(2 * stdtr(fit.df_resid, -abs(t))),
                       "ci_low": estimate - quantile * se, "ci_high": estimate + quantile * se}
    return table


def overall(fit: LeastSquares, robust: Robust | None = None) -> dict[str, Any]:
    """The fit as a whole: residual sd, adjusted R², the F test that every coefficient but the constant is
    zero (a Wald test under a robust covariance), and the condition number of the standardised design.
    Centred where the model has a constant, an intercept or an implicit one (a full-rank factor); uncentred
    otherwise, as statistics packages test a model without a constant."""
    total = fit.total_squares()
    r2 = fit.r2()
    df_model = fit.df_model
    r2_adj = 1.0 - (1.0 - r2) * (fit.n - int(fit.has_constant)) / fit.df_resid
    if robust is not None:
        f = robust.f
    else:
        f = None if fit.exact else (total - fit.rss) / df_model / (fit.rss / fit.df_resid)
    return {"residual_sd": fit.residual_sd, "df_resid": fit.df_resid, "r2_adj": r2_adj, "f": f,
            "f_p": None if f is None else float(fdtrc(df_model, fit.df_resid, f)),
            "condition_number": fit.condition_number()}


def comparison(fit: LeastSquares, cov_type: str) -> dict[str, Any]:
    """What ranks models across experiments, with statsmodels' definitions: least squares' own R², the
    log-likelihood, AIC and BIC (null for an exact fit), the number of coefficients they count (the
    intercept included), the F test's degrees of freedom, and the covariance the inference used."""
    aic, bic = fit.information_criteria() or (None, None)
    return {"r2": fit.r2(), "log_likelihood": fit.log_likelihood(), "aic": aic, "bic": bic,
            "n_coefficients": fit.p, "df_model": fit.df_model, "cov_type": cov_type}


def true_line_of(data: DataParams) -> LinearModel | None:
    """The line synthesize drew from, when the model is fitted to all of its columns; None for a user's file."""
    if Path(data.source) != POINTS or data.target != "y":
        return None
    values = read_json(TRUTH)
    features = data.columns
    if set(values) != {*features, INTERCEPT}:  # another set of columns than the points were drawn with
        return None
    return LinearModel.from_dict(features, numbers(TRUTH, values, (*features, INTERCEPT)))


def summary(metrics: dict[str, Any], target: str, level: float, rows: int = SUMMARY_ROWS) -> str:
    """A table like statsmodels' summary: estimate, se, t, p and interval per coefficient, then the fit's
    R², adjusted R², F, residual sd, n, log-likelihood, AIC and BIC; at most `rows` coefficients, those of
    the largest |t|. Each column is as wide as its widest number."""
    table = metrics["inference"]
    names = list(table)
    shown = names
    if len(names) > rows:  # the largest |t| first; an exact fit (t null) keeps the columns' order
        shown = sorted(names, key=lambda name: -abs(table[name]["t"] or 0.0))[:rows]
        shown = [name for name in names if name in shown]
    width = max(9, *(min(len(name), 16) for name in shown))
    low, high = f"[{(1 - level) / 2:.3g}", f"{1 - (1 - level) / 2:.3g}]"
    robust = metrics["cov_type"] != NONROBUST
    cells = [[number(metrics["ols"][name]), number(table[name]["se"]), number(table[name]["t"], 4),
              probability(table[name]["p"]), number(table[name]["ci_low"]), number(table[name]["ci_high"])]
             for name in shown]
    # The narrowest each column has been (a header's width, or the widest number it usually holds), wider
    # where a number needs it: -0.00060885 takes 11 characters.
    headers = ["estimate", "se", "t", "P>|t|", low, high]
    widths = [max(least, len(header), *(len(row[column]) for row in cells))
              for column, (header, least) in enumerate(zip(headers, (10, 9, 8, 8, 10, 10)))]
    lines = [f"Least squares of {target} on {metrics['train']['n']} training rows"
             + (f"; robust standard errors ({metrics['cov_type']})" if robust else ""),
             " ".join([f"{'':{width}}", *(f"{header:>{size}}" for header, size in zip(headers, widths))])]
    for name, row in zip(shown, cells):
        # Cut in the middle: columns often share a prefix and differ at the end.
        label = name if len(name) <= width else f"{name[:width // 2 - 1]}…{name[-(width - width // 2):]}"
        lines.append(" ".join([f"{label:{width}}", *(f"{cell:>{size}}" for cell, size in zip(row, widths))]))
    if len(shown) < len(names):
        lines.append(f"… {len(names) - len(shown)} more coefficients of smaller |t|: see {METRICS}")
    f = "null (an exact fit)" if metrics["f"] is None else \
        f"{metrics['f']:.5g} on {metrics['df_model']} and {metrics['df_resid']} df, p {probability(metrics['f_p'])}"
    test = f"Wald F ({metrics['cov_type']})" if robust else "F"
    lines.append(f"R² {metrics['r2']:.6g}, adjusted R² {metrics['r2_adj']:.6g}, {test} {f}")
    lines.append(f"residual sd {metrics['residual_sd']:.6g} on {metrics['df_resid']} degrees of freedom; "
                 f"condition number {metrics['condition_number']:.4g}")
    if metrics["log_likelihood"] is not None:
        lines.append(f"log-likelihood {metrics['log_likelihood']:.6g}, AIC {metrics['aic']:.6g}, "
                     f"BIC {metrics['bic']:.6g} ({metrics['n_coefficients']} coefficients)")
    return "\n".join(lines)


def number(value: float | None, digits: int = 5) -> str:
    return "null" if value is None else f"{value:.{digits}g}"


def probability(p: float | None) -> str:
    if p is None:
        return "null"
    return "<1e-300" if p == 0 else f"{p:.3g}"


def main() -> None:
    data = resolve_features(load_params(DataParams)).data
    prepare_outputs([METRICS, OLS], inputs=[Path(data.source)])
    train = load_params(TrainParams)
    judging = load_params(EvaluateParams)
    level = judging.level
    early = EarlyFit.planned(data, train.fit_intercept)  # least squares factored as the check reads the rows
    split = load_split(data, train.fit_intercept, terms=terms_of(MODEL), seen=early)
    learnt = load_weights(MODEL, split.columns, train.fit_intercept)
    tolerances = Tolerances(train.dtype, train.tolerance, train.coefficient_tolerance)
    metrics, fit = evaluate(split, learnt, true_line_of(data), train.fit_intercept, tolerances, level,
                            judging.cov_type, early)
    # How and where the model was trained: the same answer to the last few bits, but a run's record says which.
    metrics |= {"dtype": train.dtype, "device": train.device, "processes": train.processes,
                # train stops at the first converged epoch (train.stop_when_converged): the history says when.
                "epochs_run": len(read_history(HISTORY, ["epoch"])["epoch"]) - 1,
                "rows_dropped": split.rows_dropped,  # by data.missing: drop
                "rows_unlabeled": split.rows_unlabeled}  # every feature there, the target missing: not fitted
    if split.design is not None:  # held-out rows of a level training never saw: left out of the test scores
        metrics["rows_unseen"] = split.rows_unseen
        if split.rows_unseen:
            print(f"{split.source}: left out {split.rows_unseen} held-out rows of a level no training row has "
                  "from the test scores")
    write_json(METRICS, metrics)
    fit.save(OLS)
    if note := split.unlabeled_note(data.target):
        print(note)
    print(summary(metrics, data.target, level))
    print(convergence(learnt, fit, metrics["gap"], tolerances).verdict(data.target, tolerances))
    for name in ("learnt", "ols", "true", "train", "test", "dtype", "device", "processes", "epochs_run"):
        if name in metrics:
            print(f"{name}: {shown(metrics[name])}")


def shown(value: Any) -> str:
    """A metric as train's log shows numbers: 6 significant digits, a group of them as key = value."""
    if isinstance(value, dict):
        return first_few([f"{key} = {shown(item)}" for key, item in value.items()], SHOWN_COEFFICIENTS)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


if __name__ == "__main__":
    run_stage_process(main)
