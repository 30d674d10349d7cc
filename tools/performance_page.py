"""docs/performance.md, written from the figures `make bench` leaves in bench/results/*.json (bench.common.record).

Run from the repository root: `python -m tools.performance_page` (`make bench` runs it last).
"""

import re
from pathlib import Path

from pipeline.files import atomic_output, read_json
from tools.project import ROOT

RESULTS = ROOT / "bench" / "results"
PAGE = ROOT / "docs" / "performance.md"
# The page's sections by the result's name up to its first "-", sizes growing; others follow by name.
ORDER = ("everyday", "repro_overhead", "large_dataset", "alternatives", "training_throughput", "training_scaling",
         "user_csv", "wide_table")  # as make bench runs them

HEADER = """# Performance

<!-- Written by `python -m tools.performance_page` from bench/results/*.json; edit those (run `make bench`), not this page. -->

How fast the pipeline runs and how much memory it takes, as the benchmarks in `bench/` measured it. Each
section says the machine, the date and the command; figures from a busy or a different machine differ.
Tests never time anything: these figures come from `make bench` alone. Each section ends with the machine's
load average: above its number of cores, other work shared the machine and the times are longer than its own.

Every figure here is from a CPU. No GPU was lent to measure a full-batch epoch at 10^8 points against the
GPU's memory bandwidth (its goal: at least 25% of it), so there is no GPU figure yet.

<!-- not run: takes about an hour -->

```console
$ make bench
```

`make bench` runs every benchmark, each writing its figures to `bench/results/`, then writes this page from
them. One benchmark alone, then the page:

```console
$ python -m tools.performance_page
wrote docs/performance.md from … results
```
"""


def _order(path: Path) -> tuple[int, int, str]:
    kind, _, size = path.stem.partition("-")
    rank = ORDER.index(kind) if kind in ORDER else len(ORDER)
    return rank, int(size) if size.isdigit() else 0, path.stem


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def section(result: dict) -> str:
    """One benchmark run: its title, where, when and how it ran, its table and its notes."""
    header, *rows = result["table"]
    lines = [
        f"## {result['title']}",
        "",
        f"Measured {result['date']} by `{result['command']}` on {result['machine']}.",
        "",
        result["about"],
        "",
        "| " + " | ".join(map(_cell, header)) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(map(_cell, row)) + " |" for row in rows),
    ]
    if result["notes"]:
        lines += ["", *(f"- {note}" for note in result["notes"])]
    return "\n".join(lines) + "\n"


def bench_commands(makefile: Path = ROOT / "Makefile") -> list[str]:
    """The benchmark commands `make bench` runs, as its recipe spells them."""
    return re.findall(r"^\t(python -m bench\.[^\n]*?)\s*$", makefile.read_text(encoding="utf-8"), re.MULTILINE)


def render(results: Path = RESULTS, commands: list[str] | None = None) -> str:
    """The whole page, from every result in `results`; then the commands of `make bench` that left none."""
    results_read = [read_json(path) for path in sorted(results.glob("*.json"), key=_order)]
    sections = [section(result) for result in results_read]
    if not sections:
        sections = ["No figures yet: run `make bench`.\n"]
    recorded = {result["command"] for result in results_read}
    missing = [command for command in (bench_commands() if commands is None else commands) if command not in recorded]
    if missing:
        sections.append("## Not measured here yet\n\n" + "".join(f"- `{command}`\n" for command in missing))
    return "\n".join([HEADER, *sections])


def main() -> None:
    with atomic_output(PAGE) as temporary:
        temporary.write_text(render(), encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)} from {len(list(RESULTS.glob('*.json')))} results")


if __name__ == "__main__":
    main()
