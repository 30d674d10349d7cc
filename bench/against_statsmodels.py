"""evaluate's inference on published tables against statsmodels and against an 80-digit reference: coefficients,
classical and HC0–HC3 standard errors, t, p, intervals, F, log-likelihood, AIC, BIC and R², as significant
digits (−log10 of the relative error, 16 = every digit of a float64).

The reference solves the same least squares and sandwich in `decimal` arithmetic at 80 digits from the very
floats each table holds. statsmodels is no dependency of the project: run this with a Python that has both
statsmodels (0.15) and the project's requirements, from the repository root:
`python -m bench.against_statsmodels`. It prints the figures, and writes nothing.
"""

import math
from decimal import Decimal, getcontext

import numpy as np
import statsmodels.api as sm

import pipeline.rows
from pipeline.split import Split
from pipeline.evaluate import evaluate
from pipeline.convergence import Tolerances
from pipeline.factoring import fit_least_squares
from pipeline.rows import Table
from tests.exact import solve_exact

COV_TYPES = ("nonrobust", "HC0", "HC1", "HC2", "HC3")
TOLERANCES = Tolerances("float64", 1e-4, 0.01)


def pi() -> Decimal:
    """π to the context's precision (the decimal module's recipe)."""
    getcontext().prec += 2
    last, t, s, n, na, d, da = 0, Decimal(3), Decimal(3), 1, 0, 0, 24
    while s != last:
        last, n, na, d, da = s, n + na, na + 8, d + da, da + 32
        t = t * n / d
        s += t
    getcontext().prec -= 2
    return +s


def reference(features: np.ndarray, target: np.ndarray, fit_intercept: bool, has_constant: bool) -> dict:
    """Estimates, the diagonal of each covariance, the log-likelihood and R², at 80 digits."""
    getcontext().prec = 80
    rows = [[Decimal(1)] * fit_intercept + [Decimal(float(v)) for v in row] for row in features]
    ys = [Decimal(float(v)) for v in target]
    p, n = len(rows[0]), len(rows)
    gram = [[sum(r[i] * r[j] for r in rows) for j in range(p)] for i in range(p)]
    inverse = solve_exact(gram, [[Decimal(int(i == j)) for j in range(p)] for i in range(p)])  # (XᵀX)⁻¹
    xty = [sum(r[i] * y for r, y in zip(rows, ys)) for i in range(p)]
    beta = [sum(inverse[i][j] * xty[j] for j in range(p)) for i in range(p)]
    residuals = [y - sum(b * x for b, x in zip(beta, r)) for r, y in zip(rows, ys)]
    influence = [[sum(inverse[a][b] * r[b] for b in range(p)) for a in range(p)] for r in rows]
    hats = [sum(x * g for x, g in zip(r, found)) for r, found in zip(rows, influence)]
    rss = sum(e * e for e in residuals)
    squares = [e * e for e in residuals]
    weights = {"HC0": squares, "HC1": [s * n / (n - p) for s in squares],
               "HC2": [s / (1 - h) for s, h in zip(squares, hats)],
               "HC3": [s / (1 - h) ** 2 for s, h in zip(squares, hats)]}
    variances = {"nonrobust": [rss / (n - p) * inverse[a][a] for a in range(p)]}
    for name, omega in weights.items():
        variances[name] = [sum(w * g[a] * g[a] for w, g in zip(omega, influence)) for a in range(p)]
    mean = sum(ys) / n if has_constant else 0
    total = sum((y - mean) ** 2 for y in ys)
    likelihood = -Decimal(n) / 2 * ((2 * pi() * rss / n).ln() + 1)
    return {"beta": beta, "se": {name: [v.sqrt() for v in values] for name, values in variances.items()},
            "llf": likelihood, "r2": 1 - rss / total}


def digits(found, exact) -> float:
    found, exact = float(found), float(exact)
    return 16.0 if found == exact else min(16.0, -math.log10(abs(found - exact) / abs(exact)))


def worst(found, exact) -> float:
    return min(digits(a, b) for a, b in zip(found, exact))


def compare(label: str, features, target, fit_intercept: bool = True, with_reference: bool = True) -> None:
    features, target = np.ascontiguousarray(features, dtype=float), np.asarray(target, dtype=float)
    names = tuple(f"c{k}" for k in range(features.shape[1]))
    split = Split("t.csv", Table(features, target), None)
    fit = fit_least_squares(split.train, names, fit_intercept, "t.csv")
    order = ["intercept"] * fit_intercept + list(names)
    design = sm.add_constant(features, has_constant="add") if fit_intercept else features
    exact = reference(features, target, fit_intercept, fit.has_constant) if with_reference else None
    for cov_type in COV_TYPES:
        metrics, _ = evaluate(split, fit.model, None, fit_intercept, TOLERANCES, 0.95, cov_type)
        theirs = sm.OLS(target, design).fit(cov_type=cov_type, use_t=True)
        rows = metrics["inference"]
        ours = {"coef": [metrics["ols"][k] for k in order], "se": [rows[k]["se"] for k in order],
                "t": [rows[k]["t"] for k in order], "p": [rows[k]["p"] for k in order],
                "ci": [rows[k]["ci_low"] for k in order] + [rows[k]["ci_high"] for k in order]}
        intervals = theirs.conf_int()
        statsmodels = {"coef": theirs.params, "se": theirs.bse, "t": theirs.tvalues, "p": theirs.pvalues,
                       "ci": list(intervals[:, 0]) + list(intervals[:, 1])}
        line = f"{label:34} {cov_type:9} vs statsmodels: " + " ".join(
            f"{key} {worst(ours[key], statsmodels[key]):4.1f}" for key in ours)
        line += "".join(f" {key} {digits(metrics[key], value):4.1f}" for key, value in (
            ("log_likelihood", theirs.llf), ("aic", theirs.aic), ("bic", theirs.bic), ("r2", theirs.rsquared)))
        line += " f nan" if math.isnan(theirs.fvalue) else f" f {digits(metrics['f'], theirs.fvalue):4.1f}"
        if exact:
            line += (f" | vs reference: coef {worst(ours['coef'], exact['beta']):4.1f} se "
                     f"{worst(ours['se'], exact['se'][cov_type]):4.1f} (statsmodels "
                     f"{worst(theirs.bse, exact['se'][cov_type]):4.1f})")
            if cov_type == "nonrobust":
                line += (f" log_likelihood {digits(metrics['log_likelihood'], exact['llf']):4.1f} (statsmodels "
                         f"{digits(theirs.llf, exact['llf']):4.1f}) r2 {digits(metrics['r2'], exact['r2']):4.1f}")
        print(line, flush=True)


def main() -> None:
    datasets = sm.datasets
    longley = datasets.longley.load_pandas().data
    compare("longley", longley.iloc[:, 1:], longley.TOTEMP)
    stackloss = datasets.stackloss.load_pandas().data
    compare("stack loss", stackloss.iloc[:, 1:], stackloss.STACKLOSS)
    engel = datasets.engel.load_pandas().data
    compare("engel", engel[["income"]], engel.foodexp)
    compare("engel through the origin", engel[["income"]], engel.foodexp, fit_intercept=False)
    copper = datasets.copper.load_pandas().data
    compare("copper", copper.iloc[:, 1:], copper.WORLDCONSUMPTION)
    crime = datasets.statecrime.load_pandas().data
    compare("state crime", crime[["hs_grad", "poverty", "single", "white", "urban"]], crime.murder)
    star98 = datasets.star98.load_pandas().data
    pipeline.rows.CHUNK_ROWS = 64  # the sandwich summed over several chunks
    compare("star98, 20 columns, chunks of 64", star98.iloc[:, 2:], star98.NABOVE)
    pipeline.rows.CHUNK_ROWS = 1 << 18
    grunfeld = datasets.grunfeld.load_pandas().data
    firms = np.column_stack([(grunfeld.firm == firm).to_numpy(float) for firm in sorted(grunfeld.firm.unique())])
    compare("grunfeld, firm indicators, no intercept", np.column_stack([grunfeld[["value", "capital"]], firms]),
            grunfeld.invest, fit_intercept=False)
    macro = datasets.macrodata.load_pandas().data
    compare("macrodata", macro[["realgdp", "realinv", "realgovt", "cpi", "m1", "tbilrate", "unemp", "pop"]],
            macro.realcons)
    randhie = datasets.randhie.load_pandas().data
    pipeline.rows.CHUNK_ROWS = 4096
    compare("randhie, 20,190 rows, chunks of 4096", randhie.iloc[:, 1:], randhie.mdvis, with_reference=False)


if __name__ == "__main__":
    main()
