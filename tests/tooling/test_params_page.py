"""docs/params.md lists every key of params.yaml, and says which stages read it as dvc.yaml declares."""

import re

from ruamel.yaml import YAML

from workspace import ROOT, STAGES, declared

PAGE = ROOT / "docs" / "params.md"


def rows() -> dict[str, set[str]]:
    """{key: the stages the page says read it}, from the table's rows."""
    found = {}
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            for key in re.findall(r"`([a-z_]+\.[a-z_]+)`", cells[0]):
                found[key] = {stage.strip() for stage in cells[3].split(",")}
    return found


def test_the_page_lists_every_key_of_params_yaml_once_and_no_other():
    document = YAML(typ="safe").load(ROOT / "params.yaml")
    assert set(rows()) == {f"{section}.{key}" for section in document for key in document[section]}


def test_the_page_says_which_stages_read_each_key_as_dvc_yaml_declares():
    for key, stages in rows().items():
        section = key.split(".")[0]
        readers = {stage for stage in STAGES if {key, section} & set(declared(stage)["params"])}
        assert stages == readers, key
