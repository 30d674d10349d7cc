"""Saving the pictures: a second process draws half of them, with the bytes one process would write."""

import os

import pytest
from matplotlib.figure import Figure

from pipeline.drawing import save, save_all
from pipeline.errors import PipelineError


def figures(n: int) -> dict:
    made = {}
    for index in range(n):
        figure = Figure()
        figure.subplots().plot([0, 1, 2], [index, 2 * index + 1, 0])
        made[f"figure{index}.png"] = figure
    return made


@pytest.mark.skipif(not hasattr(os, "fork") or len(os.sched_getaffinity(0)) < 2, reason="draws in one process")
def test_figures_saved_by_two_processes_have_the_bytes_of_one(tmp_path):
    drawn = figures(5)
    save_all({tmp_path / "both" / name: figure for name, figure in drawn.items()}, dpi=50)
    for name, figure in drawn.items():
        save(tmp_path / "one" / name, figure, dpi=50)
        assert (tmp_path / "both" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()


@pytest.mark.skipif(not hasattr(os, "fork") or len(os.sched_getaffinity(0)) < 2, reason="draws in one process")
def test_a_picture_the_second_process_cannot_write_stops_the_stage_with_one_line(tmp_path):
    (tmp_path / "taken").write_text("a file where a folder should be")
    drawn = figures(2)
    with pytest.raises(PipelineError, match=r"^the process drawing .*taken/figure0.png exited 1: run the stage again$"):
        save_all({tmp_path / "taken" / "figure0.png": drawn["figure0.png"], tmp_path / "figure1.png": drawn["figure1.png"]},
                 dpi=50)
    assert (tmp_path / "figure1.png").is_file()
