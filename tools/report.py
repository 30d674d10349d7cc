"""`make report`: report.md for a pull request: params and metrics against a base revision, and the plots of
both side by side."""

import argparse
import json
from pathlib import Path

import dvc.api
from dvc.exceptions import DvcException

from pipeline.errors import PipelineError, run_stage
from pipeline.files import (
    PLOT_COEFFICIENTS, PLOT_DATA, PLOT_FIT, PLOT_LOSS, PLOT_PARAMETERS, PLOT_RESIDUALS, atomic_output,
)
from tools.commands import DVC, run

REPORT = Path("report.md")
PLOTS = (PLOT_DATA, PLOT_LOSS, PLOT_FIT, PLOT_PARAMETERS, PLOT_RESIDUALS, PLOT_COEFFICIENTS)
# The base's plots, read from DVC's cache, are written here (git-ignored) for report.md to show.
BASE_PLOTS = Path("report")
# Digits after the decimal point in the metrics table. dvc rounds to 5 by default, which shows a gap to least
# squares of 5e-7 (float32 training at its best) as 0.0; with 8 it reads 5.3e-07, and a float32 coefficient
# near 1 keeps all its digits.
PRECISION = 8


def table_or(table: str, nothing: str) -> str:
    """A Markdown table dvc printed, or `nothing` where it has only its header and separator rows."""
    rows = [line for line in table.splitlines() if line.startswith("|")]
    return "\n".join(rows) if len(rows) > 2 else nothing


def report(base: str, base_commit: str, params_diff: str, metrics_diff: str,
           base_plots: dict[Path, Path | None]) -> str:
    """The report's Markdown, from the tables `dvc params diff --md` and `dvc metrics diff --md` print, and
    each plot of the base (where DVC's cache has it) beside the workspace's."""
    return "\n".join([
        "# Experiment report",
        "",
        f"This workspace compared with `{base}` ({base_commit[:7]}) by `dvc params diff` and `dvc metrics diff`.",
        "",
        "## Params",
        "",
        table_or(params_diff, f"No param differs from `{base}`."),
        "",
        "## Metrics",
        "",
        table_or(metrics_diff, f"No metric differs from `{base}`."),
        "",
        "## Plots",
        "",
        "For local viewing: these are the workspace's plots, which DVC caches and git ignores, and the base's,",
        f"read from DVC's cache into `{BASE_PLOTS}/`, so the links resolve beside this file in the repository only.",
        "To share them, attach the PNGs to the pull request.",
        "",
        f"| `{base}` ({base_commit[:7]}) | workspace |",
        "|---|---|",
        *(f"| {side(base_plots[path], base)} | ![{path}]({path}) |" for path in PLOTS),
        "",
    ])


def side(path: Path | None, base: str) -> str:
    """The base's image, or why there is none."""
    if path is None:
        return f"not in `{base}`, or not in DVC's cache (`dvc pull`)"
    return f"![{base}: {path.relative_to(BASE_PLOTS / 'base')}]({path.as_posix()})"


def fetch_base_plots(root: Path, base_commit: str) -> dict[Path, Path | None]:
    """Each plot as the base revision has it, from DVC's cache, under BASE_PLOTS/base/; None where the base
    has no such plot (an older pipeline) or the cache lacks it."""
    found: dict[Path, Path | None] = {}
    for path in PLOTS:
        try:
            content = dvc.api.read(path.as_posix(), repo=str(root), rev=base_commit, mode="rb")
        except (DvcException, FileNotFoundError):
            found[path] = None
            continue
        target = BASE_PLOTS / "base" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(root / target) as temporary:
            temporary.write_bytes(content)
        found[path] = target
    return found


def commit_of(base: str, root: Path) -> str:
    """The commit of a branch, tag, commit or DVC experiment (DVC keeps those under refs/exps/)."""
    try:
        return run(["git", "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"], root).strip()
    except PipelineError:
        pass
    experiments = run(["git", "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps/"], root).splitlines()
    found = [line.split()[1] for line in experiments if line.split()[0].rsplit("/", 1)[-1] == base]
    if len(found) != 1:
        raise PipelineError(f"BASE = {base!r}: not a commit or experiment here: expected a branch, tag, commit or "
                            "experiment name (`dvc exp show`) to compare with")
    return found[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base", nargs="?", default="main", help="the git revision or experiment to compare with (default: main)")
    base = parser.parse_args().base
    root = Path.cwd()  # make runs every target from the project root
    base_commit = commit_of(base, root)
    # A report of outputs that params.yaml and the code no longer produce would compare the wrong thing.
    stale = json.loads(run([*DVC, "status", "--json"], root))
    if stale:
        raise PipelineError(
            f"dvc status lists changes in {', '.join(stale)}: expected a reproduced workspace (run `make repro` first)"
        )
    params_diff = run([*DVC, "params", "diff", base, "--md"], root)
    metrics_diff = run([*DVC, "metrics", "diff", base, "--md", "--precision", str(PRECISION)], root)
    base_plots = fetch_base_plots(root, base_commit)
    REPORT.write_text(report(base, base_commit, params_diff, metrics_diff, base_plots), encoding="utf-8")
    print(f"wrote {REPORT}: params and metrics against {base} ({base_commit[:7]}), and {len(PLOTS)} plots beside "
          f"the base's {sum(path is not None for path in base_plots.values())}")


if __name__ == "__main__":
    run_stage(main)
