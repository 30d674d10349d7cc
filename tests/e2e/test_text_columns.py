"""A table with a text column, fitted through every stage with the real dvc CLI: terms set with `dvc exp run -S`
in the quoting Hydra's grammar accepts, and level names with commas and quotes kept intact in every output."""

import csv
import io
import json
import shutil
from pathlib import Path

from workspace import commit, dvc

RENTS = "data/raw/rents.csv"
# Hydra's grammar refuses [region,log(area)] unquoted: each term in quotes, the whole value in double quotes.
SET_PARAMS = (f"data.source={RENTS}", "data.features=['log(area)','C(year)',region]", "data.target=rent",
              f"predict.source={RENTS}", "predict.output=data/predictions.csv")
NAMES = {'region[T.U.S. "West"]', "region[T.east]", "region[T.north]", "C(year)[T.2000]", "C(year)[T.2010]",
         "log(area)"}


def test_a_text_column_runs_through_every_stage_with_its_level_names_intact(reproduced_template, tmp_path):
    project = Path(shutil.copytree(reproduced_template, tmp_path / "project", symlinks=True))
    (project / RENTS).parent.mkdir(parents=True)
    shutil.copy2(project / "examples" / "rents.csv", project / RENTS)
    dvc(project, "add", RENTS)
    commit(project, "rents, tracked by DVC")
    dvc(project, "exp", "run", *(part for value in SET_PARAMS for part in ("--set-param", value)))
    metrics = json.loads((project / "metrics" / "metrics.json").read_text())
    assert set(metrics["ols"]) == NAMES | {"intercept"} and set(metrics["inference"]) == NAMES | {"intercept"}
    header = next(csv.reader(io.StringIO((project / "metrics" / "history.csv").read_text())))
    assert NAMES <= set(header)
    shown = json.loads(dvc(project, "metrics", "show", "--json").stdout)
    assert 'region[T.U.S. "West"]' in shown[""]["data"]["metrics/metrics.json"]["data"]["ols"]
    predictions = list(csv.DictReader(io.StringIO((project / "data" / "predictions.csv").read_text())))
    assert len(predictions) == 60 and {"area", "year", "region", "rent", "prediction"} <= set(predictions[0])
    # The text column is written as the user's level names, in the rows' order (predict.rows: fitted).
    with (project / "examples" / "rents.csv").open(newline="") as rents:
        assert [row["region"] for row in predictions] == [row["region"] for row in csv.DictReader(rents)]
