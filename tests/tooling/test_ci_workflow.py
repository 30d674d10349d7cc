"""The GitHub Actions workflow users can copy: valid for GitHub, and it runs what the README says."""

import re
import sys

from ruamel.yaml import YAML

from workspace import ROOT, run

WORKFLOW = ROOT / ".github" / "workflows" / "reproducibility.yml"


def check_against_the_github_workflow_schema(path):
    # The schema ships inside check-jsonschema, so this works offline.
    return run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
               ROOT, check=False)


def test_the_workflow_is_valid_for_github_actions():
    result = check_against_the_github_workflow_schema(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_refuses_a_job_without_runs_on(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:"))
    result = check_against_the_github_workflow_schema(broken)
    assert result.returncode != 0
    assert "'runs-on' is a required property" in result.stdout


def test_on_every_push_and_pull_request_it_runs_make_test_then_make_repro_check_with_python_3_11():
    workflow = YAML(typ="safe").load(WORKFLOW)  # YAML 1.2: `on` is a key, not true
    assert set(workflow["on"]) == {"push", "pull_request"}
    (job,) = workflow["jobs"].values()
    assert job["container"] == "python:3.11-bookworm"  # Debian 12, with Python 3.11 as `python`
    commands = [step["run"].split()[:2] for step in job["steps"] if "run" in step]
    assert commands[-2:] == [["make", "test"], ["make", "repro-check"]]


def test_before_the_tests_apt_installs_chromium_and_sshd_so_that_no_test_skips():
    # tests/e2e/test_plots_offline.py skips without Debian's `chromium` on PATH, tests/e2e/test_ssh_remote.py
    # without /usr/sbin/sshd (and /run/sshd, which it creates when it runs as root, as a container's steps do).
    (job,) = YAML(typ="safe").load(WORKFLOW)["jobs"].values()
    (install, *_) = [step["run"] for step in job["steps"] if "run" in step]
    assert re.search(r"(?m)^DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium openssh-server$", install)
