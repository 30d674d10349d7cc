"""Each stage needs nothing but what dvc.yaml declares, and writes nothing but its declared outs."""

import pytest

from workspace import STAGES, declared, error_line, files_in, isolate, read_outs, run_in_process, stage


@pytest.mark.parametrize("stage_name", STAGES)
def test_a_stage_alone_with_its_declared_deps_writes_exactly_its_declared_outs(reproduced_template, tmp_path,
                                                                               stage_name):
    folder = isolate(reproduced_template, tmp_path, stage_name)
    inputs = files_in(folder)
    # No bytecode caches: only what the stage itself writes may appear.
    result = stage(folder, stage_name, PYTHONDONTWRITEBYTECODE="1")
    assert result.returncode == 0, result.stderr
    outs = declared(stage_name)["outs"]
    assert files_in(folder) - inputs == set(outs)
    # The same bytes as in the whole project: nothing outside the folder changed what the stage computed.
    assert read_outs(folder, outs) == read_outs(reproduced_template, outs)


@pytest.mark.parametrize("stage_name, dep", [
    (stage_name, dep)
    for stage_name in STAGES for dep in declared(stage_name)["deps"] if not dep.startswith("pipeline/")
])
def test_every_declared_data_dep_is_needed_and_its_absence_is_one_line_naming_it(reproduced_template, tmp_path,
                                                                                 stage_name, dep):
    folder = isolate(reproduced_template, tmp_path, stage_name)
    (folder / dep).unlink()
    inputs = files_in(folder)
    line = error_line(run_in_process(folder, stage_name))
    assert line.startswith(f"error: {dep}: not found")
    assert files_in(folder) == inputs
