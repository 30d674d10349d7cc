"""The rows of data.source a model is fitted to and those held out: the same rows in every stage, on every machine.

pipeline/dataset.py opens the table (CSV or Parquet, checked); here its rows are split: a seeded choice of
held-out rows in each block of 2^20 rows (pipeline/rows.py), with data.missing: drop among the complete rows,
and formula terms (factors, interactions, logs) coded as the design's columns.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from pipeline.dataset import Seen, open_labeled_rows, open_source, rows_in_footer
from pipeline.errors import PipelineError
from pipeline.levels import Known, WithTerms, coders_for, find_levels, require_cells
from pipeline.params import MAX_FEATURES, DataParams
from pipeline.holdout import draw_ahead, drawing_while_reading
from pipeline.parts import Part
from pipeline.rows import Rows, with_powers
from pipeline.schema import column_kinds, requested_columns, where_of
from pipeline.terms import Design, design, design_of, is_plain, parse


def require_enough_training_rows(path: Path, n_train: int, n_coefficients: int) -> None:
    """A fit needs more training rows than coefficients: with as many, no degree of freedom is left for a
    standard error."""
    if n_train < n_coefficients + 1:
        left = " (no degrees of freedom left for a standard error)" if n_train == n_coefficients else ""
        raise PipelineError(
            f"{where_of(Path(path))}: {n_train} training rows{left}: expected at least {n_coefficients + 1} "
            f"(one more than the {n_coefficients} coefficients); add rows or lower data.test_fraction"
        )


@dataclass(frozen=True)
class Split:
    """The rows of data.source a model is fitted to (train) and the rows held out (test)."""

    source: Path
    train: Rows
    test: Rows | None  # None when data.test_fraction is 0
    rows_dropped: int = 0  # rows of data.source left out by data.missing: drop
    rows_unlabeled: int = 0  # rows of data.source left out for a missing target (and no other missing value)

    def unlabeled_note(self, target: str) -> str | None:
        """The line train and evaluate print about the unlabeled rows, if there are any."""
        if not self.rows_unlabeled:
            return None
        rows = "1 row" if self.rows_unlabeled == 1 else f"{self.rows_unlabeled} rows"
        return (f"{self.source}: left out {rows} without a value of {target!r} (unlabeled): not fitted "
                "or scored; predict predicts them (predict.rows: fitted)")
    columns: tuple[str, ...] = ()  # the model's columns: data.columns, or the design's
    design: Design | None = None  # where data.features holds terms beyond numeric columns
    rows_unseen: int = 0  # held-out rows left out of the scores: a level the training rows never had


Opened = TypeVar("Opened")


def read_while_drawing(source: Path, test_fraction: float, seed: int, read: Callable[[], Opened],
                       rows_split: Callable[[Opened], int]) -> Opened:
    """read() data.source while the split's held-out rows are drawn for its footer's count of rows
    (holdout.drawing_while_reading); then draw for the rows it splits, rows_split(what read gave) (holdout.draw_ahead)."""
    with drawing_while_reading(rows_in_footer(source), test_fraction, seed):
        opened = read()
    draw_ahead(rows_split(opened), test_fraction, seed)
    return opened


def load_split(data: DataParams, fit_intercept: bool, check: bool = True, terms: dict | None = None,
               kinds: dict[str, str] | None = None, seen: Seen | None = None) -> Split:
    """Open data.source and split its rows (with data.missing: drop, its complete rows): the same rows in every
    stage, on every machine. check=False skips the pass over a Parquet file's values, for a process whose
    parent has made it. Terms (factors, interactions, logs) are coded with the levels `terms` holds (the
    weights' metadata, Design.as_json), or else with those found among the training rows. `kinds`: the
    columns' kinds where resolving `data.features: all` found them (Resolved.kinds), or else read here. `seen`:
    given each row group of a Parquet file of numeric features as the check reads it (dataset.open_source)."""
    source = Path(data.source)
    # The header's kinds (a Parquet schema, a CSV file's first block) tell a text column from a numeric one.
    if terms is not None:
        kinds = {}
    elif kinds is None:
        kinds = column_kinds(source, data.features)
    if terms is not None or not is_plain(data.features, kinds):
        return _load_terms(data, fit_intercept, check, kinds, terms)
    table, rows_dropped, rows_unlabeled = read_while_drawing(
        source, data.test_fraction, data.split_seed, lambda: open_labeled_rows(
            source, data.features, data.target, check, data.missing, seen), lambda opened: len(opened[0]))
    table = with_powers(table, data.degree)
    train = Part(table, False, data.test_fraction, data.split_seed)
    test = Part(table, True, data.test_fraction, data.split_seed)
    require_enough_training_rows(source, len(train), len(data.columns) + int(fit_intercept))
    return Split(source, train, test if len(test) else None, rows_dropped, rows_unlabeled, data.columns)


def _load_terms(data: DataParams, fit_intercept: bool, check: bool, kinds: dict[str, str],
                described: dict | None) -> Split:
    source = Path(data.source)
    where = where_of(source)
    if described is not None:
        built = design_of(described, data.target, fit_intercept, data.degree, where)
        coders = coders_for(built.raw, built.kinds, built.levels)
    else:
        terms = parse(list(data.features), kinds, data.target, where)
        raw = tuple(dict.fromkeys(f.column for term in terms for f in term))
        coders = coders_for(raw, kinds)
    raw = built.raw if described is not None else raw
    table, rows_dropped, rows_unlabeled = read_while_drawing(
        source, data.test_fraction, data.split_seed, lambda: open_source(
            source, requested_columns(where, list(raw), data.target), check, data.missing, coders=coders),
        lambda opened: len(opened[0]))
    if described is None:
        found = find_levels(table, terms, kinds, coders, data.test_fraction, data.split_seed, where)
        built = design(terms, kinds, found.levels, fit_intercept, data.degree, tuple(data.features))
        require_cells(found, built, where)
        encoded, rows_unseen = WithTerms(table, built, found.remaps), found.rows_unseen
    else:
        encoded, rows_unseen = WithTerms(table, built), None
    if len(built.names) > MAX_FEATURES:
        raise PipelineError(f"{where}: data.features = {list(data.features)[:5]}...: {len(built.names)} columns once "
                            f"factors are coded: expected at most {MAX_FEATURES} (fewer levels, or fewer terms)")
    train = Part(encoded, False, data.test_fraction, data.split_seed)
    test = Part(encoded, True, data.test_fraction, data.split_seed)
    require_enough_training_rows(source, len(train), len(built.names) + int(fit_intercept))
    if rows_unseen is None:  # counted once, here, where the weights' levels are not the training rows' own
        rows_unseen = sum(int(np.isnan(read().features[:, 0]).sum()) for read in test.groups()) if len(test) else 0
    known = Known(test, rows_unseen) if rows_unseen else test
    return Split(source, train, known if len(known) else None, rows_dropped, rows_unlabeled, built.names, built,
                 rows_unseen)
