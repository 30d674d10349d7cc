"""Where a stage may write: never over a folder, an input of the stage, or (for a path a param chose, such as
predict.output) anything DVC or git keeps; and, before any work, that each output's folder takes a file.
pipeline/files.py's one writer calls guard() before every write."""

import errno
import os
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

from pipeline import repository
from pipeline.errors import PipelineError, inputs_named, os_problem, outputs_chosen

def note_input(path: Path) -> None:
    """An input of this process: no output may be it (errors.inputs_named, absolute: the folder may change)."""
    path = _absolute(path)
    if path not in inputs_named:
        inputs_named.append(path)


def _absolute(path: Path) -> Path:
    """The path from the root, `..` and `.` removed by their words; links kept."""
    return Path(os.path.abspath(path))


def prepare_outputs(paths: Iterable[Path], inputs: Iterable[Path] = (), chosen_by: str = "") -> None:
    """Before any work: each output passes the guard, and its folder takes a new file, so that a read-only
    folder or a full disk is found now, not after an hour of training. chosen_by names the param that chose
    the paths (predict.output)."""
    for path in inputs:
        note_input(Path(path))
    for path in paths:
        path = Path(path)
        if chosen_by:
            outputs_chosen[_absolute(path)] = chosen_by
        guard(path)
        _require_writable_folder(path)


def guard(path: Path) -> None:
    """The one guard every write passes: never over a folder, an input of this process or, for a path a param
    chose, anything DVC or git keeps. Links are replaced, never written through."""
    path = Path(path)
    chosen_by = outputs_chosen.get(_absolute(path))
    said = f"{chosen_by} = {str(path)[:300]!r}" if chosen_by else str(path)
    if path.parts and path.parts[0].startswith("~"):
        raise PipelineError(f"{said}: starts with '~', which is not expanded here: expected a path relative to "
                            "the repository; nothing written")
    if path.is_dir() and not path.is_symlink():
        raise PipelineError(f"{said}: is a folder: expected a file to write; nothing written")
    for source in inputs_named:
        if _same_file(path, source):
            raise PipelineError(f"{said}: is also an input of this stage ({_shown(source)}): expected an output that no stage "
                                "reads, so that the input is not overwritten; nothing written")
    if chosen_by:
        _require_untracked(path, chosen_by, said)


def _shown(path: Path) -> str:
    """An absolute path as the user wrote it: relative to the repository where it lies there."""
    return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)


def _same_file(path: Path, source: Path) -> bool:
    if _absolute(path) == source:
        return True
    try:
        return os.path.samefile(path, source)
    except OSError:  # either one missing
        return False


def _require_untracked(path: Path, chosen_by: str, said: str) -> None:
    """A path a param chose is refused where it leaves the repository, holds or lies below a dep or out of any
    stage (but this param's own out), or a file that a .dvc file or git tracks."""
    leads = repository.where_it_leads(path, follow_last=False)
    if leads:
        raise PipelineError(f"{said}: {leads}; nothing written")
    written = repository.normal(path)
    # As written and as its folders' links lead (alias/x.csv, alias a link to metrics/): each name is checked.
    for normal in dict.fromkeys((written, repository.below_links(path))):
        _require_untracked_name(path, normal, normal == written, chosen_by, said)


def _require_untracked_name(path: Path, normal: Path, as_written: bool, chosen_by: str, said: str) -> None:
    if normal.parts and normal.parts[0] in (".git", ".dvc"):
        raise PipelineError(f"{said}: is inside {normal.parts[0]}/, git's or DVC's own folder: expected a path "
                            "outside it; nothing written")
    own = None
    for entry in repository.entries():
        if as_written and entry.kind == "out" and entry.chosen_by == chosen_by and entry.path == normal:
            own = entry
            continue
        if entry.holds(normal):
            if entry.where.endswith(".dvc"):
                what = f"tracked by DVC ({entry.where})"
            else:
                what = f"{'an output' if entry.kind == 'out' else 'an input'} of {entry.where}"
            if entry.path != normal or not as_written:
                what = f"inside {entry.path}, {what}" if entry.path != normal else f"{entry.path}, {what}"
            raise PipelineError(f"{said}: is {what}: expected a new file that no stage reads or writes, so that "
                                f"nothing is overwritten; nothing written{_restore(path, 'dvc', entry.path == normal)}")
    if (own is None or own.cached) and repository.in_git_index(normal):
        raise PipelineError(f"{said}: is a file git tracks: expected a new file, so that it is not overwritten; "
                            f"nothing written{_restore(path, 'git', True)}")


def _restore(path: Path, by: str, tracked_itself: bool) -> str:
    """How to bring back a tracked file that DVC removed before it ran the stage (it removes a stage's outs)."""
    if not tracked_itself or path.exists() or path.is_symlink():
        return ""
    command = f"git checkout -- {path}" if by == "git" else f"dvc checkout {path}"
    return f" (DVC removed it before running the stage: restore it with `{command}`)"


def _require_writable_folder(path: Path) -> None:
    """Make and remove a file in the output's folder; folders made for it are removed again (the write makes them)."""
    folder = path.parent
    made = [ancestor for ancestor in (folder, *folder.parents) if not ancestor.exists()]  # deepest first
    probe = folder / f".{path.name}.{os.getpid()}.probe.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.touch(exist_ok=False)
        probe.unlink()
        if os.statvfs(folder).f_bavail == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except OSError as error:
        raise PipelineError(f"{os_problem(path, error)}; nothing written") from None
    finally:
        with suppress(OSError):
            probe.unlink(missing_ok=True)
            for ancestor in made:
                ancestor.rmdir()


