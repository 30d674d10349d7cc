"""The QR factorisations and upper-triangular arithmetic that least squares, whitening, leverage and the robust
covariance share. Up to WIDE columns, modified Gram-Schmidt and products in plain NumPy sums added in a fixed
order, the same bits on every CPU; wider, LAPACK and BLAS on one thread, the same bits on a given machine."""

import math

import numpy as np

from pipeline.linear import ordered_sum

# Above this many columns (the features and the target), that is from 32 features on, the QR is LAPACK's
# Householder (blocked, BLAS) rather than Gram-Schmidt in NumPy sums: its bits are fixed on a given machine,
# not on every CPU (docs/reproducibility.md).
WIDE = 32


def is_wide(n_features: int) -> bool:
    """Whether `n_features` features and the target make more than WIDE columns: LAPACK's and BLAS's to work on."""
    return n_features + 1 > WIDE


def times_upper(rows: np.ndarray, upper: np.ndarray, order: str = "C") -> np.ndarray:
    """rows (n, d) · upper (d, d, upper triangular), in `order` ("F": each column contiguous). Up to
    d = WIDE − 1, elementwise sums added in column order, so each row's bits depend on that row alone, on
    every CPU; wider, BLAS on one thread."""
    if is_wide(rows.shape[1]):
        with one_blas_thread():
            return np.asarray(rows @ upper, order=order)
    # A column at a time, in contiguous columns (2 to 5 times as fast as rows of d values): each product is
    # Σ rows[:, j]·upper[j, k] added in the order of j.
    columns = np.asfortranarray(rows)
    product = np.zeros(rows.shape, order="F")
    for k in range(rows.shape[1]):
        for j in range(k + 1):
            product[:, k] += columns[:, j] * upper[j, k]
    return np.asarray(product, order=order)


def one_blas_thread():
    """A context in which BLAS and LAPACK run on one thread: OpenBLAS's bits depend on its thread count."""
    from threadpoolctl import threadpool_limits  # here: only wide tables and the condition number need it

    return threadpool_limits(limits=1, user_api="blas")


def inverse_upper(r: np.ndarray) -> np.ndarray:
    """R⁻¹ of an upper-triangular R by back substitution, a row at a time; each sum adds in index order
    (elementwise NumPy, not BLAS), so the bits do not depend on the CPU."""
    size = len(r)
    inverse = np.zeros_like(r)
    for k in reversed(range(size)):
        inverse[k, k] = 1.0 / r[k, k]
        # Row k of R⁻¹ from the rows below it: R[k, k+1:] · R⁻¹[k+1:, j] for every j at once.
        inverse[k, k + 1:] = -np.sum(r[k, k + 1:, np.newaxis] * inverse[k + 1:, k + 1:], axis=0) / r[k, k]
    return inverse


def stacked(pieces: list[np.ndarray]) -> np.ndarray:
    """The pieces one above the other, each column contiguous, as a chunk's block is and as LAPACK takes a
    matrix: stacked row by row, the copy was strided, and so was LAPACK's copy of it (8,194 × 501: 2.7 ms and a
    QR of 147 ms, against 15.6 ms and 176 ms; the same bits, as every factorisation reads the same values)."""
    matrix = np.empty((sum(len(piece) for piece in pieces), pieces[0].shape[1]), order="F")
    return np.concatenate(pieces, out=matrix)


def gram_schmidt(matrix: np.ndarray) -> np.ndarray:
    """R of the columns [x1 … xd | y] of `matrix` by modified Gram-Schmidt: the x columns become an orthonormal
    basis, y is projected on it (r[:d, d] is Q^T y) and r[d, d] is the norm of what is left of y. Plain NumPy
    sums (ordered_sum), so the bits are the same on every CPU."""
    width = matrix.shape[1]
    r = np.zeros((width, width))
    basis: list[np.ndarray] = []
    for k in range(width):
        vector = matrix[:, k]
        for j, q in enumerate(basis):  # remove what earlier columns explain (modified Gram-Schmidt)
            r[j, k] = ordered_sum(q * vector)
            vector = vector - r[j, k] * q
        r[k, k] = math.sqrt(ordered_sum(vector * vector))
        if k < width - 1:
            # Within one chunk a column may depend on the others: the basis vector is then zeros, and
            # fit_least_squares judges the features on the R of every row.
            basis.append(vector / r[k, k] if r[k, k] else np.zeros_like(vector))
    return r


def householder(matrix: np.ndarray) -> np.ndarray:
    """R of `matrix` by LAPACK's blocked Householder QR (a few BLAS calls rather than d² NumPy ones), on one
    thread, since OpenBLAS's bits depend on its thread count; rows of R signed so its diagonal is ≥ 0."""
    with one_blas_thread():
        r = np.linalg.qr(matrix, mode="r")
    if len(r) < matrix.shape[1]:  # fewer rows than columns so far: R's missing rows are zeros
        r = np.concatenate([r, np.zeros((matrix.shape[1] - len(r), matrix.shape[1]))])
    return r * np.where(np.diagonal(r) < 0, -1.0, 1.0)[:, np.newaxis]
