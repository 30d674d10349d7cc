"""docs/performance.md is written by tools/performance_page.py from the figures the benchmarks record, never by hand."""

import json
from pathlib import Path

from bench.common import RESULTS
from tools.performance_page import PAGE, bench_commands, render


def test_the_performance_page_is_what_the_recorded_bench_figures_make():
    assert PAGE.read_text(encoding="utf-8") == render(RESULTS), (
        "docs/performance.md differs from the bench results: run `python -m tools.performance_page`"
    )


def test_each_recorded_run_becomes_a_section_with_its_machine_date_and_command(tmp_path: Path):
    result = {
        "title": "Stage overhead",
        "about": "What was measured.",
        "command": "python -m bench.repro_overhead --repeats 5",
        "machine": "AMD EPYC, 2 cores",
        "date": "2026-11-29 21:00 UTC",
        "table": [["", "time"], ["`dvc repro -f`", "6.40 s"], ["a | b", "1 s"]],
        "notes": ["Load average 0.3 before."],
    }
    (tmp_path / "repro_overhead.json").write_text(json.dumps(result), encoding="utf-8")
    page = render(tmp_path)
    assert "## Stage overhead\n\nMeasured 2026-11-29 21:00 UTC by `python -m bench.repro_overhead --repeats 5` " \
           "on AMD EPYC, 2 cores.\n\nWhat was measured.\n" in page
    assert "|  | time |\n|---|---|\n| `dvc repro -f` | 6.40 s |\n| a \\| b | 1 s |\n\n- Load average 0.3 before.\n" in page


def test_sections_follow_make_bench_and_sizes_grow(tmp_path: Path):
    for name in ("user_csv", "large_dataset-100000000", "large_dataset-10000000", "repro_overhead", "zeta"):
        (tmp_path / f"{name}.json").write_text(json.dumps({
            "title": name, "about": "", "command": "", "machine": "", "date": "", "table": [["a"]], "notes": [],
        }), encoding="utf-8")
    titles = [line[3:] for line in render(tmp_path, []).splitlines() if line.startswith("## ")]
    assert titles == ["repro_overhead", "large_dataset-10000000", "large_dataset-100000000", "user_csv", "zeta"]


def test_without_results_the_page_says_how_to_make_them(tmp_path: Path):
    assert "No figures yet: run `make bench`." in render(tmp_path)


def test_the_commands_of_make_bench_without_figures_are_listed(tmp_path: Path):
    (tmp_path / "repro_overhead.json").write_text(json.dumps({
        "title": "t", "about": "", "command": "python -m bench.repro_overhead", "machine": "", "date": "",
        "table": [["a"]], "notes": [],
    }), encoding="utf-8")
    page = render(tmp_path, ["python -m bench.repro_overhead", "python -m bench.large_dataset --points 100000000"])
    assert page.endswith("## Not measured here yet\n\n- `python -m bench.large_dataset --points 100000000`\n")
    assert "python -m bench.training_scaling" in bench_commands()  # read from the Makefile's bench recipe
