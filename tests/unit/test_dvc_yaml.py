"""dvc.yaml tells the whole truth: every module a stage imports, every path it uses (data.source included)
and every params key it reads is declared there, derived from the code itself."""

import ast
import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML

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
DATA_SOURCE = "${data.source}"


def raw_deps(stage_name: str) -> list[str]:
    """A stage's deps as dvc.yaml spells them, before DVC resolves `${…}`."""
    return YAML(typ="safe").load(ROOT / "dvc.yaml")["stages"][stage_name]["deps"]


def loaded_models(stage_name: str) -> set[type]:
    """The params models a stage passes to load_params."""
    return {
        getattr(params, call.args[0].id)
        for call in ast.walk(stage_tree(stage_name))
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "load_params"
    }


def keys_of(model: type) -> set[str]:
    return {f"{model.section}.{key}" for key in model.model_fields}


def keys_used(stage_name: str) -> set[str]:
    """Every params.yaml key a stage uses, as `section.key`. A loaded section only read by attribute
    (`train.fit_intercept`) uses those keys; one passed on whole, or read through a property, uses all."""
    tree = stage_tree(stage_name)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    used = set()
    for call in ast.walk(tree):
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "load_params"):
            continue
        model = getattr(params, call.args[0].id)
        assignment = parents[call]
        if isinstance(assignment, ast.Attribute) and assignment.attr in model.model_fields:
            used.add(f"{model.section}.{assignment.attr}")  # load_params(EvaluateParams).level
            continue
        if not (isinstance(assignment, ast.Assign) and len(assignment.targets) == 1
                and isinstance(assignment.targets[0], ast.Name)):
            used |= keys_of(model)  # used where it is loaded, whole
            continue
        variable = assignment.targets[0].id
        for name in ast.walk(_scope(parents, assignment)):
            if isinstance(name, ast.Name) and name.id == variable and isinstance(name.ctx, ast.Load):
                attribute = parents[name]
                if isinstance(attribute, ast.Attribute) and attribute.attr in model.model_fields:
                    used.add(f"{model.section}.{attribute.attr}")
                else:
                    used |= keys_of(model)
    return used


def _scope(parents: dict, node: ast.AST) -> ast.AST:
    """The function (or module) a node lies in."""
    while not isinstance(node, (ast.FunctionDef, ast.Module)):
        node = parents[node]
    return node


def keys_declared(stage_name: str) -> set[str]:
    """dvc.yaml's params of a stage as keys: a section stands for every key of it."""
    models = {model.section: model for model in params.SECTIONS}
    keys = set()
    for entry in declared(stage_name)["params"]:
        keys |= {entry} if "." in entry else keys_of(models[entry])
    return keys


@pytest.mark.parametrize("stage_name", STAGES)
def test_every_project_module_a_stage_imports_is_a_dep_and_no_other(stage_name):
    declared_code = {dep for dep in declared(stage_name)["deps"] if is_code(dep)}
    assert declared_code == project_files_imported(stage_name)


@pytest.mark.parametrize("stage_name", STAGES)
def test_a_stage_that_reads_the_data_section_declares_data_source_as_a_dep(stage_name):
    assert (DATA_SOURCE in raw_deps(stage_name)) == (params.DataParams in loaded_models(stage_name))


def test_data_source_is_synthesizes_points_by_default():
    document = YAML(typ="safe").load(ROOT / "params.yaml")
    assert document["data"]["source"] == files.POINTS.as_posix() == "data/points.parquet"
    assert files.POINTS.as_posix() in declared("synthesize")["outs"]
    for stage_name in STAGES:
        if DATA_SOURCE in raw_deps(stage_name):
            assert files.POINTS.as_posix() in declared(stage_name)["deps"]


# The paths params.yaml names: a stage that loads the section reads (or, for predict.output, writes) them.
PARAMS_PATHS = {params.DataParams: ("source",), params.PredictParams: ("source", "output")}
PREDICT_PATHS = ("${predict.source}", "${predict.output}")


@pytest.mark.parametrize("stage_name", STAGES)
def test_the_paths_a_stage_uses_are_exactly_its_declared_data_deps_and_outs(stage_name):
    """The paths it takes from files.py, and those params.yaml names for it: data.source (by default
    synthesize's points) if it reads data, predict.source and predict.output if it predicts."""
    used = {PATHS[name] for name in names_imported_from(stage_tree(stage_name), f"{PACKAGE}.files") if name in PATHS}
    document = YAML(typ="safe").load(ROOT / "params.yaml")
    for model in loaded_models(stage_name):
        used |= {document[model.section][key] for key in PARAMS_PATHS.get(model, ())}
    stage_entry = declared(stage_name)
    assert used == {dep for dep in stage_entry["deps"] if not is_code(dep)} | set(stage_entry["outs"])


def test_a_stage_that_reads_the_predict_section_declares_its_source_and_output_by_name():
    for stage_name in STAGES:
        spelled = YAML(typ="safe").load(ROOT / "dvc.yaml")["stages"][stage_name]
        named = [path for path in [*spelled["deps"], *spelled["outs"]] if path in PREDICT_PATHS]
        assert (params.PredictParams in loaded_models(stage_name)) == (named == list(PREDICT_PATHS))


def test_every_path_in_files_py_is_the_out_of_one_stage_and_every_out_is_in_files_py_or_named_by_params():
    spelled = YAML(typ="safe").load(ROOT / "dvc.yaml")["stages"]
    outs = [out for stage_name in STAGES for out, as_written in zip(declared(stage_name)["outs"],
                                                                    spelled[stage_name]["outs"])
            if not as_written.startswith("${")]
    assert sorted(outs) == sorted(PATHS.values())
    assert {stage_name: tuple(declared(stage_name)["outs"]) for stage_name in STAGES} == OUTS


@pytest.mark.parametrize("stage_name", STAGES)
def test_a_stage_declares_exactly_the_params_keys_it_uses(stage_name):
    assert keys_declared(stage_name) == keys_used(stage_name)
    assert params.PARAMS_FILE == Path("params.yaml")  # the file DVC reads params from by default


def test_keys_used_tells_a_key_read_by_name_from_a_section_passed_on_whole():
    """evaluate reads six keys of train by name and passes data and evaluate on whole."""
    assert keys_used("evaluate") == keys_of(params.DataParams) | keys_of(params.EvaluateParams) | {
        "train.fit_intercept", "train.dtype", "train.tolerance", "train.coefficient_tolerance", "train.device",
        "train.processes"}
    assert keys_used("train") == keys_of(params.DataParams) | keys_of(params.TrainParams)


@pytest.mark.parametrize("stage_name", STAGES)
def test_a_stage_runs_as_python_dash_m_of_its_own_module(stage_name):
    assert declared(stage_name)["cmd"] == f"python -m {PACKAGE}.{stage_name}"


def test_no_module_reads_the_environment_or_the_command_line():
    """Environment variables and arguments would be inputs that dvc.yaml cannot declare. The exceptions are
    distributed.py: torchrun tells each process its rank that way, and train.processes is declared; and
    __init__.py's look at sys.argv[0], which only tells whether a stage is starting (to end it cleanly on Ctrl-C);
    and repository.py, which reads DVC's own variables for its config files to find DVC's cache (where an input's
    link may lead), never an output's bits."""
    hidden = []
    for path in sorted((ROOT / PACKAGE).glob("*.py")):
        if path.name in ("distributed.py", "repository.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and (node.attr in ("environ", "getenv", "argv", "environb")):
                hidden.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    assert [line for line in hidden if not re.fullmatch(r"__init__\.py:\d+ sys\.argv", line)] == []
    assert len(hidden) <= 1
