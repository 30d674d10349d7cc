"""tools/bytecode.py: set-up writes the stages' bytecode, and Python reads it where it may not write its own."""

import os
import re
import shutil
import subprocess
import sys

from tools.bytecode import write_bytecode
from tools.project import stage_names
from workspace import copy_project

# python -v names each module's code: from its cache (".pyc") or compiled from its source (".py").
CODE_FROM = re.compile(r"^# code object from '?(\S+?)'?$", re.MULTILINE)


def code_sources(project, stage: str) -> dict[str, str]:
    """Each pipeline module a stage imports → where Python took its code, in a process that may not write a cache."""
    result = subprocess.run([sys.executable, "-v", "-c", f"import pipeline.{stage}"], cwd=project,
                            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, capture_output=True, text=True,
                            check=True)
    found = {}
    for path in CODE_FROM.findall(result.stderr):
        if f"{os.sep}pipeline{os.sep}" in path:
            found[os.path.basename(path).split(".")[0]] = path.rsplit(".", 1)[-1]
    return found


def test_every_stage_reads_its_modules_from_the_cache_set_up_writes(tmp_path):
    project = copy_project(tmp_path / "project", with_git=False)
    shutil.rmtree(project / "pipeline" / "__pycache__", ignore_errors=True)
    before = code_sources(project, "train")
    assert before and set(before.values()) == {"py"}, before  # no cache: compiled from source, every time

    assert write_bytecode(project)
    for stage in stage_names(project):
        sources = code_sources(project, stage)
        assert stage in sources and set(sources.values()) == {"pyc"}, (stage, sources)


def test_an_edited_module_is_compiled_from_its_source_and_set_up_refreshes_it(tmp_path):
    project = copy_project(tmp_path / "project", with_git=False)
    assert write_bytecode(project)
    module = project / "pipeline" / "errors.py"
    module.write_text(module.read_text() + "\n# edited\n")
    os.utime(module, ns=(module.stat().st_atime_ns, module.stat().st_mtime_ns + 2_000_000_000))
    assert code_sources(project, "synthesize")["errors"] == "py"  # the stale cache passed over
    assert write_bytecode(project)
    assert code_sources(project, "synthesize")["errors"] == "pyc"


def test_a_syntax_error_fails_set_up(tmp_path):
    project = copy_project(tmp_path / "project", with_git=False)
    (project / "pipeline" / "broken.py").write_text("def (:\n")
    assert not write_bytecode(project)
