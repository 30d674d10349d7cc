"""Same code and params, same bytes: across runs, thread counts, and a fresh clone's dvc.lock."""

import json

import pytest

from workspace import ROOT, stage


def test_the_committed_dvc_lock_is_what_a_fresh_repro_writes(reproduced_template):
    assert (reproduced_template / "dvc.lock").read_bytes() == (ROOT / "dvc.lock").read_bytes()


def test_the_default_params_learn_the_least_squares_line(reproduced_template):
    metrics = json.loads((reproduced_template / "metrics" / "metrics.json").read_text())
    assert abs(metrics["m_learnt"] - metrics["m_ols"]) < 1e-4
    assert abs(metrics["c_learnt"] - metrics["c_ols"]) < 1e-4


@pytest.mark.parametrize("setting", [{"OPENBLAS_CORETYPE": "Nehalem"}, {"ATEN_CPU_CAPABILITY": "default"}])
def test_evaluate_writes_the_same_metrics_without_vector_instructions(reproduced, setting):
    # np.dot and np.sum add in an order that depends on the CPU's kernels; evaluate's sums must not.
    before = (reproduced / "metrics" / "metrics.json").read_bytes()
    stage(reproduced, "evaluate", check=True, **setting)
    assert (reproduced / "metrics" / "metrics.json").read_bytes() == before
