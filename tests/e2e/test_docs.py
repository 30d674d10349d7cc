"""The manual's pages (README.md, docs/, docs/_incoming/): every relative link resolves, and every shell command
on them runs in a copy of the project with the output the page quotes (conventions: docs/writing-docs.md)."""

import re
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

from manual import PAGES, PLACEHOLDER, Session, missing_lines, parse
from workspace import ROOT, copy_project

IDS = [page.relative_to(ROOT).as_posix() for page in PAGES]
FRONT_DOOR = ROOT / "README.md"


def test_the_manual_has_its_pages():
    names = {page.relative_to(ROOT).as_posix() for page in PAGES}
    assert {"README.md", "docs/writing-docs.md", "docs/performance.md", "docs/inference.md"} <= names


@pytest.mark.parametrize("path", PAGES, ids=IDS)
def test_every_relative_link_resolves(path: Path):
    page = parse(path)
    broken = []
    for line, href in page.links:
        if re.match(r"[a-z][a-z0-9+.-]*:", href):  # https:, mailto:, file: … are not the project's files
            continue
        target, _, anchor = href.partition("#")
        resolved = (path.parent / unquote(target)).resolve() if target else path
        if not resolved.exists():
            broken.append(f"line {line}: {href}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in parse(resolved).anchors:
            broken.append(f"line {line}: {href}: no heading with anchor #{anchor} in {resolved.name}")
    assert not broken, f"{path.relative_to(ROOT)}:\n" + "\n".join(broken)


@pytest.mark.parametrize("path", PAGES, ids=IDS)
def test_every_command_is_in_a_console_block_that_is_run_or_says_why_not(path: Path):
    page = parse(path)
    problems = [f"line {line}: {text}" for line, text in page.stray_commands]
    for block in page.blocks:
        if not block.commands:
            problems.append(f"line {block.line}: a ```console block without a `$ ` command")
        if block.skip_reason is not None and not block.skip_reason:
            problems.append(f"line {block.line}: <!-- not run: … --> says no reason")
        for command in block.commands:
            for name in re.findall(r"<[a-z][a-z0-9-]*>", command.text):
                if not PLACEHOLDER.fullmatch(name):
                    problems.append(f"line {command.line}: {name} is no placeholder the test fills in")
    assert not problems, f"{path.relative_to(ROOT)}:\n" + "\n".join(problems)


RUN = [page for page in PAGES if any(block.skip_reason is None for block in parse(page).blocks)]


@pytest.mark.parametrize("path", RUN, ids=[page.relative_to(ROOT).as_posix() for page in RUN])
def test_every_command_on_the_page_runs_and_prints_what_the_page_quotes(path: Path, request, tmp_path: Path):
    project = tmp_path / "project"
    if path == FRONT_DOOR:  # the front door starts from a fresh clone: its tour begins with `make repro`
        copy_project(project)
    else:  # every other page starts where `make repro` leaves a fresh clone
        shutil.copytree(request.getfixturevalue("reproduced_template"), project, symlinks=True)
    (project / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)  # for `. .venv/bin/activate`
    session = Session(project)
    for block in parse(path).blocks:
        if block.skip_reason is not None:
            continue
        for command in block.commands:
            result = session.run(command.text, tmp_path / "cwd")
            where = f"{path.relative_to(ROOT)} line {command.line}: $ {session.fill(command.text)}"
            if block.fails:
                assert result.returncode != 0, f"{where}\nexited 0, and the page says it fails:\n{result.stdout}"
            else:
                assert result.returncode == 0, f"{where}\nexited {result.returncode}:\n{result.stdout}"
            missing = missing_lines([session.fill(line) for line in command.expected], result.stdout)
            assert not missing, (f"{where}\nprinted no line like:\n" + "\n".join(missing)
                                 + f"\n--- it printed:\n{result.stdout}")


def test_the_readme_is_a_front_door():
    lines = FRONT_DOOR.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250
    first = "\n".join(lines[:30])
    assert "$ make repro" in first and "$ make test" in first
