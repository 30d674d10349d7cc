"""Terms: data.features read as the right-hand side of a formula, as patsy (statsmodels' formula engine) reads
it, and the step from a table's raw columns to the model's design columns.

An entry is a column (a numeric column is a number, a text or true/false column a factor), `C(col)` (a
numeric column's values as a factor), `log(col)`, `sqrt(col)`, an interaction `a:b`, or `a*b` (a + b + a:b).
A factor is coded as patsy codes it: treatment contrasts against its first level only where the same term
without it is already in the model (the intercept is the empty term), else one column per level. Columns are
named as statsmodels' `ols(formula, data)` names them: `region[T.north]`, `C(year)[T.1990]`, `area:region[a]`.

A raw table here is float64 (n, r): a numeric column's values, a factor column's codes (the index of its
level, -1 for a level training never saw; see levels.Coder). No pandas, no patsy: a run of plain numeric
columns never comes here.
"""

import itertools
import re
from dataclasses import dataclass, field
from difflib import get_close_matches

import numpy as np

from pipeline.errors import PipelineError, first_few

NUMBER, TEXT, BOOL = "number", "text", "true/false"  # a raw column's kind, from the table's header
FUNCTIONS = ("C", "log", "sqrt")
_CALL = re.compile(r"^\s*(C|log|sqrt)\s*\((.*)\)\s*$", re.DOTALL)
_SHOWN_LEVELS = 10


@dataclass(frozen=True)
class Factor:
    """One piece of a term: a raw column as a number (kind "number", "log", "sqrt", or "power" with `power`),
    or as a factor (kind "factor")."""

    kind: str
    column: str
    power: int = 1

    @property
    def name(self) -> str:
        """As statsmodels names it (np.log(x) as log(x)); the powers of data.degree as x^k."""
        if self.kind in ("log", "sqrt"):
            return f"{self.kind}({self.column})"
        if self.kind == "power":
            return f"{self.column}^{self.power}"
        if self.kind == "C":
            return f"C({self.column})"
        return self.column

    @property
    def is_factor(self) -> bool:
        return self.kind in ("factor", "C")


Term = tuple[Factor, ...]  # the factors of one term, in the order written; () is the intercept


@dataclass(frozen=True)
class Piece:
    """One factor of a design column: its value (a number), or whether the row has level `level` (an index)."""

    factor: Factor
    level: int | None = None
    reduced: bool = False  # treatment coding: named [T.level]


@dataclass(frozen=True)
class Design:
    """The model's columns, from the terms and every factor's levels (found among the training rows)."""

    terms: tuple[Term, ...]
    raw: tuple[str, ...]  # the raw columns a table must hold, in the order first named
    kinds: dict[str, str]  # of each raw column
    levels: dict[str, tuple]  # of each factor's column (str, bool or float values), sorted
    columns: tuple[tuple[Piece, ...], ...]
    entries: tuple[str, ...] = ()  # data.features as written
    degree: int = 1
    fit_intercept: bool = True
    names: tuple[str, ...] = field(default=())
    blocks: tuple[tuple[int, int], ...] = ()  # [start, stop) of each subterm's columns

    def encode(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The design columns (n, p) float64 of raw rows (n, r), and the mask of the rows that could be encoded
        (a level training never saw cannot be): those rows' columns are NaN."""
        n = len(raw)
        known = np.ones(n, dtype=bool)
        indices = {}
        for column in self.levels:
            indices[column] = self._level_indices(column, raw[:, self.raw.index(column)])
            known &= indices[column] >= 0
        width = len(self.columns)
        design = np.zeros((n, width), dtype=np.float64)
        flat = design.reshape(-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            # A subterm at a time: each row has one column of it (or none), found from its levels; the first
            # factor's level varies fastest, as the columns are laid out.
            for start, stop in self.blocks:
                values, position, coded, stride = None, np.zeros(n, dtype=np.int64), None, 1
                for k, piece in enumerate(self.columns[start]):
                    column = piece.factor.column
                    if not piece.factor.is_factor:
                        part = _number(piece.factor, raw[:, self.raw.index(column)])
                        values = part if values is None else values * part
                        continue
                    used = sorted({self.columns[j][k].level for j in range(start, stop)})
                    lookup = np.full(len(self.levels[column]) + 1, -1, dtype=np.int64)  # the last for -1: unseen
                    lookup[used] = np.arange(len(used))
                    found = lookup[indices[column]]
                    coded = found >= 0 if coded is None else coded & (found >= 0)
                    position += found * stride
                    stride *= len(used)
                if coded is None:
                    design[:, start] = values
                else:
                    rows = np.flatnonzero(coded)
                    flat[rows * width + start + position[rows]] = 1.0 if values is None else values[rows]
        if not known.all():
            design[~known] = np.nan
        return design, known

    def _level_indices(self, column: str, values: np.ndarray) -> np.ndarray:
        if self.kinds[column] != NUMBER:  # codes already
            return values.astype(np.int64)
        levels = np.asarray(self.levels[column], dtype=np.float64)
        found = np.searchsorted(levels, values).clip(0, len(levels) - 1)
        return np.where(levels[found] == values, found, -1)

    def first_unseen(self, raw: np.ndarray) -> str | None:
        """The first numeric factor's value that is not one of its levels, as a message; None if every one is."""
        for column in self.levels:
            if self.kinds[column] == NUMBER:
                values = raw[:, self.raw.index(column)]
                unseen = self._level_indices(column, values) < 0
                if unseen.any():
                    return unseen_level(f"C({column})", level_name(float(values[np.argmax(unseen)])),
                                        self.levels[column])
        return None

    def check_domain(self, raw: np.ndarray, offset: int, where: str) -> None:
        """log needs values > 0 and sqrt values >= 0: else one line naming the first row (offset + index)."""
        for term in self.terms:
            for factor in term:
                if factor.kind not in ("log", "sqrt"):
                    continue
                values = raw[:, self.raw.index(factor.column)]
                bad = values <= 0 if factor.kind == "log" else values < 0
                if bad.any():
                    row = int(np.argmax(bad))
                    bound = "> 0" if factor.kind == "log" else ">= 0"
                    raise PipelineError(
                        f"{where}: {factor.name} of column {factor.column!r} at row index {offset + row}, which is "
                        f"{float(values[row]):g}: expected values {bound} (drop the term, or use another transform)")

    def as_json(self) -> dict:
        """What the weights' metadata keeps: the entries, and every factor's levels."""
        return {"entries": list(self.entries), "kinds": self.kinds,
                "levels": {column: list(levels) for column, levels in self.levels.items()}}


def _number(factor: Factor, values: np.ndarray) -> np.ndarray:
    if factor.kind == "log":
        return np.log(values)
    if factor.kind == "sqrt":
        return np.sqrt(values)
    if factor.kind == "power":
        return np.power(values, float(factor.power))
    return values


# --- Reading the entries -------------------------------------------------------------------------------


def is_plain(entries: list[str], kinds: dict[str, str]) -> bool:
    """Every entry a column by name that is not text or true/false (or no column, which the readers refuse as
    they always have): the model of the columns and their powers, as before terms."""
    return all(kinds.get(entry) not in (TEXT, BOOL) and (entry in kinds or not any(mark in entry for mark in "():*"))
               for entry in entries)


def parse(entries: list[str], kinds: dict[str, str], target: str, where: str) -> tuple[Term, ...]:
    """The terms of data.features, expanded (a*b is a, b, a:b) and each once, in the order written."""
    terms: list[Term] = []
    for entry in entries:
        for term in _entry_terms(entry, kinds, target, where):
            if not any(set(term) == set(other) for other in terms):
                terms.append(term)
    return tuple(terms)


def _entry_terms(entry: str, kinds: dict[str, str], target: str, where: str) -> list[Term]:
    if entry in kinds:
        return [(_factor(entry, entry, kinds, target, where),)]
    pieces = [[_factor(text.strip(), entry, kinds, target, where) for text in product.split(":")]
              for product in entry.split("*")]
    terms = []
    # a*b*c: every non-empty subset of the products, the shorter first, each in the order written (patsy's order).
    for size in range(1, len(pieces) + 1):
        for chosen in itertools.combinations(pieces, size):
            term = tuple(dict.fromkeys(factor for product in chosen for factor in product))
            terms.append(term)
    return terms


def _factor(text: str, entry: str, kinds: dict[str, str], target: str, where: str) -> Factor:
    call = None if text in kinds else _CALL.match(text)
    column = call.group(2).strip() if call else text
    if column not in kinds or not column:
        if not column or any(mark in column for mark in "():*"):
            raise PipelineError(
                f"{where}: data.features entry {entry!r}: {text!r} is not a term: expected a column, C(column), "
                "log(column), sqrt(column), a:b or a*b")
        close = get_close_matches(column, list(kinds), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise PipelineError(f"{where}: data.features entry {entry!r}: column {column!r} is missing{hint}: "
                            "expected a column of the table (fix the name in data.features)")
    if column == target:
        raise PipelineError(f"{where}: data.features entry {entry!r} uses the target {target!r}: "
                            "expected terms of other columns")
    function = call.group(1) if call else None
    if function in ("log", "sqrt"):
        if kinds[column] != NUMBER:
            raise PipelineError(f"{where}: data.features entry {entry!r}: column {column!r} holds {kinds[column]}: "
                                f"expected numbers for {function}() (drop the {function})")
        return Factor(function, column)
    if function == "C":
        return Factor("C", column)
    if kinds[column] != NUMBER:
        return Factor("factor", column)
    return Factor("number", column)


# --- Coding: patsy's rule -------------------------------------------------------------------------------


def design(terms: tuple[Term, ...], kinds: dict[str, str], levels: dict[str, tuple], fit_intercept: bool,
           degree: int = 1, entries: tuple[str, ...] = ()) -> Design:
    """The design columns of `terms`, each factor coded as patsy codes it (see the module's docstring)."""
    terms = terms + tuple((Factor("power", factor.column, power),) for power in range(2, degree + 1)
                          for term in terms if len(term) == 1 and term[0].kind == "number" for factor in term)
    all_terms = ((),) * fit_intercept + terms
    buckets: dict[frozenset, list[Term]] = {}
    for term in all_terms:  # grouped by their numeric factors, the group with none first, as patsy does
        buckets.setdefault(frozenset(f for f in term if not f.is_factor), []).append(term)
    order = sorted(buckets, key=lambda bucket: len(bucket) > 0)  # stable: first seen first
    columns: list[tuple[Piece, ...]] = []
    blocks: list[tuple[int, int]] = []  # the columns of each subterm
    for bucket in order:
        used: set[frozenset] = set()
        for term in sorted(buckets[bucket], key=len):
            for coding in _codings(term, used):
                subterm = [pieces for pieces in _columns(term, coding, levels) if pieces]  # the intercept is the model's own
                if subterm:
                    blocks.append((len(columns), len(columns) + len(subterm)))
                    columns.extend(subterm)
    raw = tuple(dict.fromkeys(f.column for term in terms for f in term))
    names = tuple(column_name(pieces, levels) for pieces in columns)
    return Design(tuple(terms), raw, {c: kinds[c] for c in raw}, {c: tuple(levels[c]) for c in raw if c in levels},
                  tuple(columns), tuple(entries), degree, fit_intercept, names, tuple(blocks))


def _codings(term: Term, used: set[frozenset]) -> list[dict[Factor, bool]]:
    """patsy's pick_contrasts_for_term: for each subterm, each factor's coding (True: full rank)."""
    categorical = [f for f in term if f.is_factor]
    subsets = [frozenset(s) for size in range(len(categorical) + 1) for s in itertools.combinations(categorical, size)]
    subterms = [{f: False for f in subset} for subset in subsets if subset not in used]
    used.update(subsets)
    while _absorb_one(subterms):
        pass
    return subterms


def _absorb_one(subterms: list[dict[Factor, bool]]) -> bool:
    # Greedily from left to right, as patsy's _simplify_subterms: a-:b- absorbs a- into a+:b-.
    for short_index, short in enumerate(subterms):
        for long_index in range(short_index + 1, len(subterms)):
            long = subterms[long_index]
            if len(long) - len(short) == 1 and set(long.items()) >= set(short.items()):
                (extra,) = set(long) - set(short)
                subterms[long_index] = {**short, extra: True}
                subterms.pop(short_index)
                return True
    return False


def _columns(term: Term, coding: dict[Factor, bool], levels: dict[str, tuple]) -> list[tuple[Piece, ...]]:
    """The columns of one subterm: the numeric factors, and each coded factor's levels, the first fastest."""
    choices = []
    for factor in term:
        if not factor.is_factor:
            choices.append([Piece(factor)])
        elif factor in coding:
            full = coding[factor]
            indices = range(len(levels[factor.column])) if full else range(1, len(levels[factor.column]))
            choices.append([Piece(factor, index, not full) for index in indices])
    return [tuple(reversed(combination)) for combination in itertools.product(*reversed(choices))]


def column_name(pieces: tuple[Piece, ...], levels: dict[str, tuple]) -> str:
    parts = []
    for piece in pieces:
        name = piece.factor.name
        if piece.level is not None:
            name += f"[{'T.' if piece.reduced else ''}{level_name(levels[piece.factor.column][piece.level])}]"
        parts.append(name)
    return ":".join(parts)


def level_name(level) -> str:
    """A level as patsy spells it in a column's name: text as it is, True/False, an integral number without .0."""
    if isinstance(level, bool) or isinstance(level, str):
        return str(level)
    if float(level).is_integer() and abs(level) < 1e16:
        return str(int(level))
    return repr(float(level))


def sort_levels(values) -> tuple:
    """Levels in patsy's order: numbers numerically, text in code-point order, False before True."""
    return tuple(sorted(values))


def unseen_level(factor: str, level: str, known: tuple) -> str:
    shown = first_few([repr(level_name(value)) for value in known], _SHOWN_LEVELS)
    return (f"factor {factor} has level {level!r}, which the training rows never had: expected one of {shown} "
            "(retrain with rows of that level, or leave those rows out)")


def design_of(described: dict, target: str, fit_intercept: bool, degree: int, where: str) -> Design:
    """The design a weights file's metadata describes (Design.as_json): the same columns, the same levels."""
    kinds = dict(described["kinds"])
    levels = {column: tuple(float(v) if kinds[column] == NUMBER else v for v in values)
              for column, values in described["levels"].items()}
    entries = tuple(described["entries"])
    return design(parse(list(entries), kinds, target, where), kinds, levels, fit_intercept, degree, entries)
