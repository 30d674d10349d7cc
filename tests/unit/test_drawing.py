"""Saving the pictures: a second process makes and draws half of them, with the bytes one process would write."""

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
    save_all({tmp_path / "both" / name: lambda figure=figure: figure for name, figure in drawn.items()}, dpi=50)
    for name, figure in drawn.items():
        save(tmp_path / "one" / name, figure, dpi=50)
        assert (tmp_path / "both" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()


@pytest.mark.skipif(not hasattr(os, "fork") or len(os.sched_getaffinity(0)) < 2, reason="draws in one process")
def test_a_picture_the_second_process_cannot_write_stops_the_stage_with_one_line(tmp_path):
    (tmp_path / "taken").write_text("a file where a folder should be")
    drawn = figures(2)
    with pytest.raises(PipelineError, match=r"^the process drawing .*taken/figure0.png exited 1: run the stage again$"):
        save_all({tmp_path / "taken" / "figure0.png": lambda: drawn["figure0.png"],
                  tmp_path / "figure1.png": lambda: drawn["figure1.png"]}, dpi=50)
    assert (tmp_path / "figure1.png").is_file()


@pytest.mark.skipif(not hasattr(os, "fork") or len(os.sched_getaffinity(0)) < 2, reason="draws in one process")
def test_each_figure_is_made_by_the_process_that_writes_it(tmp_path):
    made_by = tmp_path / "made_by"
    made_by.mkdir()

    def maker(index: int):
        def make() -> Figure:
            (made_by / str(index)).write_text(str(os.getpid()))
            return figures(index + 1)[f"figure{index}.png"]
        return make

    save_all({tmp_path / f"figure{index}.png": maker(index) for index in range(4)}, dpi=50)
    makers = [int((made_by / str(index)).read_text()) for index in range(4)]
    assert makers[1] == makers[3] == os.getpid() != makers[0] == makers[2]  # every other one: the child
