"""The project is set up the way the README promises: pinned, offline, DVC outputs never committed."""

import configparser
import json
import os
import re

from pipeline.params import TrainParams, load_params
from workspace import ALL_OUTS, LOWER_LR, OUTS, ROOT, dvc, error_line, git, read_outs, stage


def test_every_direct_dependency_is_pinned_exactly_and_torch_is_2_13_0():
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    requirements = [line for line in lines if line and not line.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][A-Za-z0-9.+]*", line) for line in requirements), requirements
    assert "torch==2.13.0" in requirements


def test_dvc_never_phones_home():
    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc" / "config")
    assert config["core"]["analytics"] == "false"
    assert config["core"]["check_update"] == "false"


def test_dvc_writes_each_output_once_and_caches_a_copy_of_its_own(reproduced):
    """cache.type copy (.dvc/config): DVC copies each output into its cache and keeps the file the stage wrote.
    Its default, reflink,copy, removes that file after the stage and links the cache's back, which is a second
    copy of every output where the file system has no reflinks (docs/design.md, Outputs)."""
    log = dvc(reproduced, "repro", "--force", "--verbose", "synthesize").stdout  # DVC's debug lines
    for path in OUTS["synthesize"]:
        removals = [line for line in log.splitlines() if "Removing '" in line and line.endswith(f"/{path}'")]
        assert len(removals) == 1, log  # --force's, before the stage runs; none after it
    # A copy, not a link: editing the output in place leaves the cache's bytes as they were.
    output = reproduced / OUTS["synthesize"][0]
    before = output.read_bytes()
    assert output.stat().st_nlink == 1 and os.access(output, os.W_OK)
    with output.open("r+b") as file:
        file.write(b"edited in place")
    assert "modified" in dvc(reproduced, "status", "synthesize").stdout
    dvc(reproduced, "checkout", "--force", "synthesize")
    assert output.read_bytes() == before


def test_a_params_yaml_nested_too_deep_gets_one_line_from_dvc_and_from_a_stage_never_a_crash(reproduced):
    """YAML is parsed in pure Python. ruamel.yaml's C parser (ruamel.yaml.clib) would be faster, but it recurses
    on the C stack: here both would die of a segmentation fault, without a word (docs/design.md, Outputs)."""
    params = reproduced / "params.yaml"
    params.write_text(params.read_text().replace("  features:\n  - x\n",
                                                 "  features: " + "[" * 100_000 + "]" * 100_000 + "\n"))
    before = read_outs(reproduced)
    repro = dvc(reproduced, "repro", check=False)
    assert repro.returncode == 255, repro  # DVC's own code for an error of its own, not a signal's
    assert "ERROR: unexpected error - maximum recursion depth exceeded" in repro.stderr.splitlines(), repro.stderr
    assert "nests lists or mappings too deep to read" in error_line(stage(reproduced, "evaluate"))
    assert read_outs(reproduced) == before


def test_every_dvc_output_is_git_ignored_and_a_repro_leaves_nothing_to_commit(reproduced):
    git(reproduced, "check-ignore", *ALL_OUTS)  # exits non-zero if any path is not ignored
    assert git(reproduced, "status", "--porcelain") == ""


def test_dvc_metrics_show_lists_the_learnt_true_and_least_squares_line(reproduced):
    shown = json.loads(dvc(reproduced, "metrics", "show", "--json").stdout)
    metrics = shown[""]["data"]["metrics/metrics.json"]["data"]  # "" is the workspace
    assert set(metrics) == {"learnt", "ols", "true", "gap", "converged", "train", "test", "device", "processes",
                            "coefficient_gap", "residual_sd", "df_resid", "r2_adj", "f", "f_p", "condition_number",
                            "inference", "dtype", "epochs_run", "rows_dropped", "rows_unlabeled",
                            "r2", "log_likelihood", "aic", "bic", "n_coefficients", "df_model", "cov_type"}
    for model in ("learnt", "ols", "true"):
        assert set(metrics[model]) == {"x", "intercept"}
    assert set(metrics["train"]) == set(metrics["test"]) == {"mse", "mse_ols", "r2", "n"}
    # The table names each nested metric by its path.
    header = dvc(reproduced, "metrics", "show", "--md").stdout.splitlines()[0]
    columns = {cell.strip() for cell in header.strip().strip("|").split("|")}
    assert {"learnt.x", "learnt.intercept", "ols.x", "ols.intercept", "true.x", "true.intercept", "gap",
            "converged", "train.mse", "test.r2"} <= columns, header


def test_dvc_params_and_metrics_diff_show_a_change_of_lr(reproduced_template, lower_lr):
    default_lr = load_params(TrainParams, reproduced_template / "params.yaml").lr
    params = json.loads(dvc(lower_lr, "params", "diff", "--json").stdout)  # reproduced with LOWER_LR
    change = params["params.yaml"]["train.lr"]
    assert (change["old"], change["new"]) == (default_lr, LOWER_LR)
    metrics = json.loads(dvc(lower_lr, "metrics", "diff", "--json").stdout)
    assert metrics["metrics/metrics.json"]["gap"]["diff"] > 0  # a smaller lr gets less far in as many epochs


def test_dvc_plots_show_renders_the_history_and_the_images(reproduced):
    dvc(reproduced, "plots", "show")
    page = (reproduced / "dvc_plots" / "index.html").read_text()
    for name in ("loss", "test_loss", "coefficients", "intercept"):  # dvc.yaml's interactive plots, drawn by Vega
        assert f"vegaEmbed('#{name}'" in page, name
    for image in ("data", "loss", "fit", "parameters"):
        assert f'id="plots_{image}_png"' in page, image
