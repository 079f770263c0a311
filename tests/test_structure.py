"""The package's shape: imports in one direction, CLIs over the library, small files and functions."""

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tf_cyclegan"
# Command-line modules: thin layers over the library, which never imports them.
CLIS = {
    "tf_cyclegan.cli",
    "tf_cyclegan.train",
    "tf_cyclegan.translate",
    "tf_cyclegan.export",
    "tf_cyclegan.evaluate",
    "tf_cyclegan.data.__main__",
    "tf_cyclegan.selfcheck",
}


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path, known):
    """The package modules ``path`` imports (at module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in known}
    return found


def import_graph():
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: imported_modules(path, paths) - {name} for name, path in paths.items()}
    # A module's own parent packages are always imported before it, so importing one is no edge.
    return {name: {t for t in targets if not name.startswith(t + ".")} for name, targets in graph.items()}


def find_cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert {"tf_cyclegan.trainer", "tf_cyclegan.run", "tf_cyclegan.factory"} <= set(graph)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_check_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_library_never_imports_a_command_line_module():
    graph = import_graph()
    for name, targets in graph.items():
        if name not in CLIS:
            assert not targets & CLIS, (name, targets & CLIS)
    trainer_users = {name for name, targets in graph.items() if "tf_cyclegan.trainer" in targets}
    assert trainer_users == {"tf_cyclegan.train"}


def test_files_and_functions_stay_small():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert text.count("\n") <= 350, path
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno - node.lineno < 60, f"{path}:{node.lineno} {node.name}"


def test_every_module_is_in_the_architecture_table():
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    rows = [line.split("|")[1] for line in text.splitlines() if line.startswith("| `")]  # the table's first column
    listed = {name for row in rows for name in re.findall(r"`([\w/]+\.py)`", row)}
    modules = {str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")}
    assert not modules - listed, f"add to docs/architecture.md's module table: {sorted(modules - listed)}"
    assert not listed - modules, f"docs/architecture.md lists modules that do not exist: {sorted(listed - modules)}"


# The two modules that touch the file system; every other module goes through fs.path and fs's functions.
FILESYSTEM_MODULES = {"fs.py", "remote.py"}
FILE_MODULES = {"pathlib", "shutil", "glob", "fcntl"}
# cli.py opens /dev/null as a file descriptor for its stderr filter: no user's file.
ALLOWED = {("cli.py", "os.open")}
FILE_CALLS = {"open", "replace", "rename", "remove", "unlink", "listdir", "makedirs", "mkdir", "scandir", "walk"}


def file_system_uses(tree):
    """(line, what) of every import of a file module, builtin ``open(``, ``os.path`` and ``os.<file call>``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module] if isinstance(node, ast.ImportFrom) else [alias.name for alias in node.names]
            found += [(node.lineno, f"import {name}") for name in names if name in FILE_MODULES]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open":
            found.append((node.lineno, "open("))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os":
            if node.attr == "path" or node.attr in FILE_CALLS:
                found.append((node.lineno, f"os.{node.attr}"))
    return sorted(found)


def test_only_the_filesystem_module_touches_files():
    for path in PACKAGE.rglob("*.py"):
        if path.name not in FILESYSTEM_MODULES:
            uses = file_system_uses(ast.parse(path.read_text()))
            uses = [(line, what) for line, what in uses if (path.name, what) not in ALLOWED]
            assert not uses, f"{path.relative_to(PACKAGE)}: {uses} (use tf_cyclegan.fs: users' paths may be URIs)"


def test_the_filesystem_check_finds_each_kind_of_use():
    code = "import shutil\nfrom pathlib import Path\nopen('x')\nos.path.join('a')\nos.replace('a', 'b')\nos.getpid()\n"
    assert [what for _, what in file_system_uses(ast.parse(code))] == [
        "import shutil",
        "import pathlib",
        "open(",
        "os.path",
        "os.replace",
    ]
