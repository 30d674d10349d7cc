"""Typed, validated params: one model per section of params.yaml, and the one loader."""

import functools
import re
import reprlib
from difflib import get_close_matches
from pathlib import Path, PurePosixPath
from types import NoneType, UnionType
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from ruamel.yaml import YAML, YAMLError

from pipeline.errors import PipelineError
from pipeline.repository import where_it_leads

PARAMS_FILE = Path("params.yaml")

# Bounds keep every valid value computable: beyond them x or y overflow, or a run needs more memory or
# time than a line fit should. The "expected …" of an error is read from the type and these bounds (_expected);
# a description says only what they cannot: what null means, a note, or what a string names.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
Coordinate = Annotated[float, Field(ge=-1e6, le=1e6)]

# data.features: every numeric column of data.source but the target, in file order (pipeline/schema.py).
ALL_FEATURES = "all"
# The most features a model has, listed or found by `all`; and the most slopes synthesize draws.
MAX_FEATURES = 1000

# Names the history and the metrics give to something other than a feature's coefficient.
RESERVED_NAMES = ("intercept", "epoch", "train_loss", "test_loss")


class _Section(BaseModel):
    # strict: "0.1" is not a number and `true` is not an integer; extra="forbid": a misspelled key is an
    # error rather than a setting silently ignored.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)
    section: ClassVar[str]


class SynthesizeParams(_Section):
    """How the synthetic points y = m·x + c + noise are drawn: one feature x, or x1 … xd for a list m."""

    section = "synthesize"
    m: Annotated[Coordinate | None | Annotated[list[Coordinate], Field(min_length=1, max_length=MAX_FEATURES)],
                 Field(description="null to draw it")]
    c: Annotated[Coordinate | None, Field(description="null to draw it")]
    noise: Annotated[float, Field(ge=0, le=1e6)]
    n_points: Annotated[int, Field(ge=2, le=2_000_000_000)]
    x_min: Coordinate
    x_max: Coordinate
    seed: Seed

    @model_validator(mode="after")
    def _check(self) -> "SynthesizeParams":
        if self.x_min >= self.x_max:
            raise ValueError(
                f"synthesize.x_min = {self.x_min!r} and synthesize.x_max = {self.x_max!r}: expected x_min < x_max"
            )
        return self

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The columns synthesize writes besides y: x for one slope, x1 … xd for a list of d slopes."""
        if isinstance(self.m, list):
            return tuple(f"x{index}" for index in range(1, len(self.m) + 1))
        return ("x",)


# The longest path (Linux's PATH_MAX): a longer one is refused before it is quoted or looked up.
MAX_PATH_CHARS = 4096
# The longest column name: of data.features, data.target, and the raw names a weights file holds.
MAX_NAME_CHARS = 200


def power_names(raw: "tuple[str, ...] | list[str]", degree: int) -> tuple[str, ...]:
    """The names of a model's columns: the features x, y, …, then their powers x^2, y^2, … up to `degree`, as
    rows.powers builds them and the metrics, the history and the weights name them."""
    return tuple(raw) + tuple(f"{name}^{power}" for power in range(2, degree + 1) for name in raw)


ColumnName = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS, description="a column name")]


class DataParams(_Section):
    """Which table to fit, which of its columns, and which rows are held out."""

    section = "data"
    source: Annotated[str, Field(
        min_length=1, max_length=MAX_PATH_CHARS, description="a path inside the repository to a .csv or .parquet file")]
    features: Literal[ALL_FEATURES] | Annotated[list[ColumnName], Field(min_length=1, max_length=MAX_FEATURES)]
    target: ColumnName
    missing: Annotated[Literal["error", "drop"], Field(
        description="(drop: leave out every row with an empty, NA, NaN or infinite value in a used column)")]
    degree: Annotated[int, Field(ge=1, le=10, description="(each feature also enters raised to every power up to it)")]
    test_fraction: Annotated[float, Field(ge=0, le=0.9)]
    split_seed: Seed
    max_levels: Annotated[int, Field(ge=2, le=MAX_FEATURES, description=(
        "(features: all leaves out a text column of more levels)"))]

    @field_validator("features", mode="before")
    @classmethod
    def _numbers_name_columns(cls, value: Any) -> Any:
        # YAML and DVC's -S read [1960, 1980] as integers: they name the columns "1960" and "1980".
        if isinstance(value, list):
            return [str(item) if type(item) is int else item for item in value]
        return value

    @model_validator(mode="after")
    def _check(self) -> "DataParams":
        _require_inside_repository("data.source", self.source, is_input=True)
        if self.features == ALL_FEATURES:  # the names are known once the file's header is read
            return self
        repeated = sorted({name for name in self.features if self.features.count(name) > 1})
        if repeated:
            raise ValueError(f"data.features = {_show(self.features)}: names {repeated[0]!r} twice: "
                             "expected each column once")
        if self.target in self.features:
            raise ValueError(f"data.target = {self.target!r} is also in data.features: "
                             "expected a target that is not a feature")
        reserved = [name for name in self.features if name in RESERVED_NAMES]
        if reserved:
            raise ValueError(
                f"data.features = {_show(self.features)}: {reserved[0]!r} is a name the history and metrics "
                f"use for themselves: expected none of {', '.join(RESERVED_NAMES)} (rename the column)"
            )
        return self

    @property
    def columns(self) -> tuple[str, ...]:
        """The model's columns: the features, then their powers by degree ("x", "x^2", …, as the
        metrics, the history and the weights name them). Of `features: all`, once resolved
        (pipeline.schema.resolve_features)."""
        if self.features == ALL_FEATURES:
            raise ValueError("data.features = 'all': resolve it first (pipeline.schema.resolve_features)")
        return power_names(self.features, self.degree)


class TrainParams(_Section):
    """How torch.optim fits torch.nn.Linear(d, 1) to the training rows."""

    section = "train"
    optimizer: Literal["sgd", "adam", "lbfgs"]
    lr: Annotated[float, Field(gt=0, le=1e6)]
    momentum: Annotated[float, Field(ge=0, lt=1, description="(sgd only)")]
    epochs: Annotated[int, Field(ge=1, le=1_000_000)]
    batch_size: Annotated[None | Annotated[int, Field(ge=1, le=100_000_000)],
                          Field(description="null for the full batch")]
    dtype: Literal["float32", "float64"]
    standardize: bool
    fit_intercept: bool
    tolerance: Annotated[float, Field(gt=0, le=1)]
    coefficient_tolerance: Annotated[float, Field(gt=0, le=1e6, description="(in standard errors)")]
    stop_when_converged: bool
    seed: Seed
    device: Literal["cpu", "cuda"]
    processes: Annotated[int, Field(ge=1, le=64, description="more run under torchrun")]

    @model_validator(mode="after")
    def _check(self) -> "TrainParams":
        if self.optimizer == "lbfgs" and self.batch_size is not None:
            raise ValueError(f"train.batch_size = {self.batch_size} with train.optimizer = 'lbfgs': "
                             "expected null (L-BFGS needs the full batch)")
        if self.momentum and self.optimizer != "sgd":
            raise ValueError(f"train.momentum = {self.momentum!r} with train.optimizer = {self.optimizer!r}: "
                             "expected 0 (momentum is a setting of sgd)")
        return self


class EvaluateParams(_Section):
    """How the least-squares fit is judged."""

    section = "evaluate"
    level: Annotated[float, Field(gt=0, lt=1, description="(of the confidence intervals)")]
    cov_type: Annotated[Literal["nonrobust", "HC0", "HC1", "HC2", "HC3"], Field(
        description="(the standard errors' covariance; HC0 … HC3 are heteroskedasticity-robust)")]

    @model_validator(mode="after")
    def _check(self) -> "EvaluateParams":
        _require_finite_quantile("evaluate.level", self.level)
        return self


class PredictParams(_Section):
    """Which rows the trained model predicts, where the predictions go, and the level of their intervals."""

    section = "predict"
    # fitted: the rows of data.source (R's predict(fit), statsmodels' get_prediction()); new: predict.source's.
    # A key of its own, since dvc.yaml's ${predict.source} can be neither null nor empty.
    rows: Annotated[Literal["fitted", "new"], Field(
        description="(fitted: the rows of data.source; new: the rows of predict.source)")]
    source: Annotated[str, Field(
        min_length=1, max_length=MAX_PATH_CHARS, description="a path inside the repository to a .csv or .parquet file")]
    output: Annotated[str, Field(
        min_length=1, max_length=MAX_PATH_CHARS, description="a path inside the repository ending in .csv or .parquet")]
    level: Annotated[float, Field(gt=0, lt=1, description="(of the intervals)")]
    interval: Annotated[Literal["prediction", "confidence"], Field(
        description="(prediction: of a new observation; confidence: of the mean)")]
    influence: Annotated[bool, Field(
        description="(true: leverage, studentized residual and Cook's distance of each training row)")]

    @model_validator(mode="after")
    def _check(self) -> "PredictParams":
        _require_finite_quantile("predict.level", self.level)
        _require_inside_repository("predict.source", self.source, is_input=True)
        _require_inside_repository("predict.output", self.output, is_input=False)
        if PurePosixPath(self.output).suffix not in OUTPUT_SUFFIXES:
            raise ValueError(f"predict.output = {_show(self.output)}: expected a path ending in "
                             f"{' or '.join(OUTPUT_SUFFIXES)} (the extension chooses the format)")
        if PurePosixPath(self.output) == PurePosixPath(self.source):
            raise ValueError(f"predict.output = {_show(self.output)} is also predict.source: "
                             "expected another file, so that the rows are not overwritten")
        return self


OUTPUT_SUFFIXES = (".csv", ".parquet")

# The largest level below 1 whose two-sided quantile, at 1 − (1 − level)/2, is below 1 in float64: above it the
# quantile of Student's t is infinite, and so is every interval.
LARGEST_LEVEL = 0.9999999999999998


def _require_finite_quantile(key: str, level: float) -> None:
    if 1 - (1 - level) / 2 >= 1.0:
        raise ValueError(f"{key} = {level!r}: expected at most {LARGEST_LEVEL!r} "
                         "(closer to 1, the interval's quantile is infinite in float64)")


def _require_inside_repository(key: str, value: str, is_input: bool) -> None:
    """The path's words, then where its links lead (an input's own link too, an output's folders only), before
    a byte of it is read: inside the repository, or DVC's cache for an input."""
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or "\\" in value:
        raise ValueError(f"{key} = {_show(value)}: expected a relative path inside the repository, "
                         "without '..' (DVC tracks only files in the repository)")
    leads = where_it_leads(Path(value), follow_last=is_input)
    if leads:
        raise ValueError(f"{key} = {_show(value)}: {leads}")


class VisualizeParams(_Section):
    """What only drawing needs."""

    section = "visualize"
    dpi: Annotated[int, Field(ge=10, le=1000)]
    max_points: Annotated[int, Field(ge=1, le=1_000_000)]
    seed: Seed


SECTIONS = (SynthesizeParams, DataParams, TrainParams, EvaluateParams, VisualizeParams, PredictParams)
Params = TypeVar("Params", bound=_Section)


def load_params(model: type[Params], path: Path = PARAMS_FILE) -> Params:
    """Read `model.section` of params.yaml (with DVC's own YAML parser) and validate it."""
    document = _read_document(path)
    if model.section not in document:
        raise PipelineError(f"{path}: section '{model.section}' is missing: expected a mapping of its keys")
    values = document[model.section]
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise PipelineError(f"{path}: {_explain(error, model, values)}") from None


def _read_document(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PipelineError(f"{path}: cannot read it ({error.strerror})") from None
    except UnicodeDecodeError:
        raise PipelineError(f"{path}: not UTF-8 text") from None
    return _parsed(path, text)


@functools.lru_cache(maxsize=4)  # a stage loads up to four sections: the text parsed once (6 ms a parse)
def _parsed(path: Path, text: str) -> dict:
    """The document of params.yaml's `text`, shared by the loads that ask: read only, never changed."""
    try:
        document = YAML(typ="safe").load(text)
    except YAMLError as error:
        raise PipelineError(f"{path}: not valid YAML ({_one_line(error)})") from None
    except RecursionError:
        raise PipelineError(f"{path}: nests lists or mappings too deep to read: expected the sections' keys and "
                            "values") from None
    except ValueError:  # ruamel makes an integer of more than 4300 digits (Python's limit) a ValueError
        raise PipelineError(f"{path}: holds an integer of more than 4300 digits: expected numbers a float64 "
                            "holds") from None
    if not isinstance(document, dict):
        found = "is empty" if document is None else f"holds {_show(document)}"
        sections = ", ".join(model.section for model in SECTIONS)
        raise PipelineError(f"{path}: {found}: expected a mapping of sections ({sections})")
    return document


def _explain(error: ValidationError, model: type[_Section], values: Any) -> str:
    """Every problem of a ValidationError, one per key, as "key = value: expected …", joined by "; "."""
    by_key: dict[tuple, list[dict]] = {}
    for problem in error.errors(include_url=False):
        # A union (synthesize.m) has a problem per choice: one key, one problem to tell.
        by_key.setdefault(problem["loc"][:1], []).append(problem)
    # Unknown keys first: a misspelled key is also reported missing under its right name.
    groups = sorted(by_key.values(), key=lambda problems: problems[0]["type"] != "extra_forbidden")
    return "; ".join(_explain_key(problems, model, values) for problems in groups)


def _explain_key(problems: list[dict], model: type[_Section], values: Any) -> str:
    """The problems pydantic found with one key (or with the section as a whole) as one clause."""
    first = problems[0]
    section = model.section
    if not first["loc"]:
        if first["type"] == "value_error":  # a rule across keys, already phrased for the user
            return str(first["ctx"]["error"])
        return f"{section} = {_show(first['input'])}: expected a mapping of its keys"
    key = str(first["loc"][0])
    if first["type"] == "extra_forbidden":
        return f"{section}.{key} = {_show(first['input'])}: unknown key{_did_you_mean(key, model.model_fields)}, " \
               f"expected only {', '.join(model.model_fields)}"
    field = model.model_fields[key]
    expected = _expected(field)
    if first["type"] == "missing":
        return f"{section}.{key} is missing: expected {expected}"
    # The whole value as written: for a list, pydantic's input is only the item it refused.
    value = values[key] if isinstance(values, dict) and key in values else first["input"]
    # Of a union's problems, the one not about the value's type says what is wrong.
    # Of a list against a word (data.features), the list's problem, not that it is not the word.
    first = min(problems, key=lambda problem: (problem["type"].endswith("_type"),
                                               problem["type"] == "literal_error" and not isinstance(value, str)))
    hint = ""
    if first["type"] == "literal_error" and isinstance(value, str):
        hint = _did_you_mean(value[:MAX_NAME_CHARS], _literals(field.annotation))
    return f"{section}.{key} = {_show(value)}{hint}: expected {expected} ({_reason(first)})"


def _expected(field: FieldInfo) -> str:
    """What a field accepts, in words: its type and bounds, then its description (what null means, or a note);
    a string is its description alone ("a column name")."""
    kind, note = field.annotation, field.description
    if get_origin(kind) in (Union, UnionType):
        choices = [(note or "null") if choice is NoneType else _expected(FieldInfo.from_annotation(choice))
                   for choice in get_args(kind)]
        return f"{', '.join(choices[:-1])}, or {choices[-1]}"
    if kind is str:
        return note
    if get_origin(kind) is Literal:
        text = f"one of {', '.join(get_args(kind))}" if len(get_args(kind)) > 1 else get_args(kind)[0]
    elif kind is bool:
        text = "true or false"
    elif kind is int:
        text = f"an integer {_bounds(field)}"
    elif kind is float:
        text = f"a number {_bounds(field)}"
    else:  # a list: "a number from 0 to 1" → "a list of 1 to 100 numbers from 0 to 1"
        items = re.sub(r"^an? (integer|number|.*)", r"\1s", _expected(FieldInfo.from_annotation(get_args(kind)[0])))
        text = f"a list of {_bounds(field)} {items}"
    if note:
        return f"{text} {note}"
    return text


# How users read the bounds of a number, or of a list's length; another combination is a KeyError the tests catch.
BOUNDS = {
    ("ge", "le"): "from {ge} to {le}",
    ("gt", "le"): "> {gt} and at most {le}",
    ("ge", "lt"): "from {ge} to below {lt}",
    ("gt", "lt"): "> {gt} and < {lt}",
    ("gt",): "> {gt}",
    ("max_length", "min_length"): "{min_length} to {max_length}",
}


def _bounds(field: FieldInfo) -> str:
    """A field's bounds as BOUNDS words them: "from 0 to 1e6", "> 0 and at most 1"."""
    bounds = {name: _number(getattr(item, name)) for item in field.metadata
              for name in ("ge", "gt", "le", "lt", "min_length", "max_length") if hasattr(item, name)}
    return BOUNDS[tuple(sorted(bounds))].format(**bounds)


def _number(value: int | float) -> str:
    """A bound as users write it in YAML: 100000000, 4294967295, 0.9, 1e6 (not 1000000.0)."""
    if isinstance(value, int):
        return str(value)
    text = f"{value:g}"
    if float(text) != value:  # %g keeps 6 digits
        text = repr(value)
    return text.replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def _reason(problem: dict) -> str:
    message = problem["msg"]
    return message[0].lower() + message[1:]


def _literals(kind: Any) -> list[str]:
    """The words a Literal accepts, or the Literals of a union (data.features: all, or a list)."""
    if get_origin(kind) is Literal:
        return list(get_args(kind))
    if get_origin(kind) in (Union, UnionType):
        return [word for choice in get_args(kind) for word in _literals(choice)]
    return []


def _did_you_mean(word: str, choices) -> str:
    close = get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]}?)" if close else ""


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML, cut short before it is rendered: a long string, a deep list or an
    alias bomb (a list of lists of the same lists) costs no more to show than a short one."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and abs(value) >= 10**40:  # repr of a huge integer takes long, or raises
        return f"an integer of {value.bit_length():,} bits"
    if isinstance(value, (dict, list)):
        return f"a {type(value).__name__} {_SHORT.repr(value)}"[:200]
    return _SHORT.repr(value)


def _short_repr() -> reprlib.Repr:
    shown = reprlib.Repr()  # Python 3.11 takes no arguments
    shown.maxlevel, shown.maxlist, shown.maxdict, shown.maxstring, shown.maxother, shown.maxlong = 3, 10, 10, 100, 100, 40
    return shown


_SHORT = _short_repr()


def _one_line(error: YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).strip().splitlines()[0]
    return f"{problem} at line {mark.line + 1}" if mark is not None else problem
