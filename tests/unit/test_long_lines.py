"""A CSV header wider than pyarrow's block, or a row longer than it, is read: the block grows, up to
schema.MAX_LINE_BYTES; past it, one line names the limit."""

import numpy as np
import pytest

import pipeline.schema
from pipeline.dataset import gather, open_rows_to_predict, read_table
from pipeline.errors import PipelineError
from pipeline.schema import column_types

BLOCK = 1 << 20  # pyarrow's default block


def wide_csv(path, rows: list[list[str]]) -> None:
    """6,000 columns of 190-character names (a header of 1.2 MB, beyond the first block), then x and y."""
    names = [f"{index:06d}" + "n" * 184 for index in range(6000)] + ["x", "y"]
    lines = [",".join(names)] + [",".join(["0"] * 6000 + row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    assert len(lines[0]) > BLOCK


def test_the_columns_of_a_header_wider_than_the_block_are_found_at_its_end(tmp_path):
    path = tmp_path / "wide.csv"
    wide_csv(path, [["1", "2"], ["2", "5"]])
    table = read_table(path, ["x"], "y")
    assert table.features.tolist() == [[1.0], [2.0]] and table.target.tolist() == [2.0, 5.0]
    names, _ = column_types(path)
    assert names[-2:] == ["x", "y"] and len(names) == 6002


def test_a_wide_header_with_one_row_to_predict_has_a_row(tmp_path):
    path = tmp_path / "wide.csv"
    wide_csv(path, [["1", "2"]])
    rows, has_target = open_rows_to_predict(path, ["x"], "y", "error")[:2]
    assert has_target and gather(rows).target.tolist() == [2.0]


def long_line_csv(path, length: int) -> None:
    path.write_text("x,y,note\n1,2,a\n2,3," + "z" * length + "\n3,5,b\n")


def test_a_row_longer_than_the_block_is_read(tmp_path):
    path = tmp_path / "long.csv"
    long_line_csv(path, 5 * BLOCK)
    table = read_table(path, ["x"], "y")
    assert np.array_equal(table.target, [2.0, 3.0, 5.0])


def test_a_line_longer_than_the_limit_is_one_line_naming_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline.schema, "MAX_LINE_BYTES", 2 * BLOCK)  # so that the test writes 7 MB, not 3 GB
    path = tmp_path / "long.csv"
    long_line_csv(path, 7 * BLOCK)  # pyarrow reads a line over two blocks, not over three
    with pytest.raises(PipelineError, match=rf"^{path}: a line longer than 2,097,152 bytes, the longest line this "
                                            r"project reads \(schema\.MAX_LINE_BYTES\): expected shorter lines$"):
        read_table(path, ["x"], "y")


@pytest.mark.parametrize("ending", ["\n", ""])
def test_a_wide_header_without_rows_says_it_has_no_rows(tmp_path, ending):
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"{index:06d}" + "n" * 184 for index in range(6000)) + ",x,y" + ending)
    with pytest.raises(PipelineError, match=rf"^{path}: has no rows: expected a header row, then at least one row"):
        open_rows_to_predict(path, ["x"], "y", "error")[:2]
