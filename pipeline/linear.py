"""A fitted linear model y = X·coefficients + intercept, and its weights file (how it scores on rows:
pipeline/scores.py).

No torch here: evaluate, visualize and predict read the weights with safetensors.numpy and compute in float64,
and so can a notebook: `LinearModel.load("models/model.safetensors").predict(table)`.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from safetensors import SafetensorError
from safetensors.numpy import load as load_safetensors, save as save_safetensors

from pipeline.errors import PipelineError, cut, first_few
from pipeline.files import atomic_output, read_bytes, row_blocks
from pipeline.params import MAX_FEATURES, MAX_NAME_CHARS, power_names
from pipeline.rows import powers
from pipeline.levels import coders_for
from pipeline.terms import Design, design_of

INTERCEPT = "intercept"

# What a line about a damaged or foreign file in models/ tells to do.
RESTORE = "run `dvc checkout models/` to restore it, or `dvc repro`"


@dataclass(frozen=True)
class LinearModel:
    """Coefficients by column name and an intercept (0 for a model fitted through the origin).

    The columns are the raw features, then their powers up to `degree` (data.columns): with degree 1 they
    are taken as given, so a model of power columns built elsewhere predicts from all of them.
    """

    features: tuple[str, ...]
    coefficients: tuple[float, ...]
    intercept: float
    degree: int = 1
    design: Design | None = None  # where the columns are terms (factors, interactions, logs): pipeline/terms.py

    @property
    def raw_features(self) -> tuple[str, ...]:
        """The columns a table must hold: the features whose powers make the others, or the terms' columns."""
        if self.design is not None:
            return self.design.raw
        return self.features[:len(self.features) // self.degree]

    def predict(self, features: "np.ndarray | pa.Table") -> np.ndarray:
        """float64 predictions for rows of every column (n, p), of the raw features (n, d) whose powers it
        builds, or of a pyarrow Table holding the raw features by name; elementwise, so the same bits on every
        CPU."""
        return self.predict_columns(self.columns_of(features))

    def predict_columns(self, columns: np.ndarray) -> np.ndarray:
        """float64 predictions of rows of every column of the model (n, p), as columns_of gives them."""
        predictions = np.full(len(columns), self.intercept, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):  # beyond float64: the stages refuse it in one line
            for rows in row_blocks(len(columns), len(self.coefficients)):  # each row's sum in the same order
                block, total = columns[rows], predictions[rows]
                for column, coefficient in enumerate(self.coefficients):
                    total += coefficient * block[:, column]
        return predictions

    def columns_of(self, features: "np.ndarray | pa.Table") -> np.ndarray:
        """Every column of the model, (n, p) float64, from what `predict` accepts (for a model of terms, its raw
        columns: numbers and level codes)."""
        if isinstance(features, (pa.Table, pa.RecordBatch)):
            missing = [name for name in self.raw_features if name not in features.column_names]
            if missing:
                raise ValueError(f"the table has no column {missing[0]!r}: expected {list(self.raw_features)}")
            coders = {} if self.design is None else coders_for(self.design.raw, self.design.kinds, self.design.levels,
                                                               strict=True)
            features = np.column_stack([coders[name].code(features.column(name)) if name in coders else
                                        features.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
                                        for name in self.raw_features])
        features = np.asarray(features)
        if self.design is not None:  # a model of terms takes its raw columns (numbers and level codes)
            if features.ndim != 2 or features.shape[1] != len(self.design.raw):
                raise ValueError(f"features of shape {features.shape}: expected (n, {len(self.design.raw)}) for the "
                                 f"columns {list(self.design.raw)}")
            return self.encode(features)
        if features.ndim != 2 or features.shape[1] not in (len(self.features), len(self.raw_features)):
            raise ValueError(f"features of shape {features.shape}: expected (n, {len(self.raw_features)}) for "
                             f"{list(self.raw_features)}" + (f" or (n, {len(self.features)})" if self.degree > 1 else ""))
        if features.shape[1] == len(self.features):
            return features
        return powers(features.astype(np.float64), self.degree)

    def encode(self, raw: np.ndarray) -> np.ndarray:
        """The design columns of raw rows (numbers and level codes); a level training never saw is an error."""
        columns, known = self.design.encode(raw)
        if not known.all():
            raise PipelineError(self.design.first_unseen(raw) or "a level the training rows never had")
        return columns

    @classmethod
    def load(cls, path: "Path | str") -> "LinearModel":
        """The model a weights file holds, its columns and degree read from the file itself: no params.yaml,
        no torch."""
        path = Path(path)
        state, metadata = _read_weights(path)
        described = Description.of(path, metadata)
        model = _model_of(path, state, described.features, described.fit_intercept, described.dtype)
        return cls(model.features, model.coefficients, model.intercept, described.degree, described.design(path))

    def as_dict(self) -> dict[str, float]:
        """{feature: coefficient, …, "intercept": intercept}: the schema of truth.json and of the metrics."""
        return {**dict(zip(self.features, self.coefficients)), INTERCEPT: self.intercept}

    @classmethod
    def from_dict(cls, features: tuple[str, ...], values: dict[str, float]) -> "LinearModel":
        return cls(features, tuple(values[name] for name in features), values[INTERCEPT])



SHOWN_COEFFICIENTS = 10  # a wide model's lines name this many coefficients and count the rest


def ordered_sum(values: np.ndarray) -> float:
    # np.sum adds pairwise in a fixed order (no BLAS), so the bits do not depend on the CPU's kernels.
    return float(np.sum(values))


# Weights: the state_dict of torch.nn.Linear(d, 1), as safetensors, a format that cannot carry code. Its
# metadata (strings, as safetensors allows) says what the weights mean, so that the file explains itself.

def safe_open_metadata(content: bytes) -> dict[str, str]:
    """The string metadata of a safetensors file's header (its first 8 bytes give the header's length)."""
    length = int.from_bytes(content[:8], "little")
    return json.loads(content[8:8 + length]).get("__metadata__") or {}


@dataclass(frozen=True)
class Description:
    """What a weights file's metadata says: the model's columns, the features they are made of, the degree,
    the target, whether there is an intercept, and the dtype of the weights."""

    features: tuple[str, ...]  # the model's columns, powers included: x, x^2, …
    raw_features: tuple[str, ...]
    degree: int
    target: str | None
    fit_intercept: bool
    dtype: str
    terms: dict | None = None  # terms.Design.as_json: the entries of data.features and each factor's levels

    def design(self, path: Path) -> Design | None:
        """The terms' design the metadata describes: the same columns, coded with the same levels."""
        if self.terms is None:
            return None
        built = design_of(self.terms, self.target, self.fit_intercept, self.degree, str(path))
        if built.names != self.features:
            raise PipelineError(f"{path}: its terms make columns {list(built.names)[:5]}...: expected its features "
                                f"{list(self.features)[:5]}... (run `dvc repro`)")
        return built

    @classmethod
    def load(cls, path: "Path | str") -> "Description":
        """What the weights file at `path` says of itself."""
        return cls.of(Path(path), _read_weights(Path(path))[1])

    @classmethod
    def of(cls, path: Path, metadata: dict[str, str]) -> "Description":
        """What a weights file's metadata says; anything else gets one line."""
        if METADATA_KEY not in metadata:
            raise PipelineError(f"{path}: holds no {METADATA_KEY!r} metadata: expected weights written by train, "
                                f"which say what they mean ({RESTORE})")
        values = unique_json(metadata[METADATA_KEY])
        problem = description_problem(values)
        if problem:
            raise PipelineError(f"{path}: its {METADATA_KEY!r} metadata {problem} (train writes a JSON object of "
                                f"{', '.join(FIELDS)}: {RESTORE})")
        return cls(tuple(values["features"]), tuple(values["raw_features"]), values["degree"], values["target"],
                   values["fit_intercept"], values["dtype"], values.get(TERMS))

    def as_metadata(self) -> dict[str, str]:
        # One key: safetensors writes the keys of its metadata in no fixed order, and the same params must
        # give the same bytes.
        values = {name: getattr(self, name) for name in FIELDS}
        # Only a model of terms says so: the weights of numeric columns keep their bytes.
        terms = {} if self.terms is None else {TERMS: self.terms}
        return {METADATA_KEY: json.dumps(values | {"features": list(self.features),
                                                   "raw_features": list(self.raw_features)} | terms)}


# safetensors.safe_open(path, "numpy").metadata()["linear_model"] is a JSON object of the FIELDS.
METADATA_KEY = "linear_model"
FIELDS = ("features", "raw_features", "degree", "target", "fit_intercept", "dtype")
TERMS = "terms"  # a model of terms (factors, interactions, logs) also holds terms.Design.as_json


def unique_json(text: str) -> object:
    """A JSON value, or None where the text is none, nests too deep or repeats a key within an object (JSON
    would keep the last of them silently)."""
    def refuse_repeated(pairs: list[tuple[str, object]]) -> dict:
        keys = [key for key, _ in pairs]
        if len(set(keys)) < len(keys):
            raise ValueError("a key repeated")
        return dict(pairs)

    try:
        return json.loads(text, object_pairs_hook=refuse_repeated)
    except (ValueError, RecursionError):
        return None


def description_problem(values: object) -> str | None:
    """What is wrong with the metadata of a weights file (unique_json's value), in words, or None: every
    field of its type, names distinct and of bounded length, the columns those train builds from the raw
    features, and a target that is not one of them. O(p), as cheap as reading the file."""
    if not isinstance(values, dict):
        return "is not a JSON object of distinct keys: expected one"
    if set(values) - {TERMS} != set(FIELDS):
        unknown = [cut(key) for key in values if key not in (*FIELDS, TERMS)]
        missing = [name for name in FIELDS if name not in values]
        return f"lacks {', '.join(missing)}: expected every field" if missing else \
            f"holds unknown keys {first_few(unknown, 3)}: expected only its fields"
    raw, columns, degree, target = values["raw_features"], values["features"], values["degree"], values["target"]
    for key, names in (("raw_features", raw), ("features", columns)):
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            return f"field {key} is {shown_json(names)}: expected a list of names"
    if not 1 <= len(raw) <= MAX_FEATURES:
        return f"names {len(raw):,} raw features: expected 1 to {MAX_FEATURES}"
    for name in raw:
        if not 1 <= len(name) <= MAX_NAME_CHARS:
            return f"names a feature of {len(name):,} characters ({cut(name)}): expected 1 to {MAX_NAME_CHARS}"
    if len(set(raw)) < len(raw):
        return f"names feature {cut(next(name for name in raw if raw.count(name) > 1))} twice: expected each once"
    if type(degree) is not int or not 1 <= degree <= MAX_DEGREE:
        return f"field degree is {shown_json(degree)}: expected an integer from 1 to {MAX_DEGREE}"
    if TERMS in values:  # a model of terms: its columns are the design's (Description.design checks them)
        if not isinstance(values[TERMS], dict):
            return f"field {TERMS} is {shown_json(values[TERMS])}: expected a JSON object of the terms and their levels"
        if not 1 <= len(columns) <= MAX_FEATURES or len(set(columns)) < len(columns):
            return f"field features names {len(columns):,} columns: expected 1 to {MAX_FEATURES}, each once"
        longest = max(columns, key=len)
        if len(longest) > MAX_BUILT_NAME_CHARS:
            return f"names a column of {len(longest):,} characters ({cut(longest)}): expected at most {MAX_BUILT_NAME_CHARS}"
    elif tuple(columns) != power_names(raw, degree):
        return f"field features is {shown_json(columns)}: expected the raw features, then their powers up to the degree"
    if target is not None and not (isinstance(target, str) and 1 <= len(target) <= MAX_NAME_CHARS):
        return f"field target is {shown_json(target)}: expected null or a name of 1 to {MAX_NAME_CHARS} characters"
    if target in columns:
        return f"names target {cut(target)} as a feature too: expected a target that is not a feature"
    if not isinstance(values["fit_intercept"], bool):
        return f"field fit_intercept is {shown_json(values['fit_intercept'])}: expected true or false"
    if values["dtype"] not in DTYPES:
        return f"field dtype is {shown_json(values['dtype'])}: expected {' or '.join(DTYPES)}"
    return None


def shown_json(value: object) -> str:
    """A JSON value in a message, cut short: a name as cut() shows it, anything else as JSON (a big number's
    digits are cut as text, never all made into a string of any length)."""
    if isinstance(value, str):
        return cut(value)
    if isinstance(value, (list, dict)):
        return f"a JSON {'array' if isinstance(value, list) else 'object'} of {len(value):,} items"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**15:
        return "a number of more than 15 digits"
    return json.dumps(value)


MAX_DEGREE = 10  # data.degree's bound
# A column's name built from raw names of at most MAX_NAME_CHARS: a power (x^10), a factor's level
# (C(year)[T.1990]) or an interaction of a few such; bounded, so that a damaged file's name is never echoed whole.
MAX_BUILT_NAME_CHARS = 8 * (MAX_NAME_CHARS + 16)
DTYPES = ("float32", "float64")


def save_weights(path: Path, model: LinearModel, dtype: str, fit_intercept: bool, target: str | None = None,
                 degree: int = 1, design: Design | None = None) -> None:
    """The weights as safetensors, with metadata that says what they mean (Description)."""
    state = {"weight": np.array([model.coefficients], dtype=dtype)}
    if fit_intercept:
        state["bias"] = np.array([model.intercept], dtype=dtype)
    raw_features = model.features[:len(model.features) // degree] if design is None else design.raw
    metadata = Description(model.features, raw_features, degree, target, fit_intercept, dtype,
                           None if design is None else design.as_json()).as_metadata()
    with atomic_output(path) as temporary:
        temporary.write_bytes(save_safetensors(state, metadata=metadata))


def terms_of(path: Path) -> dict | None:
    """The terms a weights file's metadata keeps (Description.terms): None for a model of numeric columns, and
    for weights written before they described themselves."""
    metadata = _read_weights(path)[1]
    return Description.of(path, metadata).terms if METADATA_KEY in metadata else None


def load_weights(path: Path, features: tuple[str, ...], fit_intercept: bool) -> LinearModel:
    """Read the weights of a Linear(len(features), 1) model, the columns that params.yaml names; anything
    else, or metadata that names other columns, gets one line."""
    state, metadata = _read_weights(path)
    dtype = None
    if METADATA_KEY in metadata:  # weights written before they described themselves are read as they were
        described = Description.of(path, metadata)
        if described.features != tuple(features):
            raise PipelineError(f"{path}: holds the weights of columns {_names(described.features)}: expected "
                                f"{_names(features)}, as data.features and data.degree say (run `dvc repro`)")
        if described.fit_intercept != fit_intercept:
            raise PipelineError(f"{path}: holds weights {'with' if described.fit_intercept else 'without'} an "
                                f"intercept: expected train.fit_intercept = {str(fit_intercept).lower()} (run `dvc repro`)")
        dtype = described.dtype
    return _model_of(path, state, features, fit_intercept, dtype)


def _names(names: "tuple[str, ...] | list[str]") -> str:
    return f"[{first_few([cut(name) for name in names], 10)}]"


def _read_weights(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and the metadata of a safetensors file; a file that is none gets one line."""
    content = read_bytes(path)
    if content[:2] in (b"PK", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"):
        raise PipelineError(f"{path}: is a pickle (a torch.save file?), which can run code when loaded: "
                            f"expected safetensors weights ({RESTORE})")
    try:
        state = load_safetensors(content)
        metadata = safe_open_metadata(content)
    except (SafetensorError, ValueError, OverflowError, RecursionError) as error:
        raise PipelineError(f"{path}: not a readable safetensors file ({str(error).splitlines()[0][:150]}): "
                            f"{RESTORE}") from None
    return state, metadata


def _model_of(path: Path, state: dict[str, np.ndarray], features: tuple[str, ...], fit_intercept: bool,
              dtype: str | None = None) -> LinearModel:
    """The model of the tensors: exactly weight (1, p) and, with an intercept, bias (1,), finite, of the dtype
    the metadata says (float32 or float64 if it says none)."""
    expected_shapes = {"weight": (1, len(features))} | ({"bias": (1,)} if fit_intercept else {})
    dtypes = (dtype,) if dtype else DTYPES
    if set(state) != set(expected_shapes):
        raise PipelineError(f"{path}: holds tensors {_names(sorted(state))}: expected {sorted(expected_shapes)} "
                            f"(train.fit_intercept = {'true' if fit_intercept else 'false'}; {RESTORE})")
    for name, shape in expected_shapes.items():
        tensor = state[name]
        if tensor.shape != shape or tensor.dtype.name not in dtypes:
            raise PipelineError(f"{path}: {name} is {cut(str(tensor.shape))[1:-1]} {tensor.dtype}: expected "
                                f"{' or '.join(dtypes)} of shape {shape} for features {_names(features)} ({RESTORE})")
        finite = np.isfinite(tensor)
        if not finite.all():
            at = int(np.argmin(finite.ravel()))
            which = f"the coefficient of {cut(features[at])}" if name == "weight" else "the intercept"
            raise PipelineError(f"{path}: {which} is {tensor.ravel()[at]}: expected finite numbers ({RESTORE})")
    intercept = float(state["bias"][0]) if fit_intercept else 0.0
    return LinearModel(tuple(features), tuple(float(value) for value in state["weight"][0]), intercept)
