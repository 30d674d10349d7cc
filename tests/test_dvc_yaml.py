"""dvc.yaml tells the whole truth: every module a stage imports, every path it uses and every params
section it loads is declared there, derived from the code itself."""

import ast
from pathlib import Path

import pytest

from pipeline import files, params
from workspace import OUTS, ROOT, STAGES, declared

PACKAGE = "pipeline"


def module_path(module: str) -> Path | None:
    """The project file that defines `module`, or None for a module from elsewhere."""
    if module != PACKAGE and not module.startswith(f"{PACKAGE}."):
        return None
    path = ROOT.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imported_modules(path: Path) -> set[str]:
    """The modules a file imports anywhere in it, absolute or relative, with the packages they run."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            origin = ".".join(part for part in (base, node.module) if part)
            # `from pipeline import files` imports the module pipeline.files; a name that is no module
            # (`from pipeline.files import POINTS`) finds no file and is passed over.
            modules.update(f"{origin}.{alias.name}" for alias in node.names)
    # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
    return {".".join(module.split(".")[:end]) for module in modules for end in range(1, module.count(".") + 2)}


def project_files_imported(stage_name: str) -> set[str]:
    """The project files `python -m pipeline.<stage>` executes: the stage and all it imports, transitively."""
    seen: set[str] = set()
    pending = [PACKAGE, f"{PACKAGE}.{stage_name}"]
    while pending:
        path = module_path(pending.pop())
        if path is None or not path.is_file():
            continue
        name = path.relative_to(ROOT).as_posix()
        if name not in seen:
            seen.add(name)
            pending.extend(imported_modules(path))
    return seen


def stage_tree(stage_name: str) -> ast.Module:
    return ast.parse((ROOT / PACKAGE / f"{stage_name}.py").read_text(encoding="utf-8"))


def names_imported_from(tree: ast.Module, module: str) -> set[str]:
    return {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module == module
            for alias in node.names}


def is_code(dep: str) -> bool:
    return dep.startswith(f"{PACKAGE}/")


PATHS = {name: value.as_posix() for name, value in vars(files).items() if isinstance(value, Path)}


@pytest.mark.parametrize("stage_name", STAGES)
def test_every_project_module_a_stage_imports_is_a_dep_and_no_other(stage_name):
    declared_code = {dep for dep in declared(stage_name)["deps"] if is_code(dep)}
    assert declared_code == project_files_imported(stage_name)


@pytest.mark.parametrize("stage_name", STAGES)
def test_the_paths_a_stage_takes_from_files_py_are_exactly_its_declared_data_deps_and_outs(stage_name):
    used = {PATHS[name] for name in names_imported_from(stage_tree(stage_name), f"{PACKAGE}.files") if name in PATHS}
    stage_entry = declared(stage_name)
    assert used == {dep for dep in stage_entry["deps"] if not is_code(dep)} | set(stage_entry["outs"])


def test_every_path_in_files_py_is_the_out_of_one_stage_and_every_out_is_in_files_py():
    outs = [out for stage_name in STAGES for out in declared(stage_name)["outs"]]
    assert sorted(outs) == sorted(PATHS.values())
    assert {stage_name: tuple(declared(stage_name)["outs"]) for stage_name in STAGES} == OUTS


@pytest.mark.parametrize("stage_name", STAGES)
def test_a_stage_declares_exactly_the_params_sections_it_loads(stage_name):
    loaded = {
        getattr(params, call.args[0].id).section
        for call in ast.walk(stage_tree(stage_name))
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "load_params"
    }
    assert set(declared(stage_name)["params"]) == loaded
    assert params.PARAMS_FILE == Path("params.yaml")  # the file DVC reads params from by default


@pytest.mark.parametrize("stage_name", STAGES)
def test_a_stage_runs_as_python_dash_m_of_its_own_module(stage_name):
    assert declared(stage_name)["cmd"] == f"python -m {PACKAGE}.{stage_name}"


def test_no_module_reads_the_environment_or_the_command_line():
    """Environment variables and arguments would be inputs that dvc.yaml cannot declare."""
    hidden = []
    for path in sorted((ROOT / PACKAGE).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and (node.attr in ("environ", "getenv", "argv", "environb")):
                hidden.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    assert hidden == []
