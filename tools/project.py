"""Facts about the project that the tools, the tests and the benchmarks share, each read from its one source."""

import re
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]


def stage_names(root: Path) -> tuple[str, ...]:
    """The stages dvc.yaml wires, in order."""
    return tuple(YAML(typ="safe").load(root / "dvc.yaml")["stages"])


def declared(stage_name: str, project: Path = ROOT, params_file: Path | None = None) -> dict:
    """What dvc.yaml declares for a stage: cmd, and lists of deps, params and outs, with `${key}`
    replaced by its value in the project's params.yaml (or in `params_file`), as DVC resolves it."""
    params = YAML(typ="safe").load(params_file or project / "params.yaml")
    stage_entry = YAML(typ="safe").load(project / "dvc.yaml")["stages"][stage_name]

    def resolve(text: str) -> str:
        return re.sub(r"\$\{([^}]+)\}", lambda match: str(_lookup(params, match.group(1))), text)

    lists = {field: [resolve(item) for item in stage_entry.get(field, [])] for field in ("deps", "params", "outs")}
    return {"cmd": stage_entry["cmd"], **lists}


def _lookup(document: dict, dotted: str):
    for part in dotted.split("."):
        document = document[part]
    return document


def set_params(project: Path, values: dict[str, object]) -> dict:
    """Set each `section.key` of `values` in the project's params.yaml, keeping its comments; return it all."""
    yaml = YAML()  # round-trip mode keeps comments and order
    path = project / "params.yaml"
    document = yaml.load(path)
    for key, value in values.items():
        section, name = key.split(".")
        document[section][name] = value
    yaml.dump(document, path)
    return document
