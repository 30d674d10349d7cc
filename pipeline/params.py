"""Typed, validated params: one model per section of params.yaml, and the one loader."""

from difflib import get_close_matches
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from ruamel.yaml import YAML, YAMLError

from pipeline.errors import PipelineError

PARAMS_FILE = Path("params.yaml")

# Bounds keep every valid value computable: beyond them x or y overflow, or a run needs more memory or
# time than a line fit should. Each description is the "expected …" of the error message.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1, description="an integer from 0 to 4294967295")]
Coordinate = Annotated[float, Field(ge=-1e6, le=1e6, description="a number from -1e6 to 1e6")]


class _Section(BaseModel):
    # strict: "0.1" is not a number and `true` is not an integer; extra="forbid": a misspelled key is an
    # error rather than a setting silently ignored.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)
    section: ClassVar[str]


class SynthesizeParams(_Section):
    """How the synthetic points y = m·x + c + noise are drawn."""

    section = "synthesize"
    m: Annotated[Coordinate | None, Field(description="a number from -1e6 to 1e6, or null to draw it")]
    c: Annotated[Coordinate | None, Field(description="a number from -1e6 to 1e6, or null to draw it")]
    noise: Annotated[float, Field(ge=0, le=1e6, description="a number from 0 to 1e6")]
    n_points: Annotated[int, Field(ge=2, le=100_000_000, description="an integer from 2 to 100000000")]
    x_min: Coordinate
    x_max: Coordinate
    seed: Seed

    @model_validator(mode="after")
    def _x_range_is_not_empty(self) -> "SynthesizeParams":
        if self.x_min >= self.x_max:
            raise ValueError(
                f"synthesize.x_min = {self.x_min!r} and synthesize.x_max = {self.x_max!r}: "
                "expected x_min < x_max"
            )
        return self


class TrainParams(_Section):
    """Full-batch SGD on the MSE loss."""

    section = "train"
    lr: Annotated[float, Field(gt=0, description="a number > 0")]
    epochs: Annotated[int, Field(ge=1, le=1_000_000, description="an integer from 1 to 1000000")]
    seed: Seed


class VisualizeParams(_Section):
    """What only drawing needs."""

    section = "visualize"
    dpi: Annotated[int, Field(ge=10, le=1000, description="an integer from 10 to 1000")]
    max_points: Annotated[int, Field(ge=1, le=1_000_000, description="an integer from 1 to 1000000")]
    seed: Seed


Params = TypeVar("Params", bound=_Section)


def load_params(model: type[Params], path: Path = PARAMS_FILE) -> Params:
    """Read `model.section` of params.yaml (with DVC's own YAML parser) and validate it."""
    try:
        document = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PipelineError(f"{path}: cannot read it ({error.strerror})") from None
    except UnicodeDecodeError:
        raise PipelineError(f"{path}: not UTF-8 text") from None
    except YAMLError as error:
        raise PipelineError(f"{path}: not valid YAML ({_one_line(error)})") from None
    if not isinstance(document, dict):
        found = "is empty" if document is None else f"holds {_show(document)}"
        raise PipelineError(f"{path}: {found}: expected a mapping of sections (synthesize, train, visualize)")
    if model.section not in document:
        raise PipelineError(f"{path}: section '{model.section}' is missing: expected a mapping of its keys")
    try:
        return model.model_validate(document[model.section])
    except ValidationError as error:
        raise PipelineError(f"{path}: {_explain(error, model)}") from None


def _explain(error: ValidationError, model: type[_Section]) -> str:
    """The first problem of a ValidationError as "key = value: expected …"."""
    # An unknown key first: a misspelled key is also reported missing under its right name.
    problems = sorted(error.errors(include_url=False), key=lambda problem: problem["type"] != "extra_forbidden")
    first = problems[0]
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    section = model.section
    if not first["loc"]:
        if first["type"] == "value_error":  # a rule across keys, already phrased for the user
            return f"{first['ctx']['error']}{more}"
        return f"{section} = {_show(first['input'])}: expected a mapping of its keys{more}"
    key = str(first["loc"][0])
    if first["type"] == "extra_forbidden":
        known = ", ".join(model.model_fields)
        close = get_close_matches(key, model.model_fields, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"{section}.{key} = {_show(first['input'])}: unknown key{hint}, expected only {known}{more}"
    field = model.model_fields[key]
    expected = field.description or ""
    if first["type"] == "missing":
        return f"{section}.{key} is missing: expected {expected}{more}"
    return f"{section}.{key} = {_show(first['input'])}: expected {expected} ({first['msg'].lower()}){more}"


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (dict, list)):
        return f"a {type(value).__name__} {value!r}"[:200]
    return repr(value)


def _one_line(error: YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).strip().splitlines()[0]
    return f"{problem} at line {mark.line + 1}" if mark is not None else problem
