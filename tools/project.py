"""Facts about the project that the tools, the tests and the benchmarks share, each read from its one source."""

from pathlib import Path

from ruamel.yaml import YAML


def stage_names(root: Path) -> tuple[str, ...]:
    """The stages dvc.yaml wires, in order."""
    return tuple(YAML(typ="safe").load(root / "dvc.yaml")["stages"])


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
