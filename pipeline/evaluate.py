"""Stage evaluate: measure the learnt model on training and held-out rows, beside least squares and,
for synthetic data, the true line; and the classical inference for the least-squares fit (standard
errors, t tests, intervals, the F test). Reads the weights with safetensors and computes in float64:
no torch."""

from pathlib import Path
from typing import Any

from scipy.special import fdtrc, stdtr, stdtrit

from pipeline.dataset import Split, load_split
from pipeline.errors import first_few, run_stage
from pipeline.files import HISTORY, METRICS, MODEL, OLS, POINTS, TRUTH, numbers, read_history, read_json, write_json
from pipeline.linear import INTERCEPT, SHOWN_COEFFICIENTS, LinearModel, Scores, load_weights, scores, terms_of
from pipeline.least_squares import LeastSquares, Tolerances, convergence, fit_least_squares
from pipeline.params import DataParams, EvaluateParams, TrainParams, load_params
from pipeline.schema import resolve_features

SUMMARY_ROWS = 20  # coefficients the printed summary shows at most: those of the largest |t|


def evaluate(split: Split, learnt: LinearModel, true_line: LinearModel | None, fit_intercept: bool,
             tolerances: Tolerances, level: float) -> tuple[dict[str, Any], LeastSquares]:
    """metrics.json: the models by name (learnt, ols, true), how each does on the rows, whether training
    reached least squares, and the inference for least squares; and the least-squares fit itself.
    Streams the rows: one pass over the training rows for least squares, then one over each part for the
    scores."""
    fit = fit_least_squares(split.train, learnt.features, fit_intercept, split.source)
    on_train = scores(learnt, fit.model, split.train, fit_intercept)
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
    if split.test is not None:
        metrics["test"] = as_metrics(scores(learnt, fit.model, split.test, fit_intercept))
    return metrics | overall(fit) | {"inference": inference(fit, level)}, fit


def as_metrics(found: Scores) -> dict[str, Any]:
    return {"mse": found.mse, "mse_ols": found.mse_baseline, "r2": found.r2, "n": found.n}


def inference(fit: LeastSquares, level: float) -> dict[str, dict[str, float | None]]:
    """Per coefficient: se, t = estimate / se, the two-sided p of Student's t with n − p degrees of freedom,
    and the confidence interval at `level`. An exact fit has se 0, and t and p null (JSON has no infinity)."""
    quantile = float(stdtrit(fit.df_resid, 1 - (1 - level) / 2))
    table = {}
    estimates = fit.model.as_dict()
    for name, se in fit.standard_errors().items():
        estimate = estimates[name]
        t = estimate / se if se > 0 else None
        table[name] = {"se": float(se), "t": t, "p": None if t is None else float(2 * stdtr(fit.df_resid, -abs(t))),
                       "ci_low": estimate - quantile * se, "ci_high": estimate + quantile * se}
    return table


def overall(fit: LeastSquares) -> dict[str, Any]:
    """The fit as a whole: residual sd, adjusted R², the F test that every coefficient but the intercept is
    zero (uncentred without an intercept, as statistics packages test a model without a constant), and
    the condition number of the standardised design."""
    total = fit.y_scale ** 2  # about the mean, or about zero without an intercept
    r2 = 1.0 - fit.rss / total if total > 0 else 1.0
    df_model = len(fit.model.features)
    r2_adj = 1.0 - (1.0 - r2) * (fit.n - int(fit.fit_intercept)) / fit.df_resid
    f = None if fit.exact else (total - fit.rss) / df_model / (fit.rss / fit.df_resid)
    return {"residual_sd": fit.residual_sd, "df_resid": fit.df_resid, "r2_adj": r2_adj, "f": f,
            "f_p": None if f is None else float(fdtrc(df_model, fit.df_resid, f)),
            "condition_number": fit.condition_number()}


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
    R², adjusted R², F, residual sd and n; at most `rows` coefficients, those of the largest |t|."""
    table = metrics["inference"]
    names = list(table)
    shown = names
    if len(names) > rows:  # the largest |t| first; an exact fit (t null) keeps the columns' order
        shown = sorted(names, key=lambda name: -abs(table[name]["t"] or 0.0))[:rows]
        shown = [name for name in names if name in shown]
    width = max(9, *(min(len(name), 16) for name in shown))
    low, high = f"[{(1 - level) / 2:.3g}", f"{1 - (1 - level) / 2:.3g}]"
    lines = [f"Least squares of {target} on {metrics['train']['n']} training rows",
             f"{'':{width}} {'estimate':>10} {'se':>9} {'t':>8} {'P>|t|':>8} {low:>10} {high:>10}"]
    for name in shown:
        row = table[name]
        # Cut in the middle: columns often share a prefix and differ at the end.
        label = name if len(name) <= width else f"{name[:width // 2 - 1]}…{name[-(width - width // 2):]}"
        lines.append(f"{label:{width}} {number(metrics['ols'][name], 10)} {number(row['se'], 9)} "
                     f"{number(row['t'], 8, 4)} {probability(row['p'])} {number(row['ci_low'], 10)} "
                     f"{number(row['ci_high'], 10)}")
    if len(shown) < len(names):
        lines.append(f"… {len(names) - len(shown)} more coefficients of smaller |t|: see {METRICS}")
    f = "null (an exact fit)" if metrics["f"] is None else \
        f"{metrics['f']:.5g} on {len(names) - (INTERCEPT in names)} and {metrics['df_resid']} df, p {probability(metrics['f_p']).strip()}"
    lines.append(f"R² {metrics['train']['r2']:.6g}, adjusted R² {metrics['r2_adj']:.6g}, F {f}")
    lines.append(f"residual sd {metrics['residual_sd']:.6g} on {metrics['df_resid']} degrees of freedom; "
                 f"condition number {metrics['condition_number']:.4g}")
    return "\n".join(lines)


def number(value: float | None, width: int, digits: int = 5) -> str:
    if value is None:
        return f"{'null':>{width}}"
    text = f"{value:.{digits}g}"
    return f"{text:>{width}}"


def probability(p: float | None) -> str:
    if p is None:
        return f"{'null':>8}"
    return f"{'<1e-300' if p == 0 else f'{p:.3g}':>8}"


def main() -> None:
    data = resolve_features(load_params(DataParams)).data
    train = load_params(TrainParams)
    level = load_params(EvaluateParams).level
    split = load_split(data, train.fit_intercept, terms=terms_of(MODEL))
    learnt = load_weights(MODEL, split.columns, train.fit_intercept)
    tolerances = Tolerances(train.dtype, train.tolerance, train.coefficient_tolerance)
    metrics, fit = evaluate(split, learnt, true_line_of(data), train.fit_intercept, tolerances, level)
    # How and where the model was trained: the same answer to the last few bits, but a run's record says which.
    metrics |= {"dtype": train.dtype, "device": train.device, "processes": train.processes,
                # train stops at the first converged epoch (train.stop_when_converged): the history says when.
                "epochs_run": len(read_history(HISTORY, ["epoch"])["epoch"]) - 1,
                "rows_dropped": split.rows_dropped}  # by data.missing: drop
    if split.design is not None:  # held-out rows of a level training never saw: left out of the test scores
        metrics["rows_unseen"] = split.rows_unseen
        if split.rows_unseen:
            print(f"{split.source}: left out {split.rows_unseen} held-out rows of a level no training row has "
                  "from the test scores")
    write_json(METRICS, metrics)
    fit.save(OLS)
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
    run_stage(main)
