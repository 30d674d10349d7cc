"""Inference and curves through the real dvc CLI: evaluate's inference.* and the power columns of
data.degree land in metrics.json, and `dvc metrics diff` compares them across two experiments."""

import json

from workspace import dvc, error_line, set_params, stage


def test_metrics_diff_of_two_experiments_shows_the_inference_of_each(reproduced):
    dvc(reproduced, "exp", "run", "--name", "level90", "--set-param", "evaluate.level=0.9")
    dvc(reproduced, "exp", "run", "--name", "cubic", "--set-param", "data.degree=3")
    metrics = json.loads((reproduced / "metrics" / "metrics.json").read_text())  # the last experiment's
    assert set(metrics["ols"]) == set(metrics["learnt"]) == {"x", "x^2", "x^3", "intercept"}
    assert set(metrics["inference"]) == {"x", "x^2", "x^3", "intercept"}
    # The points were drawn on a line: the curve's extra powers are indistinguishable from zero.
    for power in ("x^2", "x^3"):
        row = metrics["inference"][power]
        assert row["ci_low"] < 0 < row["ci_high"] and row["p"] > 0.001
    history = (reproduced / "metrics" / "history.csv").read_text().splitlines()[0].split(",")
    assert {"x", "x^2", "x^3", "intercept"} <= set(history)

    diff = json.loads(dvc(reproduced, "metrics", "diff", "level90", "cubic", "--json").stdout)["metrics/metrics.json"]
    assert diff["inference.x^2.se"]["old"] is None and diff["inference.x^2.se"]["new"] > 0
    assert diff["inference.x.ci_low"]["old"] != diff["inference.x.ci_low"]["new"]
    assert diff["df_resid"] == {"old": 798, "new": 796, "diff": -2}
    shown = dvc(reproduced, "metrics", "diff", "level90", "cubic").stdout
    assert "inference.x^2.se" in shown and "coefficient_gap" in shown


def test_a_table_with_as_many_rows_as_coefficients_gets_one_line(reproduced):
    (reproduced / "data" / "two.csv").write_text("x,y\n1,2\n3,5\n")
    set_params(reproduced, {"data.source": "data/two.csv", "data.test_fraction": 0.0})
    before = (reproduced / "models" / "model.safetensors").read_bytes()
    result = stage(reproduced, "train")
    assert error_line(result) == ("error: data/two.csv: 2 training rows (no degrees of freedom left for a "
                                  "standard error): expected at least 3 (one more than the 2 coefficients); "
                                  "add rows or lower data.test_fraction")
    assert (reproduced / "models" / "model.safetensors").read_bytes() == before  # nothing written
