"""`make repro-check`: does a fresh clone of HEAD reproduce the committed dvc.lock, and if not, by how much?

Environment variables such as OMP_NUM_THREADS and ATEN_CPU_CAPABILITY pass through to the `dvc repro` it
runs, so that one machine can try the settings of another. Exits 0 only if every output is identical.
"""

import csv
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from ruamel.yaml import YAML, YAMLError
from safetensors import SafetensorError
from safetensors.numpy import load_file

from pipeline.errors import PipelineError, run_stage
from pipeline.params import TrainParams, load_params
from tools.commands import DVC, run

LOCK = "dvc.lock"
# Outputs whose numbers are compared when they differ, so that float noise and a real change look different.
NUMBER_FILES = (".json", ".csv", ".safetensors")
# What could decide torch's float results besides the code: its vector instructions and its thread count
# (train fits on one thread, so that the count does not; the line shows what a machine would otherwise use).
TORCH_SETTINGS = "import torch; print(torch.backends.cpu.get_cpu_capability(), torch.get_num_threads())"
GPU_NAME = "import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else 'none found')"


def device(clone: Path) -> str:
    """Where train runs, as params.yaml and this machine say: CPU and GPU results differ in the last bits."""
    train = load_params(TrainParams, clone / "params.yaml")
    processes = f", train.processes {train.processes}" if train.processes > 1 else ""
    if train.device == "cuda":
        return f"train.device cuda, GPU {run([sys.executable, '-c', GPU_NAME], clone).strip()}{processes}"
    capability, threads = run([sys.executable, "-c", TORCH_SETTINGS], clone).split()
    return f"train.device cpu, torch CPU capability {capability}, threads {threads}{processes}"


def recorded_outs(lock: Path) -> dict[str, str]:
    """Every output's md5, as a dvc.lock records it."""
    try:
        stages = YAML(typ="safe").load(lock.read_text(encoding="utf-8"))["stages"]
        return {out["path"]: out["md5"] for stage in stages.values() for out in stage.get("outs", ())}
    except (YAMLError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as error:
        raise PipelineError(
            f"{LOCK}: no md5 for every output ({type(error).__name__}: {error}): expected a lock as DVC 3 writes it"
        ) from None


def numbers(path: Path, suffix: str) -> dict[str, float]:
    """Every number in a JSON, CSV or safetensors file, named by where it stands: a JSON object's dotted path
    (as `dvc metrics show` names it), a CSV column and line, a tensor and index."""
    if suffix == ".json":
        return dict(_json_numbers(json.loads(path.read_text(encoding="utf-8")), ""))
    if suffix == ".safetensors":
        return {
            f"{name}[{', '.join(map(str, index))}]": float(value)
            for name, tensor in load_file(path).items() for index, value in np.ndenumerate(tensor)
        }
    found = {}
    with path.open(newline="", encoding="utf-8") as file:
        for line, row in enumerate(csv.DictReader(file), start=2):  # line 1 is the header
            for column, text in row.items():
                try:
                    found[f"{column} on line {line}"] = float(text)
                except (TypeError, ValueError):
                    pass  # not a number
    return found


def _json_numbers(value: Any, name: str) -> Iterator[tuple[str, float]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _json_numbers(item, f"{name}.{key}" if name else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_numbers(item, f"{name}[{index}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield name, float(value)


def largest_differences(committed: dict[str, float], reproduced: dict[str, float]) -> str:
    """The largest absolute and relative difference between numbers of the same name."""
    shared = [name for name in committed if name in reproduced]  # file order, so that ties read the same
    absolute = {name: abs(reproduced[name] - committed[name]) for name in shared}
    # Relative to the larger magnitude, as math.isclose does: defined whenever the two differ.
    relative = {
        name: absolute[name] / max(abs(committed[name]), abs(reproduced[name])) if absolute[name] else 0.0
        for name in shared
    }
    parts = []
    if any(absolute.values()):
        most, most_relative = max(absolute, key=absolute.get), max(relative, key=relative.get)
        parts.append(
            f"largest absolute difference {absolute[most]:.3g} ({most}), "
            f"largest relative difference {relative[most_relative]:.3g} ({most_relative})"
        )
    elif shared:
        parts.append("the numbers both versions hold are equal")
    unmatched = len(committed.keys() ^ reproduced.keys())
    if unmatched:
        parts.append(f"{unmatched} number(s) in only one of the two versions")
    return "; ".join(parts)


def verdict(path: str, recorded: str | None, reproduced: str | None, clone: Path, cache: Path) -> str:
    """One output's line: identical, or how it differs from what the committed dvc.lock records."""
    if reproduced == recorded:
        return "identical"
    if reproduced is None:
        return "differs: the committed dvc.lock records it, dvc repro did not write it"
    if recorded is None:
        return "differs: dvc repro wrote it, the committed dvc.lock does not record it"
    line = f"differs: md5 {reproduced}, the committed dvc.lock records {recorded}"
    suffix = Path(path).suffix
    if suffix not in NUMBER_FILES:
        return line
    committed_copy = cache / "files" / "md5" / recorded[:2] / recorded[2:]
    if not committed_copy.is_file():
        return f"{line}; its numbers cannot be compared: the committed version is not in the local DVC cache {cache}"
    try:
        return f"{line}; {largest_differences(numbers(committed_copy, suffix), numbers(clone / path, suffix))}"
    except (ValueError, csv.Error, SafetensorError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return f"{line}; its numbers cannot be compared ({error})"


def main() -> None:
    root = Path.cwd()  # make runs every target from the project root
    commit = run(["git", "rev-parse", "HEAD"], root).strip()
    cache = Path(run([*DVC, "cache", "dir"], root).strip())
    with tempfile.TemporaryDirectory(prefix="repro-check-") as temporary:
        clone = Path(temporary) / "clone"
        run(["git", "clone", "--quiet", "--no-checkout", str(root), str(clone)], root)
        run(["git", "checkout", "--quiet", "--detach", commit], clone)
        if not (clone / LOCK).is_file():
            raise PipelineError(f"{LOCK}: not in commit {commit[:7]}: expected the committed lock of a full dvc repro")
        recorded = recorded_outs(clone / LOCK)
        # A cache of the clone's own, empty whatever .dvc/config says: every output is computed, none restored.
        run([*DVC, "cache", "dir", "--local", str(Path(temporary) / "cache")], clone)
        where = device(clone)
        print(f"dvc repro of {commit[:7]} (HEAD) in a fresh clone with an empty cache ({where})", flush=True)
        run([*DVC, "repro"], clone)
        reproduced = recorded_outs(clone / LOCK)
        paths = list(recorded) + [path for path in reproduced if path not in recorded]
        lines = {path: verdict(path, recorded.get(path), reproduced.get(path), clone, cache) for path in paths}

    width = max(map(len, paths))
    for path, line in lines.items():
        print(f"{path:<{width}}  {line}")
    differing = sum(line != "identical" for line in lines.values())
    if differing:
        print(f"{differing} of {len(paths)} outputs differ from the committed {LOCK}, reproduced with {where} "
              "(results on another device, CPU or GPU, differ in the last bits)")
        raise SystemExit(1)
    print(f"all {len(paths)} outputs identical to the committed {LOCK}")


if __name__ == "__main__":
    run_stage(main)
