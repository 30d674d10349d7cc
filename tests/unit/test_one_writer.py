"""One writer, one guard: every file a stage writes goes through pipeline/files.py's atomic writer, whose guard
refuses to write over an input, a folder or a tracked file. Read from the code itself."""

import ast
from pathlib import Path

from workspace import ROOT

# Calls that write or move a file, by the name called (a function or a method).
WRITERS = {"open", "write_bytes", "write_text", "savefig", "write_table", "write_csv", "write_feather", "save_file",
           "ParquetWriter", "CSVWriter", "replace", "rename", "move", "copy", "copy2", "copyfile", "touch",
           "mkstemp", "NamedTemporaryFile"}
READ_MODES = {"r", "rb", "rt"}


def temporaries(tree: ast.AST) -> set[str]:
    """The names bound by `with atomic_output(...) as name`: the only targets a module outside files.py writes."""
    return {item.optional_vars.id for node in ast.walk(tree) if isinstance(node, (ast.With, ast.AsyncWith))
            for item in node.items
            if isinstance(item.context_expr, ast.Call) and getattr(item.context_expr.func, "id", None) == "atomic_output"
            and isinstance(item.optional_vars, ast.Name)}


def bypasses(path: Path) -> list[str]:
    """Each call in `path` that writes a file other than an atomic_output temporary."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    allowed = temporaries(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        if name not in WRITERS:
            continue
        if name == "open":  # open(path, mode) or path.open(mode): the mode is the first string given, "r" if none
            given = [*node.args[:2], *(k.value for k in node.keywords if k.arg == "mode")]
            modes = [arg.value for arg in given if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]
            if modes[-1:] in ([], *([mode] for mode in READ_MODES)):
                continue
        if name == "copy" and len(node.args) < 2:
            continue  # an array's or a dict's copy(); shutil.copy(source, destination) names two paths
        if name == "replace" and not (isinstance(node.func, ast.Attribute) and getattr(node.func.value, "id", "") == "os"):
            continue  # str.replace
        receiver = node.func.value if isinstance(node.func, ast.Attribute) else None
        targets = [receiver, *node.args[:2]]
        if any(isinstance(target, ast.Name) and target.id in allowed for target in targets):
            continue
        found.append(f"{path.name}:{node.lineno} {ast.unparse(node)[:80]}")
    return found


def test_no_module_writes_a_file_but_through_files_atomic_output():
    # files.py is the writer; guard.py's only file is its probe of an output's folder, made and removed at once.
    found = [line for path in sorted((ROOT / "pipeline").glob("*.py")) if path.name not in ("files.py", "guard.py")
             for line in bypasses(path)]
    assert found == []


def test_the_scan_finds_a_write_that_bypasses_the_writer(tmp_path):
    """The test above can fail: each of these writes straight to a final name."""
    module = tmp_path / "module.py"
    module.write_text(
        "import os\n"
        "def f(path, table, figure):\n"
        "    open(path, 'w').write('x')\n"
        "    path.write_bytes(b'x')\n"
        "    figure.savefig(path)\n"
        "    pyarrow.csv.write_csv(table, path)\n"
        "    os.replace(path, 'b')\n"
        "    with atomic_output(path) as temporary:\n"
        "        temporary.write_bytes(b'fine')\n"
        "        figure.savefig(temporary)\n"
        "    open(path).read()\n"
        "    'a'.replace('a', 'b')\n", encoding="utf-8")
    assert sorted(line.split()[0] for line in bypasses(module)) == [
        "module.py:3", "module.py:4", "module.py:5", "module.py:6", "module.py:7"]


def test_atomic_output_calls_the_guard_before_it_writes():
    tree = ast.parse((ROOT / "pipeline" / "files.py").read_text(encoding="utf-8"))
    writer = next(node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name == "atomic_output")
    first = writer.body[1]  # after the docstring
    assert ast.unparse(first) == "guard(path)"
