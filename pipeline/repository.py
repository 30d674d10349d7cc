"""The repository's bounds (its folder, and DVC's cache) and what DVC and git track in it, read from their own
files: dvc.yaml, *.dvc, DVC's config files and git's index. No DVC import (it costs a second)."""

import configparser
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ruamel.yaml import YAML, YAMLError

# Every stage runs in the folder that holds dvc.yaml (DVC runs it there; by hand, the docs say so): the
# repository. Paths in params.yaml are relative to it.
DVC_YAML = Path("dvc.yaml")
PARAMS_YAML = Path("params.yaml")
_TEMPLATE = re.compile(r"\$\{\s*([^}\s]+)\s*\}")


def root() -> Path:
    return Path.cwd().resolve()


def where_it_leads(path: Path, follow_last: bool = True) -> str | None:
    """Why `path` (relative to the repository) leaves it, or None where it stays inside the repository or DVC's
    cache. Every link on the way is followed; the last one only with follow_last (an output is replaced, never
    written through). Nothing is read but links and DVC's config files."""
    if path.parts and path.parts[0].startswith("~"):
        return "starts with '~', which is not expanded here: expected a path relative to the repository"
    try:
        resolved = (path.resolve() if follow_last else path.parent.resolve() / path.name)
    except (OSError, RuntimeError):  # a loop of links
        return "a link that leads in a loop: expected a file inside the repository"
    if resolved.is_relative_to(root()):
        return None
    if follow_last and any(resolved.is_relative_to(folder) for folder in cache_folders()):
        return None
    what = "a link" if follow_last and path.is_symlink() else "below a linked folder"
    return f"{what} that leads outside the repository: expected a file inside the repository or DVC's cache"


def below_links(path: Path) -> Path:
    """`path` relative to the repository with its folders' links followed (not its own): where a write lands."""
    try:
        landed = path.parent.resolve() / path.name
        return landed.relative_to(root())
    except (OSError, RuntimeError, ValueError):
        return normal(path)


# --- DVC's cache ---------------------------------------------------------------------------------------


def cache_folders() -> tuple[Path, ...]:
    """DVC's cache folder, resolved: cache.dir of the last config file that sets it (system, global, the
    repository's .dvc/config, then .dvc/config.local), a relative one taken from that file's folder, as DVC
    reads it; .dvc/cache by default."""
    folder = Path(".dvc", "cache")
    for config in _config_files():
        value = _cache_dir(config)
        if value is not None:
            expanded = os.path.expanduser(value)
            folder = Path(expanded) if os.path.isabs(expanded) else config.parent / expanded
    return (folder.resolve(),)


def _config_files() -> list[Path]:
    """DVC's config files, lowest priority first (dvc/config.py: Config.files, dvc/dirs.py)."""
    system = os.environ.get("DVC_SYSTEM_CONFIG_DIR")
    user = os.environ.get("DVC_GLOBAL_CONFIG_DIR")
    if system is None or user is None:
        import platformdirs  # DVC's own way to find them (installed with DVC, light)

        system = system or platformdirs.site_config_dir("dvc", "iterative")
        user = user or platformdirs.user_config_dir("dvc", "iterative")
    return [Path(system, "config"), Path(user, "config"), Path(".dvc", "config"), Path(".dvc", "config.local")]


def _cache_dir(config: Path) -> str | None:
    """cache.dir as a DVC config file (configobj's INI) spells it, quotes removed; None if unset or unreadable."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(config, encoding="utf-8")
        value = parser.get("cache", "dir", fallback=None)
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None
    if value and len(value) > 1 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return value or None


# --- What DVC tracks -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """A path DVC knows: a stage's dep or out in a dvc.yaml, or an out of a .dvc file."""

    path: Path  # normalised, relative to the repository
    kind: str  # "dep" or "out"
    where: str  # "stage 'predict'" or "data/raw.dvc"
    chosen_by: str = ""  # the param whose value it is (`${predict.output}`), or ""
    cached: bool = True  # cache: false keeps it in git

    def holds(self, path: Path) -> bool:
        """`path` is this entry or lies below it."""
        return path == self.path or self.path in path.parents


def entries() -> tuple[Entry, ...]:
    """Every dep and out of every dvc.yaml in the repository (`${…}` resolved against params.yaml), and every out
    of every .dvc file; unreadable files are passed over (DVC says what is wrong with them)."""
    stamps = tuple(_stamp(path) for path in (DVC_YAML, PARAMS_YAML, Path(".dvc")))
    return _entries(root(), stamps)


def _stamp(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


@cache
def _entries(folder: Path, stamps: tuple[int, ...]) -> tuple[Entry, ...]:
    """entries() of the repository `folder` (the working directory) as its files stand (stamps): read once."""
    found = []
    for name in _dvc_files():
        file = Path(name)
        if file.name == "dvc.yaml":
            found.extend(_stage_entries(file))
        elif file.suffix == ".dvc":
            found.extend(_dvc_file_entries(file))
    return tuple(found)


def tracked_by(path: Path) -> Entry | None:
    """The first entry that holds `path` (a stage's out or dep, or a .dvc file's out), if any."""
    path = normal(path)
    return next((entry for entry in entries() if entry.holds(path)), None)


def normal(path: Path) -> Path:
    return Path(os.path.normpath(path))


def _dvc_files() -> list[str]:
    """dvc.yaml and *.dvc files, tracked or not (but not ignored): git lists them in a few ms; without git,
    a walk that skips hidden folders."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--",
                                 "*dvc.yaml", "*.dvc"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        listed = None
    if listed is not None and listed.returncode == 0:
        names = {name for name in listed.stdout.split("\0") if name}
        if DVC_YAML.is_file():
            names.add(str(DVC_YAML))
        return sorted(name for name in names if Path(name).name == "dvc.yaml" or Path(name).suffix == ".dvc")
    names = []
    for folder, folders, files in os.walk("."):
        folders[:] = [name for name in folders if not name.startswith(".")]
        names.extend(os.path.join(folder, name) for name in files if name == "dvc.yaml" or name.endswith(".dvc"))
    return sorted(names)


def _load_yaml(path: Path):
    try:
        return YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YAMLError):
        return None


def _params(folder: Path) -> dict:
    document = _load_yaml(folder / PARAMS_YAML)
    return document if isinstance(document, dict) else {}


def _resolve(text: str, params: dict) -> tuple[str, str] | None:
    """`text` with each `${key}` replaced by params.yaml's value (as DVC does), and the key of a text that is
    one `${key}`; None where a key is not found."""
    def value(match: re.Match) -> str:
        found = params
        for part in match.group(1).split("."):
            if not isinstance(found, dict) or part not in found:
                raise KeyError(match.group(1))
            found = found[part]
        return str(found)

    try:
        resolved = _TEMPLATE.sub(value, text)
    except KeyError:
        return None
    whole = _TEMPLATE.fullmatch(text.strip())
    return resolved, whole.group(1) if whole else ""


def _stage_entries(file: Path) -> Iterator[Entry]:
    document = _load_yaml(file)
    stages = document.get("stages") if isinstance(document, dict) else None
    if not isinstance(stages, dict):
        return
    folder = file.parent
    params = _params(folder)
    for name, stage in stages.items():
        if not isinstance(stage, dict) or "foreach" in stage or "matrix" in stage:
            continue  # generated stages: their paths are in dvc.lock once run (rare in a project like this)
        wdir = folder / str(stage.get("wdir", "."))
        for field, kind in (("deps", "dep"), ("outs", "out"), ("metrics", "out"), ("plots", "out")):
            for item in stage.get(field) or []:
                text, options = (item, {}) if isinstance(item, str) else next(iter(item.items()), (None, {}))
                resolved = _resolve(str(text), params) if text is not None else None
                if resolved is None:
                    continue
                cached = not (isinstance(options, dict) and options.get("cache") is False)
                yield Entry(normal(wdir / resolved[0]), kind, f"stage {name!r} of {file}", resolved[1], cached)


def _dvc_file_entries(file: Path) -> Iterator[Entry]:
    document = _load_yaml(file)
    if not isinstance(document, dict):
        return
    wdir = file.parent / str(document.get("wdir", "."))
    for item in document.get("outs") or []:
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            yield Entry(normal(wdir / item["path"]), "out", str(file))


# --- What git tracks -----------------------------------------------------------------------------------


def in_git_index(path: Path) -> bool:
    """git's index holds `path` (a file committed or added), whether or not the file is there now; False where
    there is no git."""
    try:
        listed = subprocess.run(["git", "--literal-pathspecs", "ls-files", "-z", "--cached", "--", str(normal(path))],
                                capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return listed.returncode == 0 and bool(listed.stdout.strip(b"\0"))


def is_tracked(path: Path) -> bool:
    """DVC (a stage's out, a .dvc file's out) or git tracks `path`, so a clone has it."""
    path = normal(path)
    return any(entry.kind == "out" and entry.holds(path) for entry in entries()) or in_git_index(path)


def warn_if_untracked(path: Path) -> None:
    """A table neither DVC nor git tracks never reaches the cache, a remote or a clone: say so, and how to fix it.
    Outside a DVC repository (a stage run by hand in a bare folder) there is nothing to say."""
    if not Path(".dvc").is_dir() or Path(f"{path}.dvc").is_file() or is_tracked(path):
        return
    print(f"warning: {path} is tracked by neither DVC nor git, so a clone cannot reproduce this run: "
          f"run `dvc add {shlex.quote(str(path))}`", file=sys.stderr)
