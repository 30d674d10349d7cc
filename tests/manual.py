"""The pages of the manual (README.md, docs/*.md, docs/_incoming/*.md): their links, and the shell commands
in their ```console blocks with the output each quotes. docs/writing-docs.md describes the conventions."""

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt

from workspace import ROOT, environment

PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs" / "_incoming").glob("*.md")))
NOT_RUN = re.compile(r"<!--\s*not run:\s*(?P<reason>.*?)\s*-->", re.DOTALL)
FAILS = re.compile(r"<!--\s*fails\s*-->")
# A placeholder the test fills in: <exp-a> is the first experiment the page's commands made, <exp-b> the next…
PLACEHOLDER = re.compile(r"<(exp-[a-z])>")
SHELL_INFO = {"sh", "bash", "shell", "zsh", "console", "shell-session", "terminal"}
# dvc's tables and progress follow the terminal's width: one width for every run, wide enough for the pages.
COLUMNS = "120"
TIMEOUT_S = 600  # a guard against a command that waits forever (for a network, say), not a measurement


@dataclass
class Command:
    text: str                 # the command, continuation lines joined, without the `$ `
    expected: list[str]       # the output lines the page quotes: each must appear, in this order
    line: int                 # where it stands on its page (1-based)


@dataclass
class Block:
    line: int
    info: str
    commands: list[Command]
    skip_reason: str | None = None   # <!-- not run: reason --> just before the block
    fails: bool = False              # <!-- fails --> just before the block: each command must exit non-zero


@dataclass
class Page:
    path: Path
    blocks: list[Block] = field(default_factory=list)
    links: list[tuple[int, str]] = field(default_factory=list)   # (line, href)
    anchors: set[str] = field(default_factory=set)
    stray_commands: list[tuple[int, str]] = field(default_factory=list)  # `$ ` lines outside ```console


def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark").enable("table")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def parse(path: Path) -> Page:
    page = Page(path)
    tokens = _markdown().parse(path.read_text(encoding="utf-8"))
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            page.anchors.add(slug(tokens[index + 1].content))
        elif token.type == "inline":
            for child in token.children or []:
                target = child.attrs.get("href") or child.attrs.get("src")
                if child.type in ("link_open", "image") and target:
                    page.links.append((token.map[0] + 1, str(target)))
        elif token.type == "fence":
            start = token.map[0] + 1
            info = token.info.strip().split(" ")[0]
            if info != "console":
                if info in SHELL_INFO:
                    page.stray_commands.append((start, f"a ```{info} block: write commands in ```console"))
                if info != "markdown":  # an example of a page, not commands to run
                    page.stray_commands.extend((start + 1 + offset, line) for offset, line in
                                               enumerate(token.content.splitlines()) if line.startswith("$ "))
                continue
            before = tokens[index - 1] if index and tokens[index - 1].type == "html_block" else None
            mark = before.content if before is not None else ""
            skip = NOT_RUN.search(mark)
            page.blocks.append(Block(start, info, _commands(token.content, start + 1),
                                     skip.group("reason") if skip else None, bool(FAILS.search(mark))))
    return page


def _commands(content: str, first_line: int) -> list[Command]:
    commands: list[Command] = []
    continuing = False
    for offset, line in enumerate(content.splitlines()):
        if continuing:
            commands[-1].text += "\n" + line
            continuing = line.endswith("\\")
        elif line.startswith("$ "):
            commands.append(Command(line[2:], [], first_line + offset))
            continuing = line.endswith("\\")
        elif line.strip() and commands:
            commands[-1].expected.append(line)
    return commands


def line_pattern(expected: str) -> re.Pattern:
    """An expected line as a pattern for a whole output line: `…` matches anything there, and any run of
    spaces matches any run (tables are padded to their widest cell)."""
    parts = [r"\s+".join(map(re.escape, piece.split())) for piece in expected.strip().split("…")]
    return re.compile(".*".join(parts))


def missing_lines(expected: list[str], output: str) -> list[str]:
    """The expected lines not found in `output`, each after the previous one's match; a lone `…` is no line."""
    lines = [line.strip() for line in output.splitlines()]
    position, missing = 0, []
    for wanted in expected:
        if wanted.strip() == "…":  # marks lines left out, which any subsequence leaves out anyway
            continue
        pattern = line_pattern(wanted)
        found = next((at for at in range(position, len(lines)) if pattern.fullmatch(lines[at])), None)
        if found is None:
            missing.append(wanted)
        else:
            position = found + 1
    return missing


# Each command runs in its own bash, in the folder the previous one ended in. `make` takes the venv stamp as
# made, as workspace.make does: a copy has no set-up of its own, and this interpreter has every requirement.
SCRIPT = """make() {{ command make -o .venv/.installed "$@"; }}
{command}
status=$?
pwd > "$MANUAL_CWD"
exit $status
"""


@dataclass
class Session:
    """One page's commands in one copy of the project: the folder carries over, and the experiments made."""
    cwd: Path
    experiments: list[str] = field(default_factory=list)

    def fill(self, text: str) -> str:
        def name(match: re.Match) -> str:
            index = ord(match.group(1)[-1]) - ord("a")
            if index >= len(self.experiments):
                raise AssertionError(f"{match.group(0)}: the page's commands made only {len(self.experiments)} "
                                     f"experiment(s) so far: {self.experiments}")
            return self.experiments[index]
        return PLACEHOLDER.sub(name, text)

    def run(self, command: str, cwd_file: Path) -> subprocess.CompletedProcess:
        """Run `command` with its placeholders filled in; stdout holds stdout and stderr as a terminal shows them."""
        result = subprocess.run(
            ["bash", "-c", SCRIPT.format(command=self.fill(command))], cwd=self.cwd, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT_S,
            env=environment(COLUMNS=COLUMNS, MANUAL_CWD=str(cwd_file), GIT_AUTHOR_NAME="Docs Tests",
                            GIT_COMMITTER_NAME="Docs Tests", GIT_AUTHOR_EMAIL="docs@example.invalid",
                            GIT_COMMITTER_EMAIL="docs@example.invalid"),
        )
        if cwd_file.exists():
            self.cwd = Path(cwd_file.read_text().strip())
        output = result.stdout
        for ran, queued in re.findall(r"Ran experiment\(s\): (.*)|Queued experiment '([^']+)'", output):
            for name in [*ran.split(","), queued]:
                if name.strip() and name.strip() not in self.experiments:
                    self.experiments.append(name.strip())
        return result
