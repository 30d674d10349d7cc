"""The rules tests/e2e/test_docs.py holds the pages to (docs/writing-docs.md), on pages written here."""

from pathlib import Path

from manual import Session, missing_lines, parse


def page(tmp_path: Path, text: str):
    path = tmp_path / "page.md"
    path.write_text(text, encoding="utf-8")
    return parse(path)


def test_quoted_lines_must_appear_in_order_with_ellipsis_and_any_spacing():
    output = "Path   Param     HEAD\nparams.yaml  train.lr  0.1\nfile:///tmp/x/dvc_plots/index.html\n"
    assert missing_lines(["Path Param HEAD", "file:///…/dvc_plots/index.html"], output) == []
    assert missing_lines(["params.yaml train.lr 0.2"], output) == ["params.yaml train.lr 0.2"]
    assert missing_lines(["file:///…", "Path Param HEAD"], output) == ["Path Param HEAD"]  # out of order
    assert missing_lines(["train.lr 0.1"], output) == ["train.lr 0.1"]  # a whole line, not a part of one
    assert missing_lines(["…", "file:///…/dvc_plots/index.html", "…"], output) == []  # lines left out


def test_a_console_block_is_run_unless_marked_and_says_what_it_prints(tmp_path: Path):
    parsed = page(tmp_path, (
        "```console\n$ dvc exp run \\\n    -S train.lr=0.01\n…\nRan experiment(s): <exp-a>\n$ ls\n```\n\n"
        "<!-- not run: needs the internet -->\n```console\n$ pip download torch\n```\n\n"
        "<!-- fails -->\n```console\n$ false\n```\n"
    ))
    run, skipped, failing = parsed.blocks
    assert [command.text for command in run.commands] == ["dvc exp run \\\n    -S train.lr=0.01", "ls"]
    assert run.commands[0].expected == ["…", "Ran experiment(s): <exp-a>"]
    assert run.skip_reason is None and not run.fails
    assert skipped.skip_reason == "needs the internet"
    assert failing.fails and failing.skip_reason is None
    assert parsed.stray_commands == []


def test_a_command_outside_a_console_block_is_caught(tmp_path: Path):
    parsed = page(tmp_path, "```sh\nmake repro\n```\n\n```text\n$ dvc repro\n```\n\n```markdown\n$ an example\n```\n")
    assert parsed.stray_commands == [(1, "a ```sh block: write commands in ```console"), (6, "$ dvc repro")]


def test_links_and_anchors_are_collected(tmp_path: Path):
    parsed = page(tmp_path, "# Fit your own data\n\n| a | [b](docs/x.md#when-the-file-is-not-right) |\n|---|---|\n")
    assert parsed.links == [(3, "docs/x.md#when-the-file-is-not-right")]
    assert parsed.anchors == {"fit-your-own-data"}


def test_experiment_placeholders_are_filled_in_the_order_the_page_made_them(tmp_path: Path):
    session = Session(tmp_path)
    result = session.run("echo \"Queued experiment 'first-one' for future execution.\"; echo 'Ran experiment(s): "
                         "second-one'", tmp_path / "cwd")
    assert result.returncode == 0
    assert session.experiments == ["first-one", "second-one"]
    assert session.fill("dvc exp diff <exp-a> <exp-b>") == "dvc exp diff first-one second-one"


def test_the_folder_carries_over_from_one_command_to_the_next(tmp_path: Path):
    (tmp_path / "other").mkdir()
    session = Session(tmp_path)
    session.run("cd other", tmp_path / "cwd")
    assert session.run("pwd", tmp_path / "cwd").stdout.strip() == str(tmp_path / "other")
