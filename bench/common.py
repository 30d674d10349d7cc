"""What the benchmarks share: a clean clone of the project, its params, its stages, the machine they ran on, and
the file each writes its figures to (bench/results/, which tools/performance_page.py turns into docs/performance.md)."""

import hashlib
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from pipeline.files import write_json
from tools.bytecode import write_bytecode
from tools.commands import environment
from tools.project import ROOT, set_params, stage_names

STAGES = stage_names(ROOT)
RESULTS = ROOT / "bench" / "results"


def clone_head() -> Path:
    """A fresh clone of the committed project in a new temporary folder, with the stages' bytecode that
    `make repro` writes at set-up; the caller removes it."""
    folder = Path(tempfile.mkdtemp(prefix="bench-"))
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(folder / "project")], check=True)
    write_bytecode(folder / "project")
    return folder / "project"


def machine(torch_threads: str | None = None) -> str:
    """CPU, cores, Python, torch and its threads: the figures mean little without them.

    torch_threads: what the benchmark itself sets; by default, the number a new process starts with.
    """
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        cpu = names[0] if names else cpu
    if torch_threads is None:
        torch_threads = os.environ.get("OMP_NUM_THREADS") or f"{os.cpu_count()} (torch's default)"
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} "
            f"{platform.release()}, torch {version('torch')}, torch threads {torch_threads}")


def load_average() -> str:
    """The machine's load over the last 1, 5 and 15 minutes: other work skews the figures."""
    path = Path("/proc/loadavg")
    return " ".join(path.read_text().split()[:3]) if path.exists() else "unknown"


def set_points(project: Path, n_points: int) -> dict:
    """Set synthesize.n_points in the clone's params.yaml; return all params."""
    return set_params(project, {"synthesize.n_points": n_points})


def seconds(command: list[str], cwd: Path, cpu: list[float] | None = None) -> float:
    """Wall seconds of the command; with `cpu`, also appends the CPU seconds of it and all its processes,
    which a busy machine stretches far less than the wall time. A failure shows its stderr and stops the
    benchmark in one line."""
    before = children_cpu()
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=environment(), capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}")
    if cpu is not None:
        cpu.append(children_cpu() - before)
    return elapsed


def md5_seconds(paths: list[Path]) -> float:
    """Hashing each file once, as DVC does (md5, 1 MiB reads): every output after each stage, and a dependency
    new to dvc.lock twice in each stage that reads it (docs/scale.md)."""
    start = time.perf_counter()
    for path in paths:
        digest = hashlib.md5()
        with path.open("rb") as file:
            while block := file.read(1 << 20):
                digest.update(block)
    return time.perf_counter() - start


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_stage(project: Path, name: str) -> tuple[float, int]:
    """Wall seconds and peak resident bytes of `python -m pipeline.<name>` (this process alone).

    subprocess starts it with vfork, after which Linux reports as its peak at least the caller's own: keep
    the caller small (big arrays in another process) for the figure to be the stage's.
    """
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", f"pipeline.{name}"], cwd=project, env=environment(),
                               stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)  # the rusage of this one child, not of all children so far
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"pipeline.{name} exited {process.returncode}")
    return time.perf_counter() - start, usage.ru_maxrss * 1024  # Linux reports ru_maxrss in KiB


def record(name: str, title: str, about: str, table: list[list[str]], notes: list[str] = (), *,
           machine_line: str | None = None) -> Path:
    """Write one run's figures to bench/results/<name>.json, for tools/performance_page.py.

    table: a header row, then one row per figure, as the page shows them; notes: lines below the table (targets
    met or not, load averages). The command, the machine and the date are added here.
    """
    module = sys.modules["__main__"].__spec__.name
    path = RESULTS / f"{name}.json"
    write_json(path, {
        "title": title,
        "about": about,
        "command": " ".join(["python -m", module, *sys.argv[1:]]),
        "machine": machine_line or machine(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "table": table,
        "notes": list(notes),
    })
    print(f"wrote {path.relative_to(ROOT)}")
    return path
