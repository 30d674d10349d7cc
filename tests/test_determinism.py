"""Same code and params, same bytes: across runs, thread counts, and a fresh clone's dvc.lock."""

import json

import pytest

from workspace import ALL_OUTS, ROOT, dvc, read_outs, stage


def test_the_committed_dvc_lock_is_what_a_fresh_repro_writes(reproduced_template):
    assert (reproduced_template / "dvc.lock").read_bytes() == (ROOT / "dvc.lock").read_bytes()


@pytest.mark.parametrize("threads", ["1", "2"])
def test_every_output_is_byte_identical_with_one_or_two_threads(reproduced, threads):
    before = read_outs(reproduced)
    dvc(reproduced, "repro", "--force", OMP_NUM_THREADS=threads)
    after = read_outs(reproduced)
    assert [path for path in ALL_OUTS if after[path] != before[path]] == []


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
