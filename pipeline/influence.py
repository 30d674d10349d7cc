"""How much each training row sways the least-squares fit: its leverage, externally studentized residual and
Cook's distance, as R's hatvalues, rstudent and cooks.distance (statsmodels' OLSInfluence) define them, and
the rows whose Cook's distance stands out. From the fit's R and residuals, a chunk of rows at a time."""

import heapq
from dataclasses import dataclass, field

import numpy as np

from pipeline.least_squares import LEVERAGE_ONE, LeastSquares

COOKS_SHOWN = 5  # the rows of largest Cook's distance that predict names


@dataclass(frozen=True)
class Influence:
    """Per training row: h (the hat value), rstudent and Cook's distance; NaN where h is 1."""

    leverage: np.ndarray
    studentized_residual: np.ndarray
    cooks_distance: np.ndarray

    @property
    def at_one(self) -> np.ndarray:
        return 1.0 - self.leverage <= LEVERAGE_ONE


def influence(fit: LeastSquares, columns: np.ndarray, target: np.ndarray) -> Influence:
    """Of training rows (every model column, and their target), with e = y − ŷ of least squares:
    rstudent = e / (s₍ᵢ₎ sqrt(1 − h)), s₍ᵢ₎² = (RSS − e²/(1 − h)) / (n − p − 1) (s without row i), and
    Cook's D = e² h / (p s² (1 − h)²), s² = RSS / (n − p)."""
    leverage = fit.leverage(columns)
    residual = target - fit.model.predict(columns)
    rest = 1.0 - leverage
    at_one = rest <= LEVERAGE_ONE
    with np.errstate(divide="ignore", invalid="ignore"):
        s2_without = (fit.rss - residual * residual / rest) / (fit.df_resid - 1)
        studentized = residual / np.sqrt(s2_without * rest)
        cooks = residual * residual * leverage / (fit.p * (fit.rss / fit.df_resid) * rest * rest)
    studentized[at_one] = np.nan
    cooks[at_one] = np.nan
    return Influence(leverage, studentized, cooks)


@dataclass
class LargestCooks:
    """The training rows whose Cook's distance is above 4/n (Bollen and Jackman's rule of thumb, n the
    training rows), gathered chunk by chunk: how many, and the COOKS_SHOWN largest, by row of the source."""

    n_train: int
    above: int = 0
    at_one: int = 0
    first_at_one: int = -1
    _largest: list[tuple[float, int]] = field(default_factory=list)  # a heap of (D, −row): the largest kept

    @property
    def threshold(self) -> float:
        return 4.0 / self.n_train

    def add(self, found: Influence, rows: np.ndarray) -> None:
        """Take in the influence of training rows whose indices in the source are `rows`."""
        at_one = found.at_one
        if at_one.any() and not self.at_one:
            self.first_at_one = int(rows[np.argmax(at_one)])
        self.at_one += int(np.count_nonzero(at_one))
        above = np.flatnonzero(found.cooks_distance > self.threshold)  # NaN is never above
        self.above += len(above)
        if len(above) > COOKS_SHOWN:  # only a chunk's largest can be among the largest of all
            above = above[np.argpartition(-found.cooks_distance[above], COOKS_SHOWN)[:COOKS_SHOWN]]
        for index in above:
            # Ties go to the earlier row: the same rows named whatever the chunks.
            heapq.heappush(self._largest, (float(found.cooks_distance[index]), -int(rows[index])))
            if len(self._largest) > COOKS_SHOWN:
                heapq.heappop(self._largest)

    def line(self) -> str:
        """What predict says of the rows above the threshold: how many, and the largest, by row index."""
        start = f"Cook's distance above 4/n = {self.threshold:.3g} (n = {self.n_train} training rows): "
        if not self.above:
            return start + "no row"
        largest = sorted(self._largest, reverse=True)
        shown = ", ".join(f"{-row} ({cooks:.3g})" for cooks, row in largest)
        rows = "1 row" if self.above == 1 else f"{self.above} rows"
        more = f"; the {len(largest)} largest" if self.above > len(largest) else ""
        return f"{start}{rows}{more}, by row index from 0: {shown}"

    def warning(self) -> str | None:
        if not self.at_one:
            return None
        rows = "1 training row has" if self.at_one == 1 else f"{self.at_one} training rows have"
        return (f"warning: {rows} leverage 1 (to {LEVERAGE_ONE:g}), the first at row index {self.first_at_one}: "
                "fitted exactly whatever its target, so its studentized_residual and cooks_distance are empty")
