"""Exact least-squares answers in rational arithmetic, and the tables the accuracy tests fit.

Every float is a rational number, so the normal equations solved with fractions.Fraction give the exact
minimiser of the squared error for the very floats a table holds: an answer computed another way than
the pipeline's QR in floating point, with no rounding at all.
"""

from fractions import Fraction

import numpy as np


def exact_least_squares(features: np.ndarray, target: np.ndarray, fit_intercept: bool = True) -> list[float]:
    """[intercept (if fitted), coefficient 1, …, coefficient d], each the exact value rounded once."""
    rows = [[Fraction(1)] * fit_intercept + [Fraction(float(value)) for value in row] for row in features]
    ys = [Fraction(float(value)) for value in target]
    size = len(rows[0])
    # The normal equations XᵀX b = Xᵀy, solved exactly.
    gram = [[sum(row[i] * row[j] for row in rows) for j in range(size)] for i in range(size)]
    xty = [[sum(row[i] * y for row, y in zip(rows, ys))] for i in range(size)]
    return [float(value) for value, in solve_exact(gram, xty)]


def solve_exact(matrix: list[list], right: list[list]) -> list[list]:
    """A⁻¹B for a square A and the rows of B: Gauss-Jordan elimination of [A | B], exact for Fractions. The
    largest pivot of each column, so that Decimals (bench/against_statsmodels.py) keep their digits too."""
    size = len(matrix)
    system = [list(a) + list(b) for a, b in zip(matrix, right)]
    for column in range(size):
        pivot = max(range(column, size), key=lambda row: abs(system[row][column]))
        system[column], system[pivot] = system[pivot], system[column]
        divisor = system[column][column]
        system[column] = [value / divisor for value in system[column]]
        for row in range(size):
            if row != column and system[row][column] != 0:
                factor = system[row][column]
                system[row] = [a - factor * b for a, b in zip(system[row], system[column])]
    return [row[size:] for row in system]


def relative_errors(found: list[float], exact: list[float]) -> list[float]:
    return [abs(a - b) / abs(b) for a, b in zip(found, exact)]


def reference_table(rows: int = 36, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """One feature with x in the hundreds, y in the hundreds and an intercept near zero, like the
    published reference table on which the tutorial's raw SGD diverged."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.uniform(100, 900, rows), 1)
    y = np.round(0.9 * x - 0.26 + rng.normal(0, 20, rows), 2)
    return x[:, None], y


def through_origin_table(rows: int = 36, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.round(rng.uniform(100, 900, rows), 1)
    return x[:, None], np.round(1.7 * x + rng.normal(0, 20, rows), 2)


def correlated_table(rows: int = 200, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Six features, each a noisy copy of one signal (correlation about 0.99), scaled from 1 to 800,000:
    the raw design matrix's condition number is above 1e7."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=rows)
    scales = (1.0, 10.0, 100.0, 1e3, 1e4, 8e5)
    features = np.column_stack([np.round((signal + 0.1 * rng.normal(size=rows) + 2) * scale, 3) for scale in scales])
    coefficients = np.array([1.0, -2.0, 0.3, 0.04, -0.005, 1e-4])
    target = np.round(features @ coefficients + 5.0 + rng.normal(0, 0.5, rows), 3)
    return features, target


def exact_inference(features: np.ndarray, target: np.ndarray, fit_intercept: bool = True) -> dict:
    """The exact least-squares estimates, s² = RSS / (n − p) and diag((XᵀX)⁻¹), as Fractions, in the order
    [intercept (if fitted), coefficient 1, …]: (XᵀX)⁻¹ = solve_exact(XᵀX, I)."""
    rows = [[Fraction(1)] * fit_intercept + [Fraction(float(value)) for value in row] for row in features]
    ys = [Fraction(float(value)) for value in target]
    size = len(rows[0])
    gram = [[sum(row[i] * row[j] for row in rows) for j in range(size)] for i in range(size)]
    inverse = solve_exact(gram, [[Fraction(int(i == j)) for j in range(size)] for i in range(size)])
    xty = [sum(row[i] * y for row, y in zip(rows, ys)) for i in range(size)]
    estimates = [sum(inverse[i][j] * xty[j] for j in range(size)) for i in range(size)]
    rss = sum((y - sum(b * x for b, x in zip(estimates, row))) ** 2 for row, y in zip(rows, ys))
    return {"estimates": estimates, "s2": rss / (len(rows) - size), "rss": rss,
            "inverse_diagonal": [inverse[i][i] for i in range(size)], "inverse": inverse}


def polynomial_table(degree: int, x: np.ndarray, coefficients: list[float], noise: float, seed: int = 3
                     ) -> tuple[np.ndarray, np.ndarray]:
    """x and y = Σ coefficients[k]·x^k + noise, rounded to 6 significant digits as published tables are."""
    rng = np.random.default_rng(seed)
    y = sum(c * x ** k for k, c in enumerate(coefficients)) + rng.normal(0, noise, len(x)) if noise else \
        sum(c * x ** k for k, c in enumerate(coefficients))
    return x[:, None], np.array([float(f"{value:.6g}") for value in y])


def exact_sandwich(features: np.ndarray, target: np.ndarray, fit_intercept: bool = True) -> dict:
    """The exact heteroskedasticity-robust covariances (XᵀX)⁻¹ Xᵀ diag(ω) X (XᵀX)⁻¹ of statsmodels' and R's
    HC0 … HC3, as Fractions, by name, in the order of exact_inference: ω = e², e²·n/(n − p), e²/(1 − h),
    e²/(1 − h)², with e the exact residuals and h the exact hat values x (XᵀX)⁻¹ xᵀ."""
    exact = exact_inference(features, target, fit_intercept)
    inverse, estimates = exact["inverse"], exact["estimates"]
    rows = [[Fraction(1)] * fit_intercept + [Fraction(float(value)) for value in row] for row in features]
    size, n = len(inverse), len(rows)
    # Row i of (XᵀX)⁻¹Xᵀ, and from it the hat value.
    influence = [[sum(inverse[a][b] * row[b] for b in range(size)) for a in range(size)] for row in rows]
    hats = [sum(x * g for x, g in zip(row, found)) for row, found in zip(rows, influence)]
    residuals = [Fraction(float(y)) - sum(b * x for b, x in zip(estimates, row)) for row, y in zip(rows, target)]
    squares = [e * e for e in residuals]
    weights = {"HC0": squares, "HC1": [s * Fraction(n, n - size) for s in squares]}
    if all(h != 1 for h in hats):  # HC2 and HC3 are undefined where a row has leverage 1
        weights |= {"HC2": [s / (1 - h) for s, h in zip(squares, hats)],
                    "HC3": [s / (1 - h) ** 2 for s, h in zip(squares, hats)]}
    return {name: [[sum(w * g[a] * g[b] for w, g in zip(omega, influence)) for b in range(size)] for a in range(size)]
            for name, omega in weights.items()}


def exact_wald_f(estimates: list[Fraction], covariance: list[list[Fraction]],
                 restrictions: list[list[int]]) -> Fraction:
    """(Lβ)ᵀ (L V Lᵀ)⁻¹ (Lβ) / q for the q rows of L, exactly."""
    q = len(restrictions)
    tested = [sum(l * b for l, b in zip(row, estimates)) for row in restrictions]
    terms = [[(a, l) for a, l in enumerate(row) if l] for row in restrictions]  # L is mostly zeros
    middle = [[sum(l * covariance[a][b] * m for a, l in terms[i] for b, m in terms[j]) for j in range(q)]
              for i in range(q)]
    solved = solve_exact(middle, [[value] for value in tested])
    return sum(value * found for value, (found,) in zip(tested, solved)) / q
