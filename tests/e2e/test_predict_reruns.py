"""predict with the real dvc CLI: a new version of its rows or a change of predict.* reruns predict alone."""

import json

import numpy as np
import pyarrow
import pyarrow.csv
import pyarrow.parquet
import pytest

from workspace import commit, dvc, ran, read_outs, set_param, set_params

NEW_ROWS = "data/new_points.csv"


def changed_stages(project) -> set[str]:
    """The stages `dvc status` says have changed."""
    return set(json.loads(dvc(project, "status", "--json").stdout))


@pytest.mark.parametrize("key, value", [("predict.level", 0.5), ("predict.output", "data/predictions.csv")])
def test_changing_a_predict_key_reruns_predict_alone(reproduced, key, value):
    before = read_outs(reproduced, ["models/model.safetensors", "metrics/metrics.json"])
    set_param(reproduced, key, value)
    assert changed_stages(reproduced) == {"predict"}
    assert ran(dvc(reproduced, "repro").stdout) == {"predict"}
    assert read_outs(reproduced, list(before)) == before


def test_a_csv_output_holds_the_numbers_of_the_parquet_output(reproduced):
    parquet = pyarrow.parquet.read_table(reproduced / "data/predictions.parquet")
    set_param(reproduced, "predict.output", "data/predictions.csv")
    dvc(reproduced, "repro")
    csv = pyarrow.csv.read_csv(reproduced / "data/predictions.csv")
    assert csv.column_names == parquet.column_names == ["x", "y", "split", "prediction", "lower", "upper", "se_fit",
                                                        "residual"]
    split = parquet.column_names.index("split")  # Parquet keeps it as a dictionary of its labels, CSV as text
    parquet = parquet.set_column(split, "split", parquet.column("split").cast(pyarrow.string()))
    assert csv.equals(parquet)  # the shortest text that reads back as the same double


def test_rows_of_yours_tracked_by_dvc_rerun_predict_alone_when_dvc_add_records_a_new_version(reproduced):
    (reproduced / NEW_ROWS).write_text("x\n-1.5\n0\n2.25\n")
    dvc(reproduced, "add", NEW_ROWS)
    set_params(reproduced, {"predict.rows": "new", "predict.source": NEW_ROWS, "predict.output": "data/new_predictions.csv"})
    assert ran(dvc(reproduced, "repro").stdout) == {"predict"}
    commit(reproduced, "new rows")
    first = pyarrow.csv.read_csv(reproduced / "data/new_predictions.csv")
    assert first.column_names == ["x", "prediction", "lower", "upper", "se_fit"]  # no target in the rows: no residual
    assert first.column("x").to_pylist() == [-1.5, 0.0, 2.25]

    (reproduced / NEW_ROWS).write_text("x\n-1.5\n0\n2.25\n10\n")  # one more row
    dvc(reproduced, "add", NEW_ROWS)
    assert changed_stages(reproduced) == {"predict"}
    assert ran(dvc(reproduced, "repro").stdout) == {"predict"}
    second = pyarrow.csv.read_csv(reproduced / "data/new_predictions.csv")
    assert second.slice(0, 3).equals(first)
    upper, lower = (np.array(second.column(name)) for name in ("upper", "lower"))
    assert (upper - lower)[3] > (upper - lower)[:3].max()  # x = 10 lies beyond the training rows' -5…5
